// The CPU kernels against their scalar twins on every code path this machine can run
// (each forced in turn), and the twins against a double-precision dot of the dequantized
// rows. Weight blocks are random bytes (every bit pattern of the quants and sub-block
// scales) with sane fp16 super-block scales; activations go through the quantizers.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_info.h"
#include "backends/cpu/kernels/kernels.h"
#include "backends/cpu/kernels/ref_kernels.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

using namespace tessera;
using namespace tessera::cpu;
using namespace tessera::quant;

namespace {

const DType kFastTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                            DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Byte offsets of a block's fp16 scale fields (d, m, dmin), which must stay finite.
std::vector<size_t> scale_fields(DType t) {
    switch (t) {
        case DType::Q4_0:
            return {offsetof(block_q4_0, d)};
        case DType::Q4_1:
            return {offsetof(block_q4_1, d), offsetof(block_q4_1, m)};
        case DType::Q5_0:
            return {offsetof(block_q5_0, d)};
        case DType::Q5_1:
            return {offsetof(block_q5_1, d), offsetof(block_q5_1, m)};
        case DType::Q8_0:
            return {offsetof(block_q8_0, d)};
        case DType::Q2_K:
            return {offsetof(block_q2_K, d), offsetof(block_q2_K, dmin)};
        case DType::Q3_K:
            return {offsetof(block_q3_K, d)};
        case DType::Q4_K:
            return {offsetof(block_q4_K, d), offsetof(block_q4_K, dmin)};
        case DType::Q5_K:
            return {offsetof(block_q5_K, d), offsetof(block_q5_K, dmin)};
        case DType::Q6_K:
            return {offsetof(block_q6_K, d)};
        default:
            return {};
    }
}

// `rows` rows of k elements of type t.
std::vector<uint8_t> random_weights(DType t, int64_t k, int rows, std::mt19937& rng) {
    const size_t row_bytes = row_size(t, k);
    std::vector<uint8_t> w(row_bytes * static_cast<size_t>(rows));
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    if (t == DType::F32 || t == DType::F16 || t == DType::BF16) {
        std::vector<float> x(static_cast<size_t>(k));
        for (int r = 0; r < rows; ++r) {
            for (float& v : x) v = u(rng);
            quantize_row(t, x.data(), w.data() + r * row_bytes, k);
        }
        return w;
    }
    for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
    const TypeTraits& tr = type_traits(t);
    const float scale = tr.block_size == 256 ? 0.002f : 0.02f;
    for (size_t block = 0; block < w.size() / tr.type_size; ++block)
        for (size_t field : scale_fields(t)) {
            const uint16_t h = fp32_to_fp16(u(rng) * scale);
            std::memcpy(&w[block * tr.type_size + field], &h, 2);
        }
    return w;
}

// Activation rows as floats: mostly uniform, with an outlier per row so blocks' scales vary.
std::vector<float> random_activations(int64_t k, int rows, std::mt19937& rng) {
    std::vector<float> x(static_cast<size_t>(k) * static_cast<size_t>(rows));
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& v : x) v = u(rng);
    for (int r = 0; r < rows; ++r) x[static_cast<size_t>(r * k + (r * 37) % k)] = 9.5f;
    return x;
}

// Converts activation rows to the format of `fmt` with the reference quantizers.
std::vector<uint8_t> ref_activations(kernels::ActFormat fmt, const std::vector<float>& x, int64_t k, int rows) {
    const size_t bytes = kernels::act_row_size(fmt, k);
    std::vector<uint8_t> out(bytes * static_cast<size_t>(rows));
    for (int r = 0; r < rows; ++r) {
        const float* xr = x.data() + r * k;
        uint8_t* o = out.data() + r * bytes;
        if (fmt == kernels::ActFormat::Q8_0)
            kernels::ref::quantize_row_q8_0(xr, o, k);
        else if (fmt == kernels::ActFormat::Q8_K)
            kernels::ref::quantize_row_q8_K(xr, o, k);
        else
            std::memcpy(o, xr, bytes);
    }
    return out;
}

std::vector<double> dequantized(DType t, const uint8_t* row, int64_t k) {
    std::vector<float> f(static_cast<size_t>(k));
    dequantize_row(t, row, f.data(), k);
    return {f.begin(), f.end()};
}

std::vector<double> dequantized_act(kernels::ActFormat fmt, const uint8_t* row, int64_t k) {
    if (fmt == kernels::ActFormat::Q8_0) return dequantized(DType::Q8_0, row, k);
    if (fmt == kernels::ActFormat::Q8_K) return dequantized(DType::Q8_K, row, k);
    return dequantized(DType::F32, row, k);
}

// The data of one type's dot test: weight rows, activation rows in the right format, and
// for each (row, activation) pair the twin's result and the scale of the terms (sum |w x|).
struct DotCase {
    DType type;
    int64_t k;
    int rows, cols;
    kernels::ActFormat fmt;
    std::vector<uint8_t> w, x;
    size_t w_stride, x_stride;
    std::vector<float> twin;  // [c * rows + r]
    std::vector<double> magnitude;
};

DotCase make_case(DType t, int64_t k, int rows, int cols, uint32_t seed) {
    std::mt19937 rng(seed);
    DotCase c{t, k, rows, cols, kernels::ref::act_format(t), {}, {}, row_size(t, k), 0, {}, {}};
    c.w = random_weights(t, k, rows, rng);
    c.x = ref_activations(c.fmt, random_activations(k, cols, rng), k, cols);
    c.x_stride = kernels::act_row_size(c.fmt, k);
    const kernels::ref::VecDotFn twin = kernels::ref::vec_dot(t);
    for (int j = 0; j < cols; ++j) {
        const std::vector<double> xd = dequantized_act(c.fmt, c.x.data() + j * c.x_stride, k);
        for (int r = 0; r < rows; ++r) {
            const std::vector<double> wd = dequantized(t, c.w.data() + r * c.w_stride, k);
            double exact = 0, mag = 0;
            for (int64_t i = 0; i < k; ++i) {
                exact += wd[static_cast<size_t>(i)] * xd[static_cast<size_t>(i)];
                mag += std::fabs(wd[static_cast<size_t>(i)] * xd[static_cast<size_t>(i)]);
            }
            const float got = twin(k, c.w.data() + r * c.w_stride, c.x.data() + j * c.x_stride);
            // The twin itself: integer block sums and float scales, against double math.
            CHECK_MESSAGE(std::fabs(got - exact) <= 1e-5 * mag + 1e-30,
                          type_name(t) << " twin, k " << k << ": " << got << " vs " << exact);
            c.twin.push_back(got);
            c.magnitude.push_back(mag);
        }
    }
    return c;
}

// Runs the table's kernel over the case in tiles of tr x tc (each at most kMaxTile).
std::vector<float> run_tiles(const kernels::KernelTable& kt, const DotCase& c, int tr, int tc) {
    std::vector<float> out(static_cast<size_t>(c.rows * c.cols), std::numeric_limits<float>::quiet_NaN());
    const kernels::DotTileFn fn = kt.dot[static_cast<uint32_t>(c.type)];
    for (int r = 0; r < c.rows; r += tr)
        for (int j = 0; j < c.cols; j += tc)
            fn(c.k, c.w.data() + r * c.w_stride, c.w_stride, std::min(tr, c.rows - r), c.x.data() + j * c.x_stride,
               c.x_stride, std::min(tc, c.cols - j), out.data() + j * c.rows + r, static_cast<size_t>(c.rows));
    return out;
}

void check_dots(const kernels::KernelTable& kt, const std::vector<DotCase>& cases) {
    for (const DotCase& c : cases) {
        CAPTURE(type_name(c.type));
        CAPTURE(c.k);
        REQUIRE(static_cast<bool>(kt.dot[static_cast<uint32_t>(c.type)]));
        REQUIRE(kt.act[static_cast<uint32_t>(c.type)] == c.fmt);
        const std::vector<float> single = run_tiles(kt, c, 1, 1);
        int bad = 0;
        for (size_t i = 0; i < single.size(); ++i)
            if (!(std::fabs(single[i] - c.twin[i]) <= 1e-5 * c.magnitude[i] + 1e-30)) ++bad;
        CHECK_MESSAGE(bad == 0, bad << " of " << single.size() << " results differ from the twin, first: " << single[0]
                                    << " vs " << c.twin[0]);
        // Every tile shape computes each output by the same operations: identical bits.
        const int shapes[][2] = {
            {kernels::kMaxTile, 1},      {1, kernels::kMaxTile}, {kernels::kMaxTile, kernels::kMaxTile}, {3, 2}, {2, 3},
            {kt.tile_rows, kt.tile_cols}};
        for (const auto& s : shapes) {
            const std::vector<float> tiled = run_tiles(kt, c, s[0], s[1]);
            CHECK_MESSAGE(std::memcmp(tiled.data(), single.data(), single.size() * sizeof(float)) == 0,
                          "tile " << s[0] << "x" << s[1] << " differs from 1x1");
        }
    }
}

// Quantizer inputs with edge cases: zeros, ties at .5, tiny and huge values, a NaN.
std::vector<float> quantizer_inputs(int64_t k) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-3.0f, 3.0f);
    std::vector<float> x(static_cast<size_t>(k));
    for (float& v : x) v = u(rng);
    for (int i = 0; i < 32; ++i) x[static_cast<size_t>(i)] = 0.0f;                                // an all-zero block
    for (int i = 32; i < 64; ++i) x[static_cast<size_t>(i)] = static_cast<float>(i - 48) + 0.5f;  // ties
    x[63] = 127.0f;                                                                               // scale 1: exact ties
    for (int i = 64; i < 96; ++i) x[static_cast<size_t>(i)] *= 1e-30f;
    for (int i = 96; i < 128; ++i) x[static_cast<size_t>(i)] *= 1e30f;
    x[300] = std::numeric_limits<float>::quiet_NaN();
    return x;
}

void check_quantizers(const kernels::KernelTable& kt) {
    const int64_t k = 1024;
    const std::vector<float> x = quantizer_inputs(k);
    for (kernels::ActFormat fmt : {kernels::ActFormat::Q8_0, kernels::ActFormat::Q8_K}) {
        const size_t bytes = kernels::act_row_size(fmt, k);
        std::vector<uint8_t> want(bytes), got(bytes, 0xAA);
        if (fmt == kernels::ActFormat::Q8_0) {
            kernels::ref::quantize_row_q8_0(x.data(), want.data(), k);
            kt.quantize_q8_0(x.data(), got.data(), k);
        } else {
            kernels::ref::quantize_row_q8_K(x.data(), want.data(), k);
            kt.quantize_q8_K(x.data(), got.data(), k);
        }
        CHECK_MESSAGE(got == want, (fmt == kernels::ActFormat::Q8_0 ? "Q8_0" : "Q8_K") << " quantizer differs");
    }
}

void check_row_helpers(const kernels::KernelTable& kt) {
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (int64_t n : {1, 7, 64, 100, 129, 256}) {
        CAPTURE(n);
        std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n)), y(static_cast<size_t>(n));
        std::vector<uint16_t> h(static_cast<size_t>(n));
        double mag = 0;
        for (int64_t i = 0; i < n; ++i) {
            a[static_cast<size_t>(i)] = u(rng);
            h[static_cast<size_t>(i)] = fp32_to_fp16(u(rng));
            b[static_cast<size_t>(i)] = fp16_to_fp32(h[static_cast<size_t>(i)]);
            y[static_cast<size_t>(i)] = u(rng);
            mag += std::fabs(a[static_cast<size_t>(i)] * b[static_cast<size_t>(i)]);
        }
        const double tol = 1e-6 * mag + 1e-30;
        CHECK(std::fabs(kt.dot_f32(a.data(), b.data(), n) - kernels::ref::dot_f32(a.data(), b.data(), n)) <= tol);
        std::vector<float> y1 = y, y2 = y, y5 = y, y6 = y;
        kt.axpy_f32(y1.data(), 0.75f, a.data(), n);
        kernels::ref::axpy_f32(y2.data(), 0.75f, a.data(), n);
        kt.scale_f32(y5.data(), 0.3f, n);
        kernels::ref::scale_f32(y6.data(), 0.3f, n);
        for (size_t i = 0; i < y.size(); ++i) {
            CHECK(std::fabs(y1[i] - y2[i]) <= 1e-6f);  // fused or not: one rounding apart
            CHECK(y5[i] == y6[i]);
        }
    }
}

std::vector<DotCase> all_dot_cases() {
    std::vector<DotCase> cases;
    uint32_t seed = 1;
    for (DType t : kFastTypes) {
        const int64_t block = type_traits(t).block_size;
        const std::vector<int64_t> ks = block == 256  ? std::vector<int64_t>{256, 1024}
                                        : block == 32 ? std::vector<int64_t>{32, 96, 1024}
                                                      : std::vector<int64_t>{1, 37, 96, 1027};
        for (int64_t k : ks) cases.push_back(make_case(t, k, 7, 6, seed++));
    }
    return cases;
}

}  // namespace

TEST_CASE("every SIMD kernel matches its scalar twin on every code path this CPU runs") {
    const std::vector<DotCase> cases = all_dot_cases();  // also checks the twins
    const std::string best = cpu_target_name();
    MESSAGE("CPU features: " << cpu_features());
    MESSAGE("automatic choice: " << best);
    int tested = 0;
    for (const kernels::TargetInfo& target : kernels::compiled_targets()) {
        if (!target.supported) {
            MESSAGE("skipped " << target.name << ": this CPU cannot run it");
            continue;
        }
        std::string why;
        REQUIRE_MESSAGE(kernels::select_target(target.name, &why), why);
        const kernels::KernelTable& kt = kernels::active();
        CAPTURE(target.name);
        CHECK(std::string(cpu_target_name()) == target.name);
        for (DType t : {DType::Q8_1, DType::Q8_K}) CHECK_FALSE(static_cast<bool>(kt.dot[static_cast<uint32_t>(t)]));
        check_quantizers(kt);
        check_dots(kt, cases);
        check_row_helpers(kt);
        MESSAGE(target.name << ": " << cases.size() << " dot cases, quantizers and row helpers checked");
        ++tested;
    }
    CHECK(tested >= 1);
    REQUIRE(kernels::select_target("best"));
    CHECK(std::string(cpu_target_name()) == best);
}

TEST_CASE("unknown and unsupported targets are refused with a reason") {
    std::string why;
    const std::string before = cpu_target_name();
    CHECK_FALSE(kernels::select_target("avx9000", &why));
    CHECK(why.find("unknown target") != std::string::npos);
    CHECK(std::string(cpu_target_name()) == before);
    for (const kernels::TargetInfo& t : kernels::compiled_targets()) {
        if (t.supported) continue;
        CHECK_FALSE(kernels::select_target(t.name, &why));
        CHECK(why == "this CPU cannot run it");
    }
}
