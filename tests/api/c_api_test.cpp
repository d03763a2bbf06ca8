// The public C API: every function's error paths (null handles, bad paths, bad files,
// overflow, cancellation) and, with the real default model, loading with progress,
// decoding, sampling, generation with a cancelling callback, and two contexts of one
// model on two threads giving the same tokens as one context alone.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tessera.h"
#include "tests/test_support.h"

namespace {

std::string model_path() {
    const char* dir = std::getenv("TESSERA_MODELS");
    std::string base = dir && *dir ? dir : std::string(std::getenv("HOME") ? std::getenv("HOME") : "/") +
                                              "/.cache/tessera/models";
    return base + "/smollm2-135m-instruct.gguf";
}

bool have_model() { return std::filesystem::exists(model_path()); }

std::vector<int32_t> greedy(const tessera_model* m, const std::vector<int32_t>& prompt, int n, int threads) {
    tessera_context_params cp = tessera_context_default_params();
    cp.n_ctx = 128;
    cp.n_threads = threads;
    tessera_context* ctx = nullptr;
    REQUIRE(tessera_context_new(m, &cp, &ctx) == TESSERA_OK);
    std::vector<int32_t> out;
    REQUIRE(tessera_decode(ctx, prompt.data(), static_cast<int32_t>(prompt.size()), 0) == TESSERA_OK);
    tessera_sampler_params sp = tessera_sampler_default_params();
    sp.temperature = 0;
    tessera_sampler* s = nullptr;
    REQUIRE(tessera_sampler_new(&sp, &s) == TESSERA_OK);
    for (int i = 0; i < n; ++i) {
        int32_t t = -1;
        REQUIRE(tessera_sampler_sample(s, ctx, -1, &t) == TESSERA_OK);
        out.push_back(t);
        REQUIRE(tessera_decode(ctx, &t, 1, 0) == TESSERA_OK);
    }
    tessera_sampler_free(s);
    tessera_context_free(ctx);
    return out;
}

}  // namespace

TEST_CASE("version, status and type names") {
    CHECK(std::strlen(tessera_version()) > 0);
    CHECK(std::string(tessera_status_name(TESSERA_ERROR_BAD_FILE)) == "bad file");
    CHECK(std::string(tessera_type_name(12)) == "Q4_K");
    CHECK(tessera_type_name(4) == nullptr);
    CHECK(tessera_type_block_size(2) == 32);
    CHECK(tessera_type_size(2) == 18);
    CHECK(tessera_type_size(-1) == 0);
}

TEST_CASE("null handles and bad arguments give errors, never crashes") {
    tessera_model* m = reinterpret_cast<tessera_model*>(1);
    CHECK(tessera_model_load(nullptr, nullptr, &m) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(m == nullptr);
    CHECK(tessera_model_load("x.gguf", nullptr, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_context* c = reinterpret_cast<tessera_context*>(1);
    CHECK(tessera_context_new(nullptr, nullptr, &c) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(c == nullptr);
    CHECK(std::strlen(tessera_last_error()) > 0);
    CHECK(tessera_decode(nullptr, nullptr, 1, 0) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_get_logits(nullptr, -1) == nullptr);
    CHECK(tessera_get_n_logits(nullptr) == 0);
    CHECK(tessera_context_n_ctx(nullptr) == 0);
    CHECK(tessera_context_n_past(nullptr) == 0);
    tessera_context_truncate(nullptr, 0);
    tessera_context_reset_timings(nullptr);
    tessera_timings t;
    CHECK(tessera_context_timings(nullptr, &t) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_sampler_params sp = tessera_sampler_default_params();
    sp.repeat_penalty = 0;
    tessera_sampler* s = reinterpret_cast<tessera_sampler*>(1);
    CHECK(tessera_sampler_new(&sp, &s) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(s == nullptr);
    int32_t tok = 0;
    CHECK(tessera_sampler_sample(nullptr, nullptr, -1, &tok) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_sampler_accept(nullptr, 1);
    tessera_sampler_reset(nullptr);
    CHECK(tessera_generate(nullptr, nullptr, "x", 1, 4, nullptr, nullptr, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(tessera_model_architecture(nullptr)).empty());
    CHECK(std::string(tessera_model_name(nullptr)).empty());
    CHECK(tessera_model_n_params(nullptr) == 0);
    CHECK(tessera_model_size(nullptr) == 0);
    CHECK(tessera_model_n_layer(nullptr) == 0);
    CHECK(tessera_model_n_embd(nullptr) == 0);
    CHECK(tessera_model_n_ctx_train(nullptr) == 0);
    CHECK(tessera_model_gguf(nullptr) == nullptr);
    CHECK(tessera_vocab_size(nullptr) == 0);
    CHECK(tessera_token_bos(nullptr) == -1);
    tessera_model_free(nullptr);
    tessera_context_free(nullptr);
    tessera_sampler_free(nullptr);
}

TEST_CASE("bad paths and bad files are reported, with the file named") {
    tessera::test::ScratchDir dir;
    tessera_model* m = nullptr;
    std::string missing = dir.file("missing.gguf").string();
    CHECK(tessera_model_load(missing.c_str(), nullptr, &m) == TESSERA_ERROR_IO);
    CHECK(std::string(tessera_last_error()).find(missing) != std::string::npos);
    std::string bad = dir.file("bad.gguf").string();
    tessera::test::write_file_bytes(bad, {'G', 'G', 'U', 'F', 3, 0, 0, 0, 1});
    CHECK(tessera_model_load(bad.c_str(), nullptr, &m) == TESSERA_ERROR_BAD_FILE);
    CHECK(std::string(tessera_last_error()).find("bad.gguf: invalid GGUF") != std::string::npos);
    CHECK(m == nullptr);
}

TEST_CASE("with the real model: load with progress, info, overflow, cancel, threads") {
    if (!have_model()) {
        tessera::test::skip_because("model not downloaded (run scripts/get-model.sh smollm2-135m-instruct)");
        return;
    }
    const std::string path = model_path();
    tessera_model_params mp = tessera_model_default_params();
    int calls = 0;
    mp.progress = [](float p, void* user) -> int32_t {
        ++*static_cast<int*>(user);
        return p >= 0.0f ? 1 : 0;
    };
    mp.progress_user = &calls;
    tessera_model* m = nullptr;
    REQUIRE(tessera_model_load(path.c_str(), &mp, &m) == TESSERA_OK);
    CHECK(calls >= 1);
    CHECK(std::string(tessera_model_architecture(m)) == "llama");
    CHECK(tessera_model_n_layer(m) == 30);
    CHECK(tessera_model_n_embd(m) == 576);
    CHECK(tessera_model_n_ctx_train(m) == 8192);
    CHECK(tessera_model_n_params(m) > 100000000);
    CHECK(tessera_model_size(m) > 50000000);
    CHECK(tessera_vocab_size(m) == 49152);
    const tessera_gguf* g = tessera_model_gguf(m);
    CHECK(tessera_gguf_find_key(g, "tokenizer.chat_template") >= 0);

    // Cancelling the load from the progress callback.
    mp.progress = [](float, void*) -> int32_t { return 0; };
    tessera_model* cancelled = nullptr;
    CHECK(tessera_model_load(path.c_str(), &mp, &cancelled) != TESSERA_OK);
    CHECK(std::string(tessera_last_error()).find("cancelled") != std::string::npos);
    CHECK(cancelled == nullptr);

    // Context overflow leaves the sequence unchanged.
    tessera_context_params cp = tessera_context_default_params();
    cp.n_ctx = 16;
    tessera_context* ctx = nullptr;
    REQUIRE(tessera_context_new(m, &cp, &ctx) == TESSERA_OK);
    CHECK(tessera_context_n_ctx(ctx) == 16);
    std::vector<int32_t> ten(10, 42);
    REQUIRE(tessera_decode(ctx, ten.data(), 10, 1) == TESSERA_OK);
    CHECK(tessera_get_n_logits(ctx) == 10);
    CHECK(tessera_get_logits(ctx, 9) != nullptr);
    CHECK(tessera_get_logits(ctx, 10) == nullptr);
    CHECK(tessera_decode(ctx, ten.data(), 10, 0) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(tessera_last_error()).find("do not fit") != std::string::npos);
    CHECK(tessera_context_n_past(ctx) == 10);
    int32_t bad_token = 49152;
    CHECK(tessera_decode(ctx, &bad_token, 1, 0) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_timings t{};
    CHECK(tessera_context_timings(ctx, &t) == TESSERA_OK);
    CHECK(t.prompt_tokens == 10);
    tessera_context_truncate(ctx, 0);
    CHECK(tessera_context_n_past(ctx) == 0);
    tessera_context_free(ctx);

    // Generation that the callback stops after three tokens.
    REQUIRE(tessera_context_new(m, nullptr, &ctx) == TESSERA_OK);
    tessera_sampler* s = nullptr;
    REQUIRE(tessera_sampler_new(nullptr, &s) == TESSERA_OK);
    struct Seen {
        int n = 0;
        std::string text;
    } seen;
    int32_t n_gen = -1;
    const char* prompt = "Once upon a time";
    CHECK(tessera_generate(
              ctx, s, prompt, std::strlen(prompt), 50,
              [](const char* text, size_t len, int32_t, void* user) -> int32_t {
                  auto* sn = static_cast<Seen*>(user);
                  sn->text.append(text, len);
                  return ++sn->n < 3 ? 1 : 0;
              },
              &seen, &n_gen) == TESSERA_OK);
    CHECK(n_gen == 3);
    CHECK(seen.n >= 3);
    tessera_sampler_free(s);
    tessera_context_free(ctx);

    // Two contexts of one model on two threads give what one context gives alone.
    const std::vector<int32_t> p1 = {504, 3575, 282, 4649, 314}, p2 = {9038, 2114, 253, 655};
    std::vector<int32_t> a1 = greedy(m, p1, 12, 1), a2 = greedy(m, p2, 12, 1);
    std::vector<int32_t> b1, b2;
    std::thread t1([&] { b1 = greedy(m, p1, 12, 1); });
    std::thread t2([&] { b2 = greedy(m, p2, 12, 1); });
    t1.join();
    t2.join();
    CHECK(a1 == b1);
    CHECK(a2 == b2);
    CHECK(a1 != a2);
    tessera_model_free(m);
}
