// The interleaved r16 weight layout (backends/cpu/kernels/repack.h): conversion both ways is
// exact; every SIMD r16 kernel this CPU runs is bit-identical to its scalar twin; the twin
// agrees with the plain-layout reference kernels; and a model loaded with repacking gives
// the logits of the same model loaded without it.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/kernels/kernels.h"
#include "backends/cpu/kernels/ref_kernels.h"
#include "backends/cpu/kernels/repack.h"
#include "backends/cpu/onednn.h"
#include "runtime/context.h"
#include "runtime/loader.h"
#include "runtime/quantize.h"
#include "tensor/fp16.h"
#include "tensor/gguf.h"
#include "tensor/quant/quant.h"
#include "tests/models/random_model.h"
#include "tests/test_support.h"

using namespace tessera;
namespace kernels = tessera::cpu::kernels;

namespace {

// Every type with an r16 layout.
const DType kR16Types[] = {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::Q6_K,
                           DType::F16,  DType::BF16, DType::F32};

// n rows of k random floats quantized to `t`.
std::vector<uint8_t> random_rows(DType t, int64_t k, int64_t n, std::mt19937& rng) {
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(k));
    std::vector<uint8_t> out(row_size(t, k) * static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
        for (float& v : x) v = dist(rng) * (1.0f + static_cast<float>(r % 5));
        quant::quantize_row(t, x.data(), out.data() + static_cast<size_t>(r) * row_size(t, k), k);
    }
    return out;
}

struct Activations {
    std::vector<uint8_t> q;       // nc rows of Q8_0 blocks (or Q8_K, F32, bf16)
    std::vector<int32_t> sums;    // nc rows of block sums
    size_t row_bytes = 0;
    std::vector<float> bf16_as_f32;  // bf16 rows: the same values as floats (the plain kernels' input)
};

// nc activation rows in the format the r16 kernels of `t` take (Q8_0 plus block sums, Q8_K,
// F32 or bf16).
Activations random_acts(DType t, int64_t k, int nc, std::mt19937& rng) {
    Activations a;
    const DType f = kernels::r16_uses_f32(t)    ? DType::F32
                    : kernels::r16_uses_q8_K(t) ? DType::Q8_K
                    : kernels::r16_uses_bf16(t) ? DType::BF16
                                                : DType::Q8_0;
    a.q = random_rows(f, k, nc, rng);
    a.row_bytes = row_size(f, k);
    if (f == DType::BF16) {
        a.bf16_as_f32.resize(static_cast<size_t>(nc * k));
        quant::dequantize_row(DType::BF16, a.q.data(), a.bf16_as_f32.data(), nc * k);
    }
    a.sums.resize(static_cast<size_t>(nc * (k / 32)));
    if (f == DType::Q8_0)
        for (int c = 0; c < nc; ++c)
            kernels::act_block_sums(a.q.data() + c * a.row_bytes, a.sums.data() + c * (k / 32), k);
    return a;
}

}  // namespace

TEST_CASE("r16 repacking is exact both ways") {
    std::mt19937 rng(7);
    for (DType t : kR16Types) {
        for (auto [k, n] : {std::pair<int64_t, int64_t>{256, 16}, {768, 48}, {4096, 32}}) {
            CAPTURE(std::string(type_name(t)));
            CAPTURE(k);
            CAPTURE(n);
            const std::vector<uint8_t> plain = random_rows(t, k, n, rng);
            std::vector<uint8_t> packed(kernels::r16_bytes(t, k, n)), back(plain.size());
            kernels::repack_r16(t, plain.data(), packed.data(), k, n);
            CHECK(packed != plain);
            kernels::unpack_r16(t, packed.data(), back.data(), k, n);
            CHECK(back == plain);
        }
    }
    CHECK_FALSE(kernels::r16_supported(DType::Q5_K));
    std::vector<uint8_t> buf(row_size(DType::Q4_0, 32) * 20);
    CHECK_THROWS(kernels::repack_r16(DType::Q4_0, buf.data(), buf.data(), 32, 20));  // not whole groups
}

TEST_CASE("the r16 scalar twin agrees with the plain-layout kernels") {
    std::mt19937 rng(11);
    const int64_t k = 256;
    for (DType t : kR16Types) {
        CAPTURE(std::string(type_name(t)));
        const std::vector<uint8_t> plain = random_rows(t, k, 16, rng);
        std::vector<uint8_t> packed(kernels::r16_bytes(t, k, 16));
        kernels::repack_r16(t, plain.data(), packed.data(), k, 16);
        const Activations a = random_acts(t, k, 3, rng);
        float got[3 * 16];
        kernels::dot_r16_ref(t, k, packed.data(), a.q.data(), a.row_bytes, a.sums.data(), static_cast<size_t>(k / 32),
                             3, got, 16);
        for (int c = 0; c < 3; ++c)
            for (int j = 0; j < 16; ++j) {
                // The plain kernel's scalar twin, one row against one activation row (BF16:
                // against the activations the r16 kernel sees, as floats).
                const void* xc = t == DType::BF16 ? static_cast<const void*>(a.bf16_as_f32.data() + c * k)
                                                  : a.q.data() + c * a.row_bytes;
                const float want = kernels::ref::vec_dot(t)(k, plain.data() + static_cast<size_t>(j) * row_size(t, k), xc);
                CHECK(got[c * 16 + j] == doctest::Approx(want).epsilon(1e-5));
            }
    }
}

TEST_CASE("every r16 kernel this CPU runs is bit-identical to its scalar twin") {
    std::mt19937 rng(13);
    int checked = 0;
    for (const kernels::TargetInfo& target : kernels::compiled_targets()) {
        if (!target.supported) continue;
        REQUIRE(kernels::select_target(target.name));
        for (DType t : kR16Types) {
            const kernels::DotR16Fn fn = kernels::active().dot_r16[static_cast<uint32_t>(t)];
            if (!fn) continue;
            CAPTURE(target.name);
            CAPTURE(std::string(type_name(t)));
            for (int64_t k : {256, 512, 2048, 2049}) {
                if (!kernels::r16_fits(t, k, 32)) continue;  // odd lengths: F16 and F32 only
                const std::vector<uint8_t> plain = random_rows(t, k, 32, rng);
                std::vector<uint8_t> packed(kernels::r16_bytes(t, k, 32));
                kernels::repack_r16(t, plain.data(), packed.data(), k, 32);
                for (int nc = 1; nc <= kernels::kR16MaxCols; ++nc) {
                    const Activations a = random_acts(t, k, nc, rng);
                    std::vector<float> want(static_cast<size_t>(nc) * 20, -1.0f), got(want.size(), -1.0f);
                    const size_t group = packed.size() / 2;  // the second group of 16 rows
                    kernels::dot_r16_ref(t, k, packed.data() + group, a.q.data(), a.row_bytes, a.sums.data(),
                                         static_cast<size_t>(k / 32), nc, want.data(), 20);
                    fn(k, packed.data() + group, a.q.data(), a.row_bytes, a.sums.data(), static_cast<size_t>(k / 32), nc,
                       got.data(), 20);
                    CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
                    ++checked;
                }
            }
        }
    }
    REQUIRE(kernels::select_target("best"));
    if (checked == 0) tessera::test::skip_because("no SIMD r16 kernel on this CPU (they need AVX2 or AVX-512 VNNI); the scalar twin is tested above");
}

TEST_CASE("a model loaded with repacking gives the logits of the plain layout") {
    tessera::test::ScratchDir dir;
    std::vector<tessera::test::RandomLlamaConfig> configs;
    for (const auto& cfg : tessera::test::random_llama_configs())
        if (cfg.weight_type == DType::Q4_0 || cfg.weight_type == DType::Q4_1 || cfg.weight_type == DType::Q8_0 ||
            cfg.weight_type == DType::F16 ||
            cfg.weight_type == DType::F32)
            configs.push_back(cfg);
    // Q4_K and Q6_K: models with rows of 256, converted with `tessera quantize`'s Q4_K_S and
    // Q6_K mixes.
    configs.push_back({"llama-q4_k", 97, 256, 2, 4, 2, 64, 512, DType::Q4_K, false, false, 10000.0f, 31});
    configs.push_back({"llama-q6_k", 97, 256, 2, 4, 2, 64, 512, DType::Q6_K, false, false, 10000.0f, 37});
    configs.push_back({"llama-bf16", 97, 256, 2, 4, 2, 64, 512, DType::BF16, false, false, 10000.0f, 41});
    configs.push_back({"llama-q4_1", 97, 256, 2, 4, 2, 64, 512, DType::Q4_1, false, false, 10000.0f, 43});
    for (const auto& cfg : configs) {
        CAPTURE(cfg.name);
        const std::string path = dir.file(cfg.name + ".gguf").string();
        if (cfg.weight_type == DType::Q4_K || cfg.weight_type == DType::Q6_K || cfg.weight_type == DType::BF16) {
            auto f32 = cfg;
            f32.weight_type = DType::F32;
            tessera::test::write_random_llama(f32, path + ".f32");
            QuantizeOptions qo;
            qo.type = cfg.weight_type == DType::Q4_K ? "Q4_K_S" : cfg.weight_type == DType::Q6_K ? "Q6_K" : "BF16";
            quantize_file(path + ".f32", path, qo);
        } else {
            tessera::test::write_random_llama(cfg, path);
        }
        const std::vector<int32_t> tokens = tessera::test::reference_tokens(cfg);
        const bool converted =
            cfg.weight_type == DType::Q4_K || cfg.weight_type == DType::Q6_K || cfg.weight_type == DType::BF16;
        std::vector<std::vector<float>> logits;  // plain, repacked, and the F32 original if converted
        size_t repacked = 0;
        for (int run = 0; run < (converted ? 3 : 2); ++run) {
            const bool repack = run == 1;
            runtime::LoadOptions lo;
            lo.n_gpu_layers = 0;  // the CPU's layouts are what this test compares
            lo.repack = repack;
            auto model = runtime::load_model(gguf::File::open(run == 2 ? path + ".f32" : path), lo);
            if (repack) repacked = model->repacked_bytes;
            runtime::ContextOptions opt;
            opt.n_ctx = 32;
            opt.n_threads = 2;
            runtime::Context ctx(*model, opt);
            ctx.decode(tokens, /*all_logits=*/true);
            std::vector<float> l;
            for (int32_t i = 0; i < static_cast<int32_t>(tokens.size()); ++i)
                l.insert(l.end(), ctx.logits(i), ctx.logits(i) + cfg.n_vocab);
            // And one token through the cache (decoding uses the same layout).
            ctx.decode(std::vector<int32_t>{3}, false);
            l.insert(l.end(), ctx.logits(0), ctx.logits(0) + cfg.n_vocab);
            logits.push_back(l);
        }
        if (kernels::active().dot_r16[static_cast<uint32_t>(cfg.weight_type)] == nullptr) {
            CHECK(repacked == 0);
            tessera::test::skip_because("this CPU has no r16 kernel for " + std::string(type_name(cfg.weight_type)));
            continue;
        }
        if (tessera::cpu::onednn::chosen(cfg.weight_type)) {  // oneDNN reads the file's layout
            CHECK(repacked == 0);
            tessera::test::skip_because(std::string(type_name(cfg.weight_type)) + " prompts go to oneDNN on this CPU");
            continue;
        }
        CHECK(repacked > 0);
        auto nmse = [](const std::vector<float>& got, const std::vector<float>& want) {
            double num = 0, den = 0;
            for (size_t i = 0; i < want.size(); ++i) {
                num += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
                den += static_cast<double>(want[i]) * want[i];
            }
            return num / den;
        };
        const double diff = nmse(logits[1], logits[0]);
        MESSAGE(cfg.name, ": NMSE repacked vs plain ", diff, " (", repacked, " bytes repacked)");
        if (!converted) {
            CHECK(diff < 1e-9);
            continue;
        }
        // The k-quant kernels sum a block's integer products in another order than the plain
        // ones before their one float step, so the last bit of a matmul can differ; where that
        // flips the rounding of an 8-bit activation further on, a random model carries it to the
        // logits. Repacking must still change them far less than the conversion itself did.
        // BF16 in the r16 layout also rounds the activations to bf16 (vdpbf16ps takes bf16 on
        // both sides): a second rounding of the same size as the weights' own, so the bound is
        // the conversion's error itself.
        const double conversion = nmse(logits[0], logits[2]);
        MESSAGE(cfg.name, ": NMSE plain vs the F32 original ", conversion);
        CHECK(diff < std::max(1e-9, cfg.weight_type == DType::BF16 ? conversion : conversion / 10));
    }
}
