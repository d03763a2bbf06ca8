// The op-parity cases: every op x type x shape, each with a plain scalar reference.
#include <cmath>
#include <limits>

#include "tensor/fp16.h"
#include "tensor/quant/quant.h"
#include "tests/ops/cases.h"
#include "tests/ops/harness.h"

namespace tessera::test {

// Bounds: a fast kernel may round activations (to F16 or Q8 blocks), so the bound per
// weight type leaves room for that, while any indexing or layout error gives ~1.
double weight_bound(DType t) {
    if (t == DType::F32) return 1e-6;
    if (t == DType::F16 || t == DType::BF16) return 1e-5;
    return 5e-4;
}

std::string dims(std::initializer_list<int64_t> ne) {
    std::string s;
    for (int64_t d : ne) {
        if (!s.empty()) s += "x";
        s += std::to_string(d);
    }
    return s;
}

namespace {

using Refs = std::vector<Leaf>;
using Out = std::vector<double>;

const DType kAllTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                           DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q8_1, DType::Q2_K,
                           DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K};

// -------------------------------------------------------------------------------------
// get_rows

void add_get_rows(std::vector<OpCase>& cases) {
    std::vector<std::pair<DType, int64_t>> shapes;  // type, row length
    for (DType t : kAllTypes) shapes.emplace_back(t, type_traits(t).block_size == 256 ? 512 : 96);
    // Rows of a multiple of 256: the CUDA backend keeps these Q4_0/Q8_0 weights as split rows.
    for (DType t : {DType::Q4_0, DType::Q8_0}) shapes.emplace_back(t, 512);
    for (auto [t, E] : shapes) {
        const int64_t R = 11;
        std::vector<int64_t> ids = {3, 0, 10, 3, 7};
        OpCase c;
        c.name = "get_rows " + tname(t) + " " + dims({E, R});
        c.leaves = {random_leaf(t, {E, R}, 11), int_leaf(DType::I32, {5}, ids)};
        c.build = [](Graph& g, std::vector<Tensor*>& l) { return g.get_rows(l[0], l[1]); };
        c.reference = [E](const Refs& l) {
            Out o;
            for (size_t i = 0; i < 5; ++i)
                for (int64_t e = 0; e < E; ++e) o.push_back(l[0].at(e, static_cast<int64_t>(l[1].values[i])));
            return o;
        };
        c.max_nmse = 1e-12;
        cases.push_back(std::move(c));
    }
}

// -------------------------------------------------------------------------------------
// mul_mat

// b_permuted: b is stored [K, B2, M] and permuted to [K, M, B2] (strided rows).
OpCase mul_mat_case(DType t, int64_t K, int64_t N, int64_t M, int64_t A2, int64_t B2, bool b_permuted, uint32_t seed) {
    OpCase c;
    c.name = "mul_mat " + tname(t) + " a " + dims({K, N, A2}) + " b " + dims({K, M, B2}) +
             (b_permuted ? " (b permuted)" : "");
    c.leaves = {random_leaf(t, {K, N, A2}, seed), b_permuted ? random_leaf(DType::F32, {K, B2, M}, seed + 1)
                                                             : random_leaf(DType::F32, {K, M, B2}, seed + 1)};
    c.build = [b_permuted](Graph& g, std::vector<Tensor*>& l) {
        Tensor* b = b_permuted ? g.permute(l[1], 0, 2, 1, 3) : l[1];
        return g.mul_mat(l[0], b);
    };
    c.reference = [=](const Refs& l) {
        Out o;
        const int64_t r2 = B2 / A2;
        for (int64_t i2 = 0; i2 < B2; ++i2)
            for (int64_t m = 0; m < M; ++m)
                for (int64_t n = 0; n < N; ++n) {
                    double s = 0;
                    for (int64_t k = 0; k < K; ++k)
                        s += l[0].at(k, n, i2 / r2) * (b_permuted ? l[1].at(k, i2, m) : l[1].at(k, m, i2));
                    o.push_back(s);
                }
        return o;
    };
    c.max_nmse = weight_bound(t);
    return c;
}

// Two products of the same activations, added: a GPU may run them as one launch (a decoding
// step's query, key and value projections share their activations).
OpCase mul_mat_pair_case(DType t, int64_t K, int64_t N, int64_t M, uint32_t seed) {
    OpCase c;
    c.name = "mul_mat pair " + tname(t) + " a " + dims({K, N}) + " b " + dims({K, M});
    c.leaves = {random_leaf(t, {K, N}, seed), random_leaf(t, {K, N}, seed + 1),
                random_leaf(DType::F32, {K, M}, seed + 2)};
    c.build = [](Graph& g, std::vector<Tensor*>& l) { return g.add(g.mul_mat(l[0], l[2]), g.mul_mat(l[1], l[2])); };
    c.reference = [=](const Refs& l) {
        Out o;
        for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
                double s = 0;
                for (int64_t k = 0; k < K; ++k) s += (l[0].at(k, n) + l[1].at(k, n)) * l[2].at(k, m);
                o.push_back(s);
            }
        return o;
    };
    c.max_nmse = weight_bound(t);
    return c;
}

void add_mul_mat(std::vector<OpCase>& cases) {
    uint32_t seed = 100;
    for (DType t : kAllTypes) {
        const int64_t K = type_traits(t).block_size == 256 ? 256 : 96;
        cases.push_back(mul_mat_case(t, K, 7, 1, 1, 1, false, seed++));       // decode: one row
        cases.push_back(mul_mat_case(t, K, 13, 5, 1, 1, false, seed++));      // odd sizes
        cases.push_back(mul_mat_case(t, K * 2, 33, 9, 1, 1, false, seed++));  // multi-block rows
        cases.push_back(mul_mat_case(t, K, 6, 4, 2, 6, false, seed++));       // a broadcast over b (GQA)
        cases.push_back(mul_mat_case(t, K, 5, 3, 1, 2, true, seed++));        // strided b
    }
    cases.push_back(mul_mat_case(DType::Q4_0, 1024, 96, 24, 1, 1, false, seed++));  // large
    // Rows of a multiple of 256, which the CUDA backend keeps as split rows (Q4_0, Q8_0):
    // decoding, several activation rows, a 3-D weight broadcast, a prompt-sized product.
    for (DType t : {DType::Q4_0, DType::Q8_0}) {
        cases.push_back(mul_mat_case(t, 512, 10, 1, 1, 1, false, seed++));
        cases.push_back(mul_mat_case(t, 768, 9, 3, 1, 1, false, seed++));
        cases.push_back(mul_mat_case(t, 256, 6, 2, 2, 4, false, seed++));
        cases.push_back(mul_mat_case(t, 512, 20, 40, 1, 1, false, seed++));
        cases.push_back(mul_mat_pair_case(t, 512, 12, 1, seed));
        cases.push_back(mul_mat_pair_case(t, 96, 12, 2, seed + 3));
        seed += 6;
    }
    // Decoding rows longer than 2048 and than 16384 elements (a GPU may shape its blocks by
    // the row's length).
    cases.push_back(mul_mat_case(DType::Q4_0, 4096, 24, 1, 1, 1, false, seed++));
    cases.push_back(mul_mat_case(DType::Q6_K, 2304, 20, 1, 1, 1, false, seed++));
    cases.push_back(mul_mat_case(DType::Q8_0, 2080, 16, 1, 1, 1, false, seed++));
    cases.push_back(mul_mat_case(DType::Q4_0, 16640, 8, 1, 1, 1, false, seed++));
    cases.push_back(mul_mat_case(DType::F32, 1024, 64, 32, 1, 1, false, seed++));
    // Prompt-sized products of a long row: a GPU's tiled kernels with several steps along k,
    // partial tiles along both n and m, and k split between blocks.
    cases.push_back(mul_mat_case(DType::Q4_0, 4096, 72, 300, 1, 1, false, seed++));
    cases.push_back(mul_mat_case(DType::Q8_0, 2048, 136, 150, 1, 1, false, seed++));
    cases.push_back(mul_mat_case(DType::Q4_K, 4096, 40, 130, 1, 1, false, seed++));
    // Prompt-sized products in batches: a 3-D weight broadcast over b, and strided b rows.
    cases.push_back(mul_mat_case(DType::Q4_0, 256, 40, 20, 2, 4, false, seed++));
    cases.push_back(mul_mat_case(DType::Q8_0, 128, 24, 12, 1, 3, true, seed++));
    // Prompt-sized products on float weights: OpenBLAS's sgemm where it is compiled in and
    // the code path has no r16 float kernel (weight rows in slices of 64, an odd last slice).
    for (DType t : {DType::F32, DType::F16, DType::BF16})
        cases.push_back(mul_mat_case(t, 160, 150, 40, 1, 1, false, seed++));
}

// -------------------------------------------------------------------------------------
// Element-wise

OpCase binary_case(bool add, std::vector<int64_t> a_ne, std::vector<int64_t> b_ne, bool a_transposed) {
    OpCase c;
    auto str = [](const std::vector<int64_t>& v) {
        std::string s;
        for (int64_t d : v) {
            if (!s.empty()) s += "x";
            s += std::to_string(d);
        }
        return s;
    };
    c.name = std::string(add ? "add" : "mul") + " a " + str(a_ne) + " b " + str(b_ne) +
             (a_transposed ? " (a transposed)" : "");
    // A transposed a is stored [ne1, ne0] and viewed as [ne0, ne1]: strided rows are not
    // allowed for element-wise ops, so "transposed" means dims 1 and 2 swapped.
    std::vector<int64_t> stored = a_ne;
    if (a_transposed) std::swap(stored[1], stored[2]);
    c.leaves = {random_leaf(DType::F32, stored, 21), random_leaf(DType::F32, b_ne, 22)};
    c.build = [add, a_transposed](Graph& g, std::vector<Tensor*>& l) {
        Tensor* a = a_transposed ? g.permute(l[0], 0, 2, 1, 3) : l[0];
        return add ? g.add(a, l[1]) : g.mul(a, l[1]);
    };
    c.reference = [=](const Refs& l) {
        Out o;
        const Leaf& b = l[1];
        for (int64_t i3 = 0; i3 < a_ne[3]; ++i3)
            for (int64_t i2 = 0; i2 < a_ne[2]; ++i2)
                for (int64_t i1 = 0; i1 < a_ne[1]; ++i1)
                    for (int64_t i0 = 0; i0 < a_ne[0]; ++i0) {
                        double x = a_transposed ? l[0].at(i0, i2, i1, i3) : l[0].at(i0, i1, i2, i3);
                        double y = b.at(i0 % b.dim(0), i1 % b.dim(1), i2 % b.dim(2), i3 % b.dim(3));
                        o.push_back(add ? x + y : x * y);
                    }
        return o;
    };
    c.max_nmse = 1e-12;
    return c;
}

void add_elementwise(std::vector<OpCase>& cases) {
    for (bool add : {true, false}) {
        cases.push_back(binary_case(add, {7, 5, 3, 2}, {7, 5, 3, 2}, false));
        cases.push_back(binary_case(add, {33, 9, 1, 1}, {33, 1, 1, 1}, false));       // bias row
        cases.push_back(binary_case(add, {8, 6, 4, 2}, {8, 3, 2, 1}, false));         // broadcast dims 1..3
        cases.push_back(binary_case(add, {16, 1, 1, 1}, {1, 1, 1, 1}, false));        // scalar b, one row
        cases.push_back(binary_case(add, {10, 4, 3, 1}, {10, 4, 3, 1}, true));        // strided a
        cases.push_back(binary_case(add, {4096, 32, 1, 1}, {4096, 1, 1, 1}, false));  // large
    }

    struct Unary {
        const char* name;
        Tensor* (*build)(Graph&, Tensor*);
        double (*ref)(double);
    };
    const Unary unaries[] = {
        {"scale", [](Graph& g, Tensor* a) { return g.scale(a, -0.375f); }, [](double x) { return x * -0.375; }},
        {"silu", [](Graph& g, Tensor* a) { return g.silu(a); }, [](double x) { return x / (1 + std::exp(-x)); }},
        {"gelu", [](Graph& g, Tensor* a) { return g.gelu(a); },
         [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }},
        {"gelu_erf", [](Graph& g, Tensor* a) { return g.gelu_erf(a); },
         [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }},
        {"tanh", [](Graph& g, Tensor* a) { return g.tanh(a); }, [](double x) { return std::tanh(x); }},
    };
    for (const Unary& u : unaries) {
        for (int shape = 0; shape < 3; ++shape) {
            std::vector<int64_t> ne = shape == 0   ? std::vector<int64_t>{37, 5, 3}
                                      : shape == 1 ? std::vector<int64_t>{1, 1}
                                                   : std::vector<int64_t>{12, 7, 2};
            const bool strided = shape == 2;
            OpCase c;
            c.name = std::string(u.name) + " " + std::to_string(ne[0]) + "x" + std::to_string(ne[1]) +
                     (strided ? " (strided)" : "");
            c.leaves = {random_leaf(DType::F32, ne, 31, 4.0)};
            auto build = u.build;
            auto ref = u.ref;
            c.build = [build, strided](Graph& g, std::vector<Tensor*>& l) {
                return build(g, strided ? g.permute(l[0], 0, 2, 1, 3) : l[0]);
            };
            c.reference = [ref, strided, ne](const Refs& l) {
                Out o;
                if (!strided) {
                    for (double v : l[0].values) o.push_back(ref(v));
                    return o;
                }
                for (int64_t v2 = 0; v2 < ne[1]; ++v2)  // the view is [ne0, ne2, ne1]
                    for (int64_t v1 = 0; v1 < ne[2]; ++v1)
                        for (int64_t i0 = 0; i0 < ne[0]; ++i0) o.push_back(ref(l[0].at(i0, v2, v1)));
                return o;
            };
            c.max_nmse = 1e-10;
            cases.push_back(std::move(c));
        }
    }

    for (bool swi : {true, false}) {
        OpCase c;
        c.name = swi ? "swiglu 29x6" : "geglu 29x6";
        c.leaves = {random_leaf(DType::F32, {29, 6}, 41, 3.0), random_leaf(DType::F32, {29, 6}, 42)};
        c.build = [swi](Graph& g, std::vector<Tensor*>& l) { return swi ? g.swiglu(l[0], l[1]) : g.geglu(l[0], l[1]); };
        c.reference = [swi](const Refs& l) {
            Out o;
            for (size_t i = 0; i < l[0].values.size(); ++i) {
                double x = l[0].values[i];
                double act = swi ? x / (1 + std::exp(-x))
                                 : 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
                o.push_back(act * l[1].values[i]);
            }
            return o;
        };
        c.max_nmse = 1e-10;
        cases.push_back(std::move(c));
    }
}

// -------------------------------------------------------------------------------------
// Norms, softmax, rope

void add_norms(std::vector<OpCase>& cases) {
    for (bool rms : {true, false}) {
        for (auto ne : {std::vector<int64_t>{64, 7, 2}, std::vector<int64_t>{1, 3}, std::vector<int64_t>{4097, 2}}) {
            OpCase c;
            c.name = std::string(rms ? "rms_norm " : "norm ") + std::to_string(ne[0]) + "x" + std::to_string(ne[1]);
            c.leaves = {random_leaf(DType::F32, ne, 51, 2.0)};
            c.build = [rms](Graph& g, std::vector<Tensor*>& l) {
                return rms ? g.rms_norm(l[0], 1e-5f) : g.norm(l[0], 1e-5f);
            };
            c.reference = [rms, ne](const Refs& l) {
                Out o;
                const int64_t n = ne[0];
                for (size_t r = 0; r < l[0].values.size() / static_cast<size_t>(n); ++r) {
                    const double* x = &l[0].values[r * static_cast<size_t>(n)];
                    double mean = 0, sq = 0;
                    for (int64_t i = 0; i < n; ++i) mean += x[i];
                    mean /= static_cast<double>(n);
                    for (int64_t i = 0; i < n; ++i) sq += rms ? x[i] * x[i] : (x[i] - mean) * (x[i] - mean);
                    double s = 1.0 / std::sqrt(sq / static_cast<double>(n) + 1e-5);
                    for (int64_t i = 0; i < n; ++i) o.push_back(rms ? x[i] * s : (x[i] - mean) * s);
                }
                return o;
            };
            c.max_nmse = 1e-10;
            cases.push_back(std::move(c));
        }
    }
    // rms_norm with a fused weight row.
    for (auto ne : {std::vector<int64_t>{64, 7, 2}, std::vector<int64_t>{4097, 3}}) {
        OpCase c;
        c.name = "rms_norm x weight " + std::to_string(ne[0]) + "x" + std::to_string(ne[1]);
        c.leaves = {random_leaf(DType::F32, ne, 53, 2.0), random_leaf(DType::F32, {ne[0]}, 54, 1.0)};
        c.build = [](Graph& g, std::vector<Tensor*>& l) { return g.rms_norm(l[0], 1e-5f, l[1]); };
        c.reference = [ne](const Refs& l) {
            Out o;
            const int64_t n = ne[0];
            for (size_t r = 0; r < l[0].values.size() / static_cast<size_t>(n); ++r) {
                const double* x = &l[0].values[r * static_cast<size_t>(n)];
                double sq = 0;
                for (int64_t i = 0; i < n; ++i) sq += x[i] * x[i];
                const double s = 1.0 / std::sqrt(sq / static_cast<double>(n) + 1e-5);
                for (int64_t i = 0; i < n; ++i) o.push_back(x[i] * s * l[1].values[static_cast<size_t>(i)]);
            }
            return o;
        };
        c.max_nmse = 1e-10;
        cases.push_back(std::move(c));
    }
}

void add_soft_max(std::vector<OpCase>& cases) {
    for (int variant = 0; variant < 4; ++variant) {
        const int64_t n = 19, rows = variant == 3 ? 1 : 6, heads = 3;
        const DType mask_type = variant == 2 ? DType::F16 : DType::F32;
        const bool masked = variant != 0;
        OpCase c;
        c.name = std::string("soft_max ") + (masked ? "mask " + tname(mask_type) : "no mask") +
                 (variant == 3 ? " 1 row" : "");
        c.leaves = {random_leaf(DType::F32, {n, rows, heads}, 61, 3.0)};
        if (masked) c.leaves.push_back(float_leaf(mask_type, {n, rows + 2}, causal_mask(n, rows + 2, n - rows, 0)));
        c.build = [masked](Graph& g, std::vector<Tensor*>& l) {
            return g.soft_max(l[0], masked ? l[1] : nullptr, 0.7f);
        };
        c.reference = [=](const Refs& l) {
            Out o;
            for (int64_t h = 0; h < heads; ++h)
                for (int64_t r = 0; r < rows; ++r) {
                    std::vector<double> v(static_cast<size_t>(n));
                    double mx = -INFINITY, sum = 0;
                    for (int64_t i = 0; i < n; ++i) {
                        v[static_cast<size_t>(i)] = l[0].at(i, r, h) * 0.7 + (masked ? l[1].at(i, r) : 0.0);
                        mx = std::max(mx, v[static_cast<size_t>(i)]);
                    }
                    for (double& x : v) sum += (x = std::exp(x - mx));
                    for (double x : v) o.push_back(x / sum);
                }
            return o;
        };
        c.max_nmse = 1e-10;
        cases.push_back(std::move(c));
    }
}

struct RopeVariant {
    const char* name;
    RopeMode mode;
    int64_t head;
    int32_t n_dims;
    bool factors;
    bool yarn;
};

RopeParams rope_params(const RopeVariant& v) {
    RopeParams rp;
    rp.n_dims = v.n_dims;
    rp.mode = v.mode;
    rp.freq_base = 10000.0f;
    if (v.yarn) {
        rp.freq_scale = 0.25f;
        rp.ext_factor = 1.0f;
        rp.n_ctx_orig = 4096;
    }
    return rp;
}

// RoPE straight from the definition: theta_i = pos * base^(-2i/n_dims) / factor_i, YaRN
// mixing interpolated and extrapolated angles by a ramp over i. x [head, H, T]; the result
// in the same order.
Out rope_reference(const RopeVariant& v, const RopeParams& rp, const Refs& l, int64_t H, int64_t T, int ix) {
    Out o;
    const double base = rp.freq_base, n_dims = rp.n_dims;
    double lo = 0, hi = 0;
    if (v.yarn) {
        auto corr = [&](double beta) {
            return n_dims * std::log(rp.n_ctx_orig / (beta * 2 * M_PI)) / (2 * std::log(base));
        };
        lo = std::max(0.0, std::floor(corr(rp.beta_fast)));
        hi = std::min(n_dims - 1, std::ceil(corr(rp.beta_slow)));
    }
    const auto& x = l[static_cast<size_t>(ix)];
    const auto& pos = l[static_cast<size_t>(ix + 1)];
    for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h) {
            std::vector<double> row(static_cast<size_t>(v.head));
            for (int64_t i = 0; i < v.head; ++i) row[static_cast<size_t>(i)] = x.at(i, h, t);
            for (int i = 0; i < rp.n_dims / 2; ++i) {
                double te = pos.values[static_cast<size_t>(t)] * std::pow(base, -2.0 * i / n_dims);
                if (v.factors) te /= l[static_cast<size_t>(ix + 2)].values[static_cast<size_t>(i)];
                double theta = rp.freq_scale * te, mscale = rp.attn_factor;
                if (v.yarn) {
                    double y = (i - lo) / std::max(0.001, hi - lo);
                    double mix = (1 - std::min(1.0, std::max(0.0, y))) * rp.ext_factor;
                    theta = theta * (1 - mix) + te * mix;
                    mscale *= 1 + 0.1 * std::log(1 / rp.freq_scale);
                }
                size_t a = v.mode == RopeMode::NeoX ? static_cast<size_t>(i) : static_cast<size_t>(2 * i);
                size_t b = v.mode == RopeMode::NeoX ? static_cast<size_t>(i + rp.n_dims / 2) : a + 1;
                double x0 = row[a], x1 = row[b];
                row[a] = (x0 * std::cos(theta) - x1 * std::sin(theta)) * mscale;
                row[b] = (x0 * std::sin(theta) + x1 * std::cos(theta)) * mscale;
            }
            o.insert(o.end(), row.begin(), row.end());
        }
    return o;
}

void add_rope(std::vector<OpCase>& cases) {
    const RopeVariant variants[] = {
        {"normal", RopeMode::Normal, 64, 64, false, false},
        {"neox", RopeMode::NeoX, 64, 64, false, false},
        {"neox partial", RopeMode::NeoX, 80, 32, false, false},
        {"normal freq factors", RopeMode::Normal, 32, 32, true, false},
        {"neox yarn", RopeMode::NeoX, 64, 64, false, true},
        {"normal head 128", RopeMode::Normal, 128, 128, false, false},
    };
    const int64_t T = 5;
    const std::vector<int64_t> pos = {0, 1, 7, 100, 4095};
    // 3 heads, and 40: a GPU computes each angle once for several heads (a group of 8 here, a
    // last one of 3 and 5), and rotates cache rows in chunks of whole heads (here 32 and 8).
    const auto heads_name = [](int64_t H) { return H == 3 ? std::string() : ", " + std::to_string(H) + " heads"; };
    const auto factor_leaf = [](const RopeVariant& v) {
        std::vector<double> f;
        for (int i = 0; i < v.n_dims / 2; ++i) f.push_back(1.0 + i * 0.5);
        return float_leaf(DType::F32, {v.n_dims / 2}, f);
    };
    for (const int64_t H : {3, 40})
        for (const RopeVariant& v : variants) {
            const RopeParams rp = rope_params(v);
            OpCase c;
            c.name = std::string("rope ") + v.name + heads_name(H);
            c.leaves = {random_leaf(DType::F32, {v.head, H, T}, 71), int_leaf(DType::I32, {T}, pos)};
            if (v.factors) c.leaves.push_back(factor_leaf(v));
            c.build = [rp, v](Graph& g, std::vector<Tensor*>& l) {
                return g.rope(l[0], l[1], v.factors ? l[2] : nullptr, rp);
            };
            c.reference = [rp, v, H, T](const Refs& l) { return rope_reference(v, rp, l, H, T, 0); };
            c.max_nmse = 1e-7;
            cases.push_back(std::move(c));
        }

    // rope_set_rows: the rotated tokens into scattered rows of an F16 or Q8_0 cache (the
    // other rows untouched), as rope then set_rows.
    for (const int64_t H : {3, 40})
        for (const RopeVariant& v : variants)
            for (DType t : {DType::F16, DType::Q8_0}) {
                if (t == DType::Q8_0 && (v.head * H) % 32 != 0) continue;
                const RopeParams rp = rope_params(v);
                const int64_t E = v.head * H;
                const std::vector<int64_t> rows = {8, 0, 4, 2, 6};
                OpCase c;
                c.name = std::string("rope_set_rows ") + v.name + " into " + tname(t) + heads_name(H);
                c.leaves = {random_leaf(t, {E, 9}, 72), random_leaf(DType::F32, {v.head, H, T}, 71),
                            int_leaf(DType::I32, {T}, pos), int_leaf(DType::I32, {T}, rows)};
                if (v.factors) c.leaves.push_back(factor_leaf(v));
                c.build = [rp, v](Graph& g, std::vector<Tensor*>& l) {
                    return g.rope_set_rows(l[0], l[1], l[2], v.factors ? l[4] : nullptr, rp, l[3]);
                };
                c.reference = [rp, v, H, T, E, t, rows](const Refs& l) {
                    // The factors follow the row indices: shift them to where rope_reference looks.
                    Refs r = {l[0], l[1], l[2]};
                    if (v.factors) r.push_back(l[4]);
                    const Out rotated = rope_reference(v, rp, r, H, T, 1);
                    Out o = l[0].values;
                    std::vector<float> x(static_cast<size_t>(E)), back(static_cast<size_t>(E));
                    std::vector<uint8_t> q(row_size(t, E));
                    for (int64_t i = 0; i < T; ++i) {
                        for (int64_t e = 0; e < E; ++e)
                            x[static_cast<size_t>(e)] = static_cast<float>(rotated[static_cast<size_t>(i * E + e)]);
                        quant::quantize_row(t, x.data(), q.data(), E);
                        quant::dequantize_row(t, q.data(), back.data(), E);
                        for (int64_t e = 0; e < E; ++e)
                            o[static_cast<size_t>(rows[static_cast<size_t>(i)] * E + e)] = back[static_cast<size_t>(e)];
                    }
                    return o;
                };
                // Q8_0: a value that lands on a rounding boundary may take the other code.
                c.max_nmse = t == DType::F16 ? 1e-6 : 1e-5;
                cases.push_back(std::move(c));
            }

    // A decoding step's three writes in a row, which a GPU may run as one launch: the queries
    // rotated, the keys rotated into their cache rows, the values into theirs. The result is
    // the rotated queries, then every row of both caches.
    for (const RopeVariant& v : {variants[0], variants[4]}) {
        const RopeParams rp = rope_params(v);
        const int64_t H = 3, E = v.head * H, n_cells = 9;
        const std::vector<int64_t> rows = {8, 0, 4, 2, 6}, all = {0, 1, 2, 3, 4, 5, 6, 7, 8};
        OpCase c;
        c.name = std::string("rope q, rope_set_rows k, set_rows v ") + v.name;
        c.leaves = {random_leaf(DType::F32, {v.head, H, T}, 74),
                    random_leaf(DType::F32, {v.head, H, T}, 71),
                    int_leaf(DType::I32, {T}, pos),
                    int_leaf(DType::I32, {T}, rows),
                    random_leaf(DType::F16, {E, n_cells}, 72),
                    random_leaf(DType::F16, {E, n_cells}, 73),
                    random_leaf(DType::F32, {E, T}, 75),
                    int_leaf(DType::I32, {n_cells}, all)};
        c.build = [rp, E](Graph& g, std::vector<Tensor*>& l) {
            Tensor* q = g.rope(l[0], l[2], nullptr, rp);
            Tensor* kc = g.rope_set_rows(l[4], l[1], l[2], nullptr, rp, l[3]);
            Tensor* vc = g.set_rows(l[5], l[6], l[3]);
            Tensor* out = g.concat(g.reshape(q, {E, T}), g.get_rows(kc, l[7]), 1);
            return g.concat(out, g.get_rows(vc, l[7]), 1);
        };
        c.reference = [rp, v, E, rows](const Refs& l) {
            auto f16 = [](double x) { return static_cast<double>(fp16_to_fp32(fp32_to_fp16(static_cast<float>(x)))); };
            Out o = rope_reference(v, rp, {l[0], l[2]}, H, T, 0);
            const Out k = rope_reference(v, rp, {l[1], l[2]}, H, T, 0);
            Out kc = l[4].values, vc = l[5].values;
            for (int64_t i = 0; i < T; ++i)
                for (int64_t e = 0; e < E; ++e) {
                    const size_t at = static_cast<size_t>(rows[static_cast<size_t>(i)] * E + e);
                    kc[at] = f16(k[static_cast<size_t>(i * E + e)]);
                    vc[at] = f16(l[6].at(e, i));
                }
            o.insert(o.end(), kc.begin(), kc.end());
            o.insert(o.end(), vc.begin(), vc.end());
            return o;
        };
        c.max_nmse = 1e-6;
        cases.push_back(std::move(c));
    }
}

// Copies and indexing

void add_copies(std::vector<OpCase>& cases) {
    for (DType t : kAllTypes) {
        const int64_t E = type_traits(t).block_size == 256 ? 256 : 64;
        // cpy F32 -> t (the KV cache write), result read back through t's dequantizer.
        OpCase c;
        c.name = "cpy F32 -> " + tname(t) + " " + dims({E, 3});
        c.leaves = {random_leaf(DType::F32, {E, 3}, 91), random_leaf(t, {E, 3}, 92)};
        c.build = [](Graph& g, std::vector<Tensor*>& l) { return g.cpy(l[0], l[1]); };
        c.reference = [t, E](const Refs& l) {
            // The reference: quantize each row with the reference quantizer, dequantize.
            std::vector<float> x(l[0].values.begin(), l[0].values.end());
            std::vector<uint8_t> q(row_size(t, E));
            std::vector<float> back(static_cast<size_t>(E));
            Out o;
            for (int r = 0; r < 3; ++r) {
                quant::quantize_row(t, x.data() + r * E, q.data(), E);
                quant::dequantize_row(t, q.data(), back.data(), E);
                o.insert(o.end(), back.begin(), back.end());
            }
            return o;
        };
        c.max_nmse = 1e-12;
        cases.push_back(std::move(c));

        // cpy t -> F32 (dequantizing copy).
        OpCase d;
        d.name = "cpy " + tname(t) + " -> F32 " + dims({E, 2});
        d.leaves = {random_leaf(t, {E, 2}, 93), random_leaf(DType::F32, {E, 2}, 94)};
        d.build = [](Graph& g, std::vector<Tensor*>& l) { return g.cpy(l[0], l[1]); };
        d.reference = [](const Refs& l) { return l[0].values; };
        d.max_nmse = 1e-12;
        cases.push_back(std::move(d));

        // set_rows into a t matrix at scattered rows (I32 and I64 indices).
        for (DType it : {DType::I32, DType::I64}) {
            OpCase s;
            s.name = "set_rows " + tname(t) + " idx " + tname(it);
            s.leaves = {random_leaf(t, {E, 9}, 95), random_leaf(DType::F32, {E, 3}, 96), int_leaf(it, {3}, {8, 0, 4})};
            s.build = [](Graph& g, std::vector<Tensor*>& l) { return g.set_rows(l[0], l[1], l[2]); };
            s.reference = [t, E](const Refs& l) {
                Out o = l[0].values;
                std::vector<float> x(l[1].values.begin(), l[1].values.end());
                std::vector<uint8_t> q(row_size(t, E));
                std::vector<float> back(static_cast<size_t>(E));
                const int64_t rows[] = {8, 0, 4};
                for (int r = 0; r < 3; ++r) {
                    quant::quantize_row(t, x.data() + r * E, q.data(), E);
                    quant::dequantize_row(t, q.data(), back.data(), E);
                    for (int64_t i = 0; i < E; ++i)
                        o[static_cast<size_t>(rows[r] * E + i)] = back[static_cast<size_t>(i)];
                }
                return o;
            };
            s.max_nmse = 1e-12;
            cases.push_back(std::move(s));
        }
    }

    // Reshaping copy between plain types, and cont of a transposed view.
    {
        OpCase c;
        c.name = "cpy F16 [6, 4] -> F32 [8, 3]";
        c.leaves = {random_leaf(DType::F16, {6, 4}, 97), random_leaf(DType::F32, {8, 3}, 98)};
        c.build = [](Graph& g, std::vector<Tensor*>& l) { return g.cpy(l[0], l[1]); };
        c.reference = [](const Refs& l) { return l[0].values; };
        c.max_nmse = 1e-12;
        cases.push_back(std::move(c));
    }
    for (DType t : {DType::F32, DType::F16}) {
        OpCase c;
        c.name = "cont " + tname(t) + " of a transposed [5, 7]";
        c.leaves = {random_leaf(t, {7, 5}, 99)};
        c.build = [](Graph& g, std::vector<Tensor*>& l) { return g.cont(g.transpose(l[0])); };
        c.reference = [](const Refs& l) {
            Out o;
            for (int64_t i1 = 0; i1 < 7; ++i1)
                for (int64_t i0 = 0; i0 < 5; ++i0) o.push_back(l[0].at(i1, i0));
            return o;
        };
        c.max_nmse = 1e-12;
        cases.push_back(std::move(c));
    }

    for (int dim = 0; dim < 3; ++dim) {
        std::vector<int64_t> a = {4, 3, 2}, b = a;
        b[static_cast<size_t>(dim)] = 5;
        OpCase c;
        c.name = "concat dim " + std::to_string(dim);
        c.leaves = {random_leaf(DType::F32, a, 101), random_leaf(DType::F32, b, 102)};
        c.build = [dim](Graph& g, std::vector<Tensor*>& l) { return g.concat(l[0], l[1], dim); };
        c.reference = [a, dim](const Refs& l) {
            Out o;
            std::vector<int64_t> ne = a;
            ne[static_cast<size_t>(dim)] += 5;
            for (int64_t i2 = 0; i2 < ne[2]; ++i2)
                for (int64_t i1 = 0; i1 < ne[1]; ++i1)
                    for (int64_t i0 = 0; i0 < ne[0]; ++i0) {
                        int64_t j[3] = {i0, i1, i2};
                        bool first = j[dim] < a[static_cast<size_t>(dim)];
                        if (!first) j[dim] -= a[static_cast<size_t>(dim)];
                        o.push_back((first ? l[0] : l[1]).at(j[0], j[1], j[2]));
                    }
            return o;
        };
        c.max_nmse = 0;
        cases.push_back(std::move(c));
    }

    {
        OpCase c;
        c.name = "argmax 50x7";
        c.leaves = {random_leaf(DType::F32, {50, 7}, 103)};
        c.build = [](Graph& g, std::vector<Tensor*>& l) { return g.argmax(l[0]); };
        c.reference = [](const Refs& l) {
            Out o;
            for (int64_t r = 0; r < 7; ++r) {
                int64_t best = 0;
                for (int64_t i = 1; i < 50; ++i)
                    if (l[0].at(i, r) > l[0].at(best, r)) best = i;
                o.push_back(static_cast<double>(best));
            }
            return o;
        };
        c.max_nmse = 0;
        cases.push_back(std::move(c));
    }
}

}  // namespace

std::string tname(DType t) { return std::string(type_name(t)); }

std::vector<double> causal_mask(int64_t n_kv, int64_t n_q, int64_t first_pos, int64_t window) {
    std::vector<double> m(static_cast<size_t>(n_kv * n_q));
    for (int64_t q = 0; q < n_q; ++q)
        for (int64_t k = 0; k < n_kv; ++k) {
            int64_t qp = first_pos + q;
            bool visible = k <= qp && (window <= 0 || qp - k < window);
            m[static_cast<size_t>(q * n_kv + k)] = visible ? 0.0 : -INFINITY;
        }
    return m;
}

std::vector<OpCase> all_op_cases() {
    std::vector<OpCase> cases;
    add_get_rows(cases);
    add_mul_mat(cases);
    add_elementwise(cases);
    add_norms(cases);
    add_soft_max(cases);
    add_rope(cases);
    add_attention(cases);
    add_decode_steps(cases);
    add_copies(cases);
    return cases;
}

}  // namespace tessera::test
