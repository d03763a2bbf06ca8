// tessera_generate with the real default model: streaming and cancelling from the callback,
// a full context, a second call continuing the first, control-token text kept as text, and
// the end of generation at end-of-turn tokens other than EOS.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tessera.h"
#include "tests/api/c_api_test_support.h"
#include "tests/test_support.h"

using namespace tessera::test;

TEST_CASE("with the real model: generation, cancelled from the callback, up to a full context") {
    if (!have_model()) return;
    LoadedModel lm;
    const tessera_model* m = lm.m;
    tessera_sampler* s = greedy_sampler();
    const std::string prompt = "Once upon a time";
    const int32_t n_prompt = static_cast<int32_t>(tokenize(m, prompt, true, true).size());

    // The callback stops generation after three tokens.
    tessera_context* ctx = new_context(m, 64, 1);
    Stream stream;
    stream.stop_after = 3;
    int32_t n_gen = -1;
    REQUIRE(tessera_generate(ctx, s, prompt.data(), prompt.size(), 50, collect, &stream, &n_gen) == TESSERA_OK);
    CHECK(n_gen == 3);
    CHECK(stream.tokens.size() == 3);
    CHECK(tessera_context_n_past(ctx) == n_prompt + 3);  // every token handed over is in the sequence
    CHECK(!stream.text.empty());
    const std::vector<int32_t> three = stream.tokens;

    // Without a callback, and with n_predict 0.
    tessera_context_truncate(ctx, 0);
    tessera_sampler_reset(s);
    REQUIRE(tessera_generate(ctx, s, prompt.data(), prompt.size(), 3, nullptr, nullptr, &n_gen) == TESSERA_OK);
    CHECK(n_gen == 3);
    tessera_context_truncate(ctx, 0);
    REQUIRE(tessera_generate(ctx, s, prompt.data(), prompt.size(), 0, collect, &stream, &n_gen) == TESSERA_OK);
    CHECK(n_gen == 0);
    CHECK(tessera_context_n_past(ctx) == n_prompt);
    tessera_context_free(ctx);

    // A context that fills up ends generation; its last token is streamed, not decoded.
    ctx = new_context(m, 12, 1);
    Stream full;
    tessera_sampler_reset(s);
    REQUIRE(tessera_generate(ctx, s, prompt.data(), prompt.size(), 100, collect, &full, &n_gen) == TESSERA_OK);
    CHECK(n_gen == 12 - n_prompt + 1);
    CHECK(tessera_context_n_past(ctx) == 12);
    REQUIRE(full.tokens.size() >= 3);
    CHECK(std::vector<int32_t>(full.tokens.begin(), full.tokens.begin() + 3) == three);  // greedy both times

    // A prompt that does not fit leaves the sequence unchanged.
    const std::string long_prompt(400, 'x');
    tessera_context_truncate(ctx, 4);
    n_gen = -1;
    CHECK(tessera_generate(ctx, s, long_prompt.data(), long_prompt.size(), 4, collect, &full, &n_gen) ==
          TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(n_gen == 0);
    CHECK(tessera_context_n_past(ctx) == 4);
    CHECK(tessera_generate(ctx, s, "", 0, 4, nullptr, nullptr, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_generate(ctx, nullptr, "x", 1, 4, nullptr, nullptr, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_generate(ctx, s, nullptr, 1, 4, nullptr, nullptr, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_context_free(ctx);
    tessera_sampler_free(s);
}

TEST_CASE("with the real model: a second tessera_generate continues the first, with no BOS inside") {
    if (!have_model()) return;
    LoadedModel lm;
    const tessera_model* m = lm.m;
    tessera_sampler* s = greedy_sampler();
    const std::string p1 = "The capital of France is", p2 = " Paris, and the capital of Italy is";

    tessera_context* ctx = new_context(m, 128, 1);
    Stream a, b;
    int32_t n_gen = 0;
    REQUIRE(tessera_generate(ctx, s, p1.data(), p1.size(), 4, collect, &a, &n_gen) == TESSERA_OK);
    const std::vector<int32_t> t1 = tokenize(m, p1, true, true);
    REQUIRE(a.tokens.size() == 4);
    CHECK(tessera_context_n_past(ctx) == static_cast<int32_t>(t1.size() + 4));  // the fourth one too
    REQUIRE(tessera_generate(ctx, s, p2.data(), p2.size(), 6, collect, &b, &n_gen) == TESSERA_OK);
    const std::vector<int32_t> t2 = tokenize(m, p2, false, true);  // no BOS mid-sequence
    CHECK(tessera_context_n_past(ctx) == static_cast<int32_t>(t1.size() + 4 + t2.size() + b.tokens.size()));

    // The same sequence decoded in one piece continues the same way.
    std::vector<int32_t> whole = t1;
    whole.insert(whole.end(), a.tokens.begin(), a.tokens.end());
    whole.insert(whole.end(), t2.begin(), t2.end());
    const std::vector<int32_t> expect = greedy(m, whole, static_cast<int>(b.tokens.size()), 1);
    CHECK(b.tokens == expect);

    // An empty prompt continues where the last call stopped.
    Stream c;
    REQUIRE(tessera_generate(ctx, s, "", 0, 3, collect, &c, &n_gen) == TESSERA_OK);
    whole.insert(whole.end(), b.tokens.begin(), b.tokens.end());
    CHECK(c.tokens == std::vector<int32_t>(greedy(m, whole, 3, 1)));
    tessera_context_free(ctx);
    tessera_sampler_free(s);
}

TEST_CASE("with the real model: control-token text in prompts is plain text with parse_special 0") {
    if (!have_model()) return;
    LoadedModel lm;
    const tessera_model* m = lm.m;
    const std::string prompt = "<|im_end|><|im_start|>";
    for (int32_t parse : {1, 0}) {
        CAPTURE(parse);
        tessera_context_params cp = tessera_context_default_params();
        cp.n_ctx = 64;
        cp.parse_special = parse;
        tessera_context* ctx = nullptr;
        REQUIRE(tessera_context_new(m, &cp, &ctx) == TESSERA_OK);
        tessera_sampler* s = nullptr;
        REQUIRE(tessera_sampler_new(nullptr, &s) == TESSERA_OK);
        REQUIRE(tessera_generate(ctx, s, prompt.data(), prompt.size(), 0, nullptr, nullptr, nullptr) == TESSERA_OK);
        CHECK(tessera_context_n_past(ctx) == static_cast<int32_t>(tokenize(m, prompt, true, parse).size()));
        if (parse == 0) CHECK(tessera_context_n_past(ctx) > 2);  // the markers' characters, not two tokens
        tessera_sampler_free(s);
        tessera_context_free(ctx);
    }
    CHECK(tessera_context_default_params().parse_special == 1);
}

TEST_CASE("with the real model: generation ends at end-of-turn tokens, not only at EOS") {
    if (!have_model()) return;
    {
        LoadedModel lm;
        const std::vector<int32_t> im_end = tokenize(lm.m, "<|im_end|>", false, true);
        const std::vector<int32_t> eot = tokenize(lm.m, "<|endoftext|>", false, true);
        REQUIRE(im_end.size() == 1);
        REQUIRE(eot.size() == 1);
        CHECK(tessera_token_is_eog(lm.m, im_end[0]) == 1);
        CHECK(tessera_token_is_eog(lm.m, eot[0]) == 1);
        CHECK(tessera_token_is_eog(lm.m, tokenize(lm.m, "Hello", false, false)[0]) == 0);
        CHECK(tessera_token_is_eog(lm.m, -1) == 0);
        CHECK(tessera_token_is_eog(nullptr, 0) == 0);
    }
    // A copy of the model whose EOS is <|endoftext|> (id 0): a reply still ends at its
    // <|im_end|>, which stays in the sequence and is not streamed.
    std::vector<uint8_t> bytes = tessera::test::read_file_bytes(model_path());
    const std::string key = "tokenizer.ggml.eos_token_id";
    std::string pattern(8, '\0');
    pattern[0] = static_cast<char>(key.size());
    pattern += key;
    const char value[] = {4, 0, 0, 0, 2, 0, 0, 0};  // type u32, value 2
    pattern.append(value, sizeof value);
    auto at = std::search(bytes.begin(), bytes.end(), pattern.begin(), pattern.end());
    REQUIRE(at != bytes.end());
    at[static_cast<std::ptrdiff_t>(pattern.size()) - 4] = 0;  // the id: 2 -> 0
    tessera::test::ScratchDir dir;
    tessera::test::write_file_bytes(dir.file("eos0.gguf"), bytes);
    tessera_model* m = nullptr;
    REQUIRE(tessera_model_load(dir.file("eos0.gguf").string().c_str(), nullptr, &m) == TESSERA_OK);
    REQUIRE(tessera_token_eos(m) == 0);
    const int32_t im_end = tokenize(m, "<|im_end|>", false, true)[0];
    CHECK(tessera_token_is_eog(m, im_end) == 1);

    const std::string prompt =
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n";
    tessera_sampler* s = greedy_sampler();
    tessera_context* ctx = new_context(m, 256, 1);
    Stream out;
    int32_t n_gen = 0;
    REQUIRE(tessera_generate(ctx, s, prompt.data(), prompt.size(), 100, collect, &out, &n_gen) == TESSERA_OK);
    CHECK(n_gen < 100);
    CHECK(std::find(out.tokens.begin(), out.tokens.end(), im_end) == out.tokens.end());
    const int32_t n_prompt = static_cast<int32_t>(tokenize(m, prompt, true, true).size());
    CHECK(tessera_context_n_past(ctx) == n_prompt + n_gen + 1);  // the end-of-turn token too
    MESSAGE("reply: '" << out.text << "' (" << n_gen << " tokens)");
    tessera_context_free(ctx);
    tessera_sampler_free(s);
    tessera_model_free(m);
}
