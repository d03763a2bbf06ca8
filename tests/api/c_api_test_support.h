// Helpers of the C API tests: the real default model (skipping when it is absent), contexts,
// tokenizing, greedy decoding, and a callback that collects what tessera_generate streams.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tessera.h"
#include "tests/test_support.h"

namespace tessera::test {

inline std::string model_path() {
    const char* dir = std::getenv("TESSERA_MODELS");
    std::string base =
        dir && *dir ? dir : std::string(std::getenv("HOME") ? std::getenv("HOME") : "/") + "/.cache/tessera/models";
    return base + "/smollm2-135m-instruct.gguf";
}

inline bool have_model() {
    if (std::filesystem::exists(model_path())) return true;
    tessera::test::skip_because("model not downloaded (run scripts/get-model.sh smollm2-135m-instruct)");
    return false;
}

// The real model, loaded with weights (or only its tokenizer), freed with the object.
struct LoadedModel {
    tessera_model* m = nullptr;
    explicit LoadedModel(bool vocab_only = false) {
        tessera_model_params mp = tessera_model_default_params();
        mp.vocab_only = vocab_only ? 1 : 0;
        REQUIRE(tessera_model_load(model_path().c_str(), &mp, &m) == TESSERA_OK);
        REQUIRE(m != nullptr);
    }
    ~LoadedModel() { tessera_model_free(m); }
};

inline tessera_context* new_context(const tessera_model* m, int32_t n_ctx, int32_t n_threads) {
    tessera_context_params cp = tessera_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = n_threads;
    tessera_context* ctx = nullptr;
    REQUIRE(tessera_context_new(m, &cp, &ctx) == TESSERA_OK);
    return ctx;
}

inline std::vector<int32_t> tokenize(const tessera_model* m, const std::string& text, bool add_special,
                                     bool parse_special) {
    int32_t n = 0;
    const tessera_status sizing =
        tessera_tokenize(m, text.data(), text.size(), add_special, parse_special, nullptr, 0, &n);
    CHECK(sizing == (n == 0 ? TESSERA_OK : TESSERA_ERROR_INVALID_ARGUMENT));  // too small a buffer: the size
    std::vector<int32_t> ids(static_cast<size_t>(n));
    REQUIRE(tessera_tokenize(m, text.data(), text.size(), add_special, parse_special, ids.data(), n, &n) == TESSERA_OK);
    return ids;
}

// A sampler that always picks the most likely token; the caller frees it.
inline tessera_sampler* greedy_sampler() {
    tessera_sampler_params sp = tessera_sampler_default_params();
    sp.temperature = 0;
    tessera_sampler* s = nullptr;
    REQUIRE(tessera_sampler_new(&sp, &s) == TESSERA_OK);
    return s;
}

inline std::vector<int32_t> greedy(const tessera_model* m, const std::vector<int32_t>& prompt, int n, int threads) {
    tessera_context* ctx = new_context(m, 128, threads);
    std::vector<int32_t> out;
    REQUIRE(tessera_decode(ctx, prompt.data(), static_cast<int32_t>(prompt.size()), 0) == TESSERA_OK);
    tessera_sampler* s = greedy_sampler();
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

// Collects what tessera_generate streams; stops after `stop_after` tokens when positive.
struct Stream {
    int stop_after = 0;
    int calls = 0;
    std::vector<int32_t> tokens;
    std::string text;
};

inline int32_t collect(const char* text, size_t len, int32_t token, void* user) {
    auto* s = static_cast<Stream*>(user);
    ++s->calls;
    s->text.append(text, len);
    if (token >= 0) s->tokens.push_back(token);
    return s->stop_after > 0 && static_cast<int>(s->tokens.size()) >= s->stop_after ? 0 : 1;
}

}  // namespace tessera::test
