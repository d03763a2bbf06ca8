// Model conversion (runtime/quantize, tessera_quantize): the mix rules, and a random-weight
// F32 model converted to each type, loaded and run, with logits close to the original's
// by a bound per type, the tensor types and file type the mix promises, and the error
// paths (unknown type, same file, missing input, cancel, unwritable output).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/context.h"
#include "runtime/loader.h"
#include "runtime/quantize.h"
#include "tensor/gguf.h"
#include "tessera.h"
#include "tests/models/random_model.h"
#include "tests/test_support.h"

using tessera::DType;

namespace {

tessera::test::RandomLlamaConfig config() {
    // Rows of 256 so the k-quants apply; 8 layers so the favoured-layer rule shows.
    tessera::test::RandomLlamaConfig c{"quantize-src", 97, 256, 8, 4, 2, 64, 512, DType::F32, false, false, 10000.0f, 21};
    return c;
}

std::vector<float> logits_of(const std::string& path, const std::vector<int32_t>& prompt) {
    auto model = tessera::runtime::load_model(tessera::gguf::File::open(path), {});
    tessera::runtime::ContextOptions opt;
    opt.n_ctx = 32;
    opt.n_threads = 2;
    tessera::runtime::Context ctx(*model, opt);
    ctx.decode(prompt, /*all_logits=*/true);
    std::vector<float> out;
    for (int32_t i = 0; i < static_cast<int32_t>(prompt.size()); ++i) {
        const float* l = ctx.logits(i);
        REQUIRE(l != nullptr);
        out.insert(out.end(), l, l + 97);
    }
    return out;
}

double nmse(const std::vector<float>& ref, const std::vector<float>& x) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        num += (static_cast<double>(x[i]) - ref[i]) * (static_cast<double>(x[i]) - ref[i]);
        den += static_cast<double>(ref[i]) * ref[i];
    }
    return num / den;
}

int32_t tensor_type(const tessera_gguf* g, const char* name) {
    const int64_t i = tessera_gguf_find_tensor(g, name);
    if (i < 0) return -1;
    tessera_tensor_info ti;
    REQUIRE(tessera_gguf_tensor(g, i, &ti) == TESSERA_OK);
    return ti.type;
}

int64_t file_type(const tessera_gguf* g) {
    int64_t v = -1;
    const int64_t k = tessera_gguf_find_key(g, "general.file_type");
    if (k >= 0) REQUIRE(tessera_gguf_value_int(tessera_gguf_kv_value(g, k), &v) == TESSERA_OK);
    return v;
}

}  // namespace

TEST_CASE("mix rules: which tensor gets which type") {
    const tessera::QuantMix* m = tessera::find_quant_mix("q4_k_m");
    REQUIRE(m != nullptr);
    CHECK(std::string(m->name) == "Q4_K_M");
    const int64_t wide[2] = {2048, 2048};
    // 22 layers: favoured are 0-1, 19-21 and every third from layer 4 (4, 7, ..., 16).
    const int favoured[] = {0, 1, 4, 7, 10, 13, 16, 19, 20, 21};
    for (int il = 0; il < 22; ++il) {
        bool f = false;
        for (int x : favoured) f |= x == il;
        const std::string p = "blk." + std::to_string(il) + ".";
        CHECK(tessera::choose_quant_type(*m, p + "attn_v.weight", 2, wide, il, 22, true, false) ==
              (f ? DType::Q6_K : DType::Q4_K));
        CHECK(tessera::choose_quant_type(*m, p + "ffn_down.weight", 2, wide, il, 22, true, false) ==
              (f ? DType::Q6_K : DType::Q4_K));
        CHECK(tessera::choose_quant_type(*m, p + "attn_q.weight", 2, wide, il, 22, true, false) == DType::Q4_K);
        CHECK(tessera::choose_quant_type(*m, p + "attn_v.weight", 2, wide, il, 22, true, true) == DType::Q4_K);
    }
    CHECK(tessera::choose_quant_type(*m, "output.weight", 2, wide, -1, 22, true, false) == DType::Q6_K);
    CHECK(tessera::choose_quant_type(*m, "token_embd.weight", 2, wide, -1, 22, true, false) == DType::Q4_K);
    CHECK(tessera::choose_quant_type(*m, "token_embd.weight", 2, wide, -1, 22, false, false) == DType::Q6_K);
    CHECK(tessera::choose_quant_type(*m, "blk.0.attn_norm.weight", 1, wide, 0, 22, true, false) == DType::F32);
    CHECK(tessera::choose_quant_type(*m, "blk.0.attn_q.bias", 2, wide, 0, 22, true, false) == DType::F32);
    // Rows that do not fit a k-quant block get the nearest legacy type, then F16.
    const int64_t narrow[2] = {96, 64}, odd[2] = {48, 64};
    CHECK(tessera::choose_quant_type(*m, "blk.2.attn_q.weight", 2, narrow, 2, 22, true, false) == DType::Q5_0);
    CHECK(tessera::choose_quant_type(*m, "blk.2.attn_q.weight", 2, odd, 2, 22, true, false) == DType::F16);
    const tessera::QuantMix* q8 = tessera::find_quant_mix("Q8_0");
    REQUIRE(q8 != nullptr);
    CHECK(tessera::choose_quant_type(*q8, "output.weight", 2, wide, -1, 22, true, false) == DType::Q8_0);
    CHECK(tessera::find_quant_mix("Q4_K_X") == nullptr);
    CHECK(tessera::quant_mixes().size() >= 15);
}

TEST_CASE("a random model converted to each type stays close to the original") {
    tessera::test::ScratchDir dir;
    const auto c = config();
    const std::string src = dir.file("src.gguf").string();
    tessera::test::write_random_llama(c, src);
    const std::vector<int32_t> prompt = {1, 5, 9, 42, 77, 3};
    const std::vector<float> ref = logits_of(src, prompt);

    struct Case {
        const char* type;
        double max_nmse;
        int32_t attn_q, attn_v0, attn_v2, output;
        int64_t file_type;
    };
    // Types by GGUF id: F16 1, Q4_0 2, Q8_0 8, Q4_K 12, Q5_K 13, Q6_K 14.
    const Case cases[] = {
        {"F16", 1e-6, 1, 1, 1, 1, 1},
        {"Q8_0", 1.5e-3, 8, 8, 8, 8, 7},
        {"Q6_K", 7e-3, 14, 14, 14, 14, 18},
        {"Q5_K_M", 2e-2, 13, 14, 13, 14, 17},
        {"Q4_K_M", 7e-2, 12, 14, 12, 14, 15},
        {"Q4_0", 1.2e-1, 2, 2, 2, 14, 2},
    };
    // Measured here: 6.8e-7, 7.3e-4, 3.4e-3, 9.8e-3, 3.8e-2, 6.1e-2 (random weights through
    // 8 layers amplify rounding far more than trained ones). Fewer bits, more error:
    double previous = 0;
    for (const Case& k : cases) {
        CAPTURE(std::string(k.type));
        const std::string out = dir.file(std::string("out-") + k.type + ".gguf").string();
        tessera_quantize_params p = tessera_quantize_default_params();
        p.type = k.type;
        p.n_threads = 2;
        REQUIRE_MESSAGE(tessera_quantize(src.c_str(), out.c_str(), &p) == TESSERA_OK, std::string(tessera_last_error()));
        tessera_gguf* g = nullptr;
        REQUIRE(tessera_gguf_open(out.c_str(), &g) == TESSERA_OK);
        CHECK(tensor_type(g, "blk.1.attn_q.weight") == k.attn_q);
        CHECK(tensor_type(g, "blk.0.attn_v.weight") == k.attn_v0);
        CHECK(tensor_type(g, "blk.2.attn_v.weight") == k.attn_v2);  // 8 layers: 0, 3, 6, 7 favoured
        CHECK(tensor_type(g, "output.weight") == k.output);
        CHECK(tensor_type(g, "blk.0.attn_norm.weight") == 0);
        CHECK(file_type(g) == k.file_type);
        tessera_gguf_close(g);
        const double e = nmse(ref, logits_of(out, prompt));
        MESSAGE(k.type << ": logits NMSE " << e);
        CHECK(e < k.max_nmse);
        CHECK(e > previous);
        previous = e;
    }
}

TEST_CASE("quantize error paths leave no output and name the problem") {
    tessera::test::ScratchDir dir;
    const auto c = config();
    const std::string src = dir.file("src.gguf").string();
    tessera::test::write_random_llama(c, src);
    const std::string out = dir.file("out.gguf").string();
    tessera_quantize_params p = tessera_quantize_default_params();

    p.type = "Q4_K_X";
    CHECK(tessera_quantize(src.c_str(), out.c_str(), &p) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(tessera_last_error()).find("Q4_K_M") != std::string::npos);  // lists the known types
    p.type = "Q8_0";
    CHECK(tessera_quantize(src.c_str(), src.c_str(), &p) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_quantize(nullptr, out.c_str(), &p) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_quantize(dir.file("missing.gguf").string().c_str(), out.c_str(), &p) == TESSERA_ERROR_IO);
    CHECK(tessera_quantize(src.c_str(), dir.file("no/such/dir/out.gguf").string().c_str(), &p) == TESSERA_ERROR_IO);
    p.n_threads = -1;
    CHECK(tessera_quantize(src.c_str(), out.c_str(), &p) == TESSERA_ERROR_INVALID_ARGUMENT);
    p.n_threads = 1;
    // A truncated input is a bad file.
    std::vector<uint8_t> bytes = tessera::test::read_file_bytes(src);
    bytes.resize(bytes.size() / 2);
    const std::string cut = dir.file("cut.gguf").string();
    tessera::test::write_file_bytes(cut, bytes);
    CHECK(tessera_quantize(cut.c_str(), out.c_str(), &p) == TESSERA_ERROR_BAD_FILE);
    // Cancelling from the progress callback after the third tensor.
    int calls = 0;
    p.progress = [](float, void* user) -> int32_t { return ++*static_cast<int*>(user) < 3; };
    p.progress_user = &calls;
    CHECK(tessera_quantize(src.c_str(), out.c_str(), &p) != TESSERA_OK);
    CHECK(calls == 3);
    CHECK(std::string(tessera_last_error()).find("cancelled") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(out));
}
