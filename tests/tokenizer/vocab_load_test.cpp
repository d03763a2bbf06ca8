// Vocabularies written with our GGUF writer: the load errors (each names the file and the
// key), the merge order of BPE and the score order of SPM on tiny vocabularies, and the
// C API's tokenization calls and their buffer-size rule.
#include <doctest/doctest.h>

#include <cstring>
#include <functional>

#include "runtime/vocab/byte_level.h"
#include "runtime/vocab/unicode.h"
#include "runtime/vocab/vocab.h"
#include "tensor/error.h"
#include "tensor/gguf.h"
#include "tensor/gguf_writer.h"
#include "tessera.h"
#include "tests/test_support.h"

using namespace tessera;
using gguf::OwnedValue;
using gguf::ValueType;
using vocab::Vocab;

namespace {

// A tiny byte-level BPE vocabulary: the characters of bytes 0..255 (so byte b is token b),
// then `extra` tokens (256, 257, ...).
gguf::Writer tiny_bpe(const std::vector<std::string>& extra, const std::vector<std::string>& merges,
                      const std::string& pre) {
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) {
        std::string ch;
        vocab::utf8_append(vocab::byte_to_gpt2_char(static_cast<uint8_t>(b)), ch);
        tokens.push_back(ch);
    }
    tokens.insert(tokens.end(), extra.begin(), extra.end());
    gguf::Writer w;
    w.set_string("general.architecture", "gpt2");
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", pre);
    w.set("tokenizer.ggml.tokens", OwnedValue::string_array(tokens));
    w.set("tokenizer.ggml.merges", OwnedValue::string_array(merges));
    return w;
}

// A tiny SPM vocabulary: <unk> <s> </s>, the 256 byte tokens, then (text, score) pieces.
gguf::Writer tiny_spm(const std::vector<std::pair<std::string, float>>& pieces) {
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    std::vector<float> scores = {0, 0, 0};
    std::vector<int32_t> types = {2, 3, 3};
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        tokens.push_back(buf);
        scores.push_back(0);
        types.push_back(6);
    }
    for (const auto& [text, score] : pieces) {
        tokens.push_back(text);
        scores.push_back(score);
        types.push_back(1);
    }
    gguf::Writer w;
    w.set_string("tokenizer.ggml.model", "llama");
    w.set("tokenizer.ggml.tokens", OwnedValue::string_array(tokens));
    w.set("tokenizer.ggml.scores", OwnedValue::numeric_array(ValueType::F32, scores.data(), scores.size()));
    w.set("tokenizer.ggml.token_type", OwnedValue::numeric_array(ValueType::I32, types.data(), types.size()));
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
    return w;
}

struct Loaded {
    std::unique_ptr<gguf::File> file;
    std::unique_ptr<Vocab> vocab;
};

Loaded write_and_load(const test::ScratchDir& dir, const gguf::Writer& w, bool allow_unknown_pre = false) {
    const std::string path = dir.file("vocab.gguf").string();
    w.write(path);
    Loaded l;
    l.file = gguf::File::open(path);
    vocab::LoadOptions o;
    o.allow_unknown_pre = allow_unknown_pre;
    l.vocab = Vocab::load(*l.file, o);
    return l;
}

// Loading must fail with a message holding every fragment.
void expect_load_error(const gguf::Writer& w, std::vector<std::string> fragments) {
    test::ScratchDir dir;
    try {
        write_and_load(dir, w);
        FAIL("loading succeeded; expected an error mentioning " << fragments[0]);
    } catch (const Error& e) {
        const std::string msg = e.what();
        fragments.push_back("vocab.gguf");  // the file is named
        for (const std::string& f : fragments)
            CHECK_MESSAGE(msg.find(f) != std::string::npos, "'" << msg << "' lacks '" << f << "'");
    }
}

int32_t id_of(const Vocab& v, const std::string& text) {
    const int32_t id = v.find_token(text);
    REQUIRE_MESSAGE(id >= 0, "no token '" << text << "'");
    return id;
}

}  // namespace

TEST_CASE("a BPE vocabulary with a made-up pre-tokenizer fails by name unless a fallback is allowed") {
    const gguf::Writer w = tiny_bpe({"ab"}, {"a b"}, "made-up-pre");
    expect_load_error(w, {"tokenizer.ggml.pre", "'made-up-pre'", "llama3"});
    test::ScratchDir dir;
    Loaded l = write_and_load(dir, w, true);
    REQUIRE(l.vocab->warnings().size() == 1);
    CHECK(l.vocab->warnings()[0].find("made-up-pre") != std::string::npos);
    CHECK(l.vocab->pre_tokenizer() == &vocab::gpt2_pre_tokenizer());
    // The GPT-2 split gives "ab" and " ab"; byte b is token b in this vocabulary.
    CHECK(l.vocab->tokenize("ab ab") == std::vector<int32_t>{256, ' ', 256});
}

TEST_CASE("BPE merges apply in rank order, leftmost first") {
    test::ScratchDir dir;
    {
        Loaded l = write_and_load(dir, tiny_bpe({"ab", "bc"}, {"b c", "a b"}, "gpt-2"));
        CHECK(l.vocab->tokenize("abc") == std::vector<int32_t>{'a', id_of(*l.vocab, "bc")});
    }
    {
        Loaded l = write_and_load(dir, tiny_bpe({"ab", "bc"}, {"a b", "b c"}, "gpt-2"));
        CHECK(l.vocab->tokenize("abc") == std::vector<int32_t>{id_of(*l.vocab, "ab"), 'c'});
        // Equal ranks (the same merge twice over): leftmost first.
        CHECK(l.vocab->tokenize("abab") == std::vector<int32_t>{256, 256});
        CHECK(l.vocab->tokenize("bcbc") == std::vector<int32_t>{257, 257});
    }
    {
        // Merges chain: "a a" then "aa aa".
        Loaded l = write_and_load(dir, tiny_bpe({"aa", "aaaa"}, {"a a", "aa aa"}, "gpt-2"));
        CHECK(l.vocab->tokenize("aaaaa") == std::vector<int32_t>{257, 'a'});
        CHECK(l.vocab->detokenize(l.vocab->tokenize("aaaaa")) == "aaaaa");
    }
    {
        // Llama 3 takes a piece that is a whole token as it is, whatever the merges say.
        Loaded l = write_and_load(dir, tiny_bpe({"ab", "abc"}, {"a b"}, "llama3"));
        CHECK(l.vocab->tokenize("abc") == std::vector<int32_t>{id_of(*l.vocab, "abc")});
        CHECK(l.vocab->add_bos());                                                              // Llama 3's default
        CHECK(l.vocab->tokenize("abc", true) == std::vector<int32_t>{id_of(*l.vocab, "abc")});  // but no BOS id
    }
}

TEST_CASE("BPE load errors name the merge, the key and the file") {
    expect_load_error(tiny_bpe({"ab"}, {"a zz"}, "gpt-2"), {"tokenizer.ggml.merges[0]", "'zz'", "not a token"});
    expect_load_error(tiny_bpe({"ab"}, {"a b", "b c"}, "gpt-2"), {"tokenizer.ggml.merges[1]", "'bc'"});
    expect_load_error(tiny_bpe({"ab"}, {"ab"}, "gpt-2"), {"tokenizer.ggml.merges[0]", "two tokens"});
    gguf::Writer no_merges = tiny_bpe({}, {}, "gpt-2");
    no_merges.remove("tokenizer.ggml.merges");
    expect_load_error(no_merges, {"tokenizer.ggml.merges", "missing"});
}

TEST_CASE("vocabulary load errors name the key and the value") {
    gguf::Writer w =
        tiny_spm({{"\xE2\x96\x81"
                   "a",
                   -1}});
    {
        gguf::Writer bad = w;
        bad.set_u32("tokenizer.ggml.bos_token_id", 100000);
        expect_load_error(bad, {"tokenizer.ggml.bos_token_id", "100000"});
    }
    {
        gguf::Writer bad = w;
        const float two[2] = {0, 0};
        bad.set("tokenizer.ggml.scores", OwnedValue::numeric_array(ValueType::F32, two, 2));
        expect_load_error(bad, {"tokenizer.ggml.scores", "2 entries"});
    }
    {
        gguf::Writer bad = w;
        std::vector<int32_t> types(260, 1);
        types[7] = 9;
        bad.set("tokenizer.ggml.token_type", OwnedValue::numeric_array(ValueType::I32, types.data(), types.size()));
        expect_load_error(bad, {"tokenizer.ggml.token_type"});
    }
    {
        gguf::Writer bad = w;
        bad.set_string("tokenizer.ggml.model", "t5");
        expect_load_error(bad, {"tokenizer.ggml.model", "'t5'"});
    }
    {
        gguf::Writer bad = w;
        bad.remove("tokenizer.ggml.tokens");
        expect_load_error(bad, {"tokenizer.ggml.tokens"});
    }
    {
        gguf::Writer bad = w;
        bad.set_string("tokenizer.ggml.tokens", "not an array");
        expect_load_error(bad, {"tokenizer.ggml.tokens", "expected an array"});
    }
    {
        gguf::Writer bad;
        expect_load_error(bad, {"tokenizer.ggml.model"});
    }
}

TEST_CASE("SPM merges the highest-scoring pair first, leftmost among equals, and falls back to bytes") {
    test::ScratchDir dir;
    const std::string sp = "\xE2\x96\x81";
    Loaded l = write_and_load(dir, tiny_spm({{sp, -10}, {"a", -2}, {"b", -2}, {sp + "a", -5}, {"ab", -1}, {"ba", -1}}));
    const Vocab& v = *l.vocab;
    // "▁aba": ab and ba tie at -1 -> the leftmost (ab) wins; ▁a (-5) comes too late.
    CHECK(v.tokenize("aba") == std::vector<int32_t>{id_of(v, sp), id_of(v, "ab"), id_of(v, "a")});
    // "▁a" alone: one merge.
    CHECK(v.tokenize("a") == std::vector<int32_t>{id_of(v, sp + "a")});
    // A character outside the vocabulary becomes its UTF-8 bytes' tokens.
    CHECK(v.tokenize("\xE2\x82\xAC", false) == std::vector<int32_t>{id_of(v, sp), 3 + 0xE2, 3 + 0x82, 3 + 0xAC});
    CHECK(v.detokenize(v.tokenize("b\xE2\x82\xAC a")) == "b\xE2\x82\xAC a");
    CHECK(v.add_bos());
    CHECK(v.tokenize("a", true) == std::vector<int32_t>{1, id_of(v, sp + "a")});
}

TEST_CASE("C API: load, tokenize with the buffer-size rule, pieces, detokenize, streaming") {
    test::ScratchDir dir;
    const std::string sp = "\xE2\x96\x81";
    const std::string path = dir.file("spm.gguf").string();
    tiny_spm({{sp, -10}, {"a", -2}, {"b", -2}, {sp + "a", -5}, {"ab", -1}}).write(path);

    tessera_model* m = nullptr;
    tessera_model_params params = tessera_model_default_params();
    CHECK(params.vocab_only == 0);
    CHECK(params.allow_unknown_pre == 0);
    CHECK(params.use_mmap == 1);
    // A vocabulary-only file has no model to load in full.
    CHECK(tessera_model_load(path.c_str(), &params, &m) == TESSERA_ERROR_BAD_FILE);
    CHECK(m == nullptr);
    CHECK(std::string(tessera_last_error()).find("general.architecture") != std::string::npos);
    params.vocab_only = 1;
    CHECK(tessera_model_load((path + ".missing").c_str(), &params, &m) == TESSERA_ERROR_IO);
    REQUIRE(tessera_model_load(path.c_str(), &params, &m) == TESSERA_OK);
    REQUIRE(m != nullptr);
    CHECK(tessera_vocab_size(m) == 3 + 256 + 5);
    CHECK(tessera_token_bos(m) == 1);
    CHECK(tessera_token_eos(m) == 2);

    const char* text = "ab a\xE2\x82\xAC";
    int32_t n = -1;
    CHECK(tessera_tokenize(m, text, std::strlen(text), 1, 0, nullptr, 0, &n) == TESSERA_ERROR_INVALID_ARGUMENT);
    REQUIRE(n > 2);
    std::vector<int32_t> ids(static_cast<size_t>(n));
    int32_t n2 = -1;
    CHECK(tessera_tokenize(m, text, std::strlen(text), 1, 0, ids.data(), n - 1, &n2) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(n2 == n);
    CHECK(std::string(tessera_last_error()).find("buffer") != std::string::npos);
    REQUIRE(tessera_tokenize(m, text, std::strlen(text), 1, 0, ids.data(), n, &n2) == TESSERA_OK);
    CHECK(n2 == n);
    CHECK(ids[0] == 1);

    char buf[64];
    size_t len = 0;
    REQUIRE(tessera_token_to_piece(m, 3 + 0xE2, buf, sizeof buf, &len) == TESSERA_OK);
    CHECK(len == 1);
    CHECK(static_cast<unsigned char>(buf[0]) == 0xE2);
    CHECK(tessera_token_to_piece(m, 3 + 256 + 3, buf, 1, &len) == TESSERA_ERROR_INVALID_ARGUMENT);  // " a" needs 2
    CHECK(len == 2);
    CHECK(tessera_token_to_piece(m, 100000, buf, sizeof buf, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    const char* raw = nullptr;
    REQUIRE(tessera_token_text(m, 1, &raw, &len) == TESSERA_OK);
    CHECK(std::string(raw, len) == "<s>");

    REQUIRE(tessera_detokenize(m, ids.data(), n, buf, sizeof buf, &len) == TESSERA_OK);
    CHECK(std::string(buf, len) == text);
    CHECK(tessera_detokenize(m, ids.data(), n, buf, 3, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(len == std::strlen(text));

    tessera_detokenizer* d = nullptr;
    REQUIRE(tessera_detokenizer_new(m, &d) == TESSERA_OK);
    std::string streamed;
    for (int32_t id : ids) {
        const char* chunk = nullptr;
        REQUIRE(tessera_detokenizer_push(d, id, &chunk, &len) == TESSERA_OK);
        streamed.append(chunk, len);
    }
    const char* tail = nullptr;
    REQUIRE(tessera_detokenizer_flush(d, &tail, &len) == TESSERA_OK);
    streamed.append(tail, len);
    CHECK(streamed == text);
    CHECK(tessera_detokenizer_push(d, -5, &tail, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_detokenizer_free(d);
    tessera_model_free(m);
    tessera_model_free(nullptr);
    tessera_detokenizer_free(nullptr);
}

TEST_CASE("C API: an unknown pre-tokenizer loads only when allowed") {
    test::ScratchDir dir;
    const std::string path = dir.file("bpe.gguf").string();
    tiny_bpe({"ab"}, {"a b"}, "made-up-pre").write(path);
    tessera_model* m = nullptr;
    tessera_model_params p = tessera_model_default_params();
    p.vocab_only = 1;
    CHECK(tessera_model_load(path.c_str(), &p, &m) == TESSERA_ERROR_UNSUPPORTED);
    CHECK(std::string(tessera_last_error()).find("made-up-pre") != std::string::npos);
    p.allow_unknown_pre = 1;
    REQUIRE(tessera_model_load(path.c_str(), &p, &m) == TESSERA_OK);
    int32_t ids[4];
    int32_t n = 0;
    REQUIRE(tessera_tokenize(m, "ab", 2, 0, 0, ids, 4, &n) == TESSERA_OK);
    CHECK(n == 1);
    CHECK(ids[0] == 256);
    tessera_model_free(m);
}
