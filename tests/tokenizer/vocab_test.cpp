// Tokenizers on real vocabularies (every test string of the shared corpora gives exactly
// the expected ids), round trips, streaming detokenizing, special tokens, invalid UTF-8,
// the C API, and load errors on small vocabularies written with our GGUF writer.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "runtime/vocab/byte_level.h"
#include "runtime/vocab/unicode.h"
#include "runtime/vocab/vocab.h"
#include "tensor/error.h"
#include "tensor/gguf.h"
#include "tensor/gguf_writer.h"
#include "tessera.h"
#include "tests/test_support.h"
#include "tests/tokenizer/vocab_test_support.h"

using namespace tessera;
using namespace tessera::test;
using vocab::Vocab;

namespace {

const char* const kVocabNames[] = {"ggml-vocab-llama-spm", "ggml-vocab-phi-3", "ggml-vocab-gpt-2",
                                   "ggml-vocab-bert-bge", "ggml-vocab-gemma-3"};

struct Corpus {
    std::vector<std::string> inputs;
    std::vector<std::vector<int32_t>> expected;
};

// NAME.gguf.inp: strings separated by "\n__ggml_vocab_test__\n" (the piece after the
// last separator is empty and not a test); NAME.gguf.out: one line of ids per string.
Corpus read_corpus(const std::filesystem::path& dir, const std::string& name) {
    Corpus c;
    const std::string inp = read_text(dir / (name + ".gguf.inp"));
    const std::string sep = "\n__ggml_vocab_test__\n";
    size_t pos = 0;
    while (true) {
        const size_t next = inp.find(sep, pos);
        if (next == std::string::npos) break;
        c.inputs.push_back(inp.substr(pos, next - pos));
        pos = next + sep.size();
    }
    REQUIRE_MESSAGE(pos == inp.size(), name << ".gguf.inp has text after its last separator");
    std::istringstream out(read_text(dir / (name + ".gguf.out")));
    std::string line;
    while (std::getline(out, line)) {
        std::istringstream ids(line);
        std::vector<int32_t> v;
        int32_t id;
        while (ids >> id) v.push_back(id);
        c.expected.push_back(v);
    }
    REQUIRE(c.expected.size() == c.inputs.size());
    return c;
}

bool is_valid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        uint32_t cp;
        i += vocab::utf8_decode(s.data() + i, s.size() - i, &cp);
        if (vocab::is_invalid_byte(cp)) return false;
    }
    return true;
}

}  // namespace

TEST_CASE("every test string of the real vocabularies gives exactly the expected ids") {
    auto dir = vocab_dir();
    if (!dir) {
        test::skip_because("shared vocabularies not found (set TESSERA_TEST_DATA)");
        return;
    }
    size_t total = 0, matched = 0;
    for (const std::string name : kVocabNames) {
        CAPTURE(name);
        Loaded l = load(*dir / (name + ".gguf"));
        const Corpus c = read_corpus(*dir, name);
        size_t ok = 0;
        for (size_t i = 0; i < c.inputs.size(); ++i) {
            const std::vector<int32_t> got = l.vocab->tokenize(c.inputs[i], false, false);
            if (got == c.expected[i]) {
                ++ok;
            } else {
                FAIL_CHECK("test string " << i << " '" << c.inputs[i] << "'\n  expected: "
                                          << ids_to_string(c.expected[i]) << "\n  got:      " << ids_to_string(got));
            }
        }
        MESSAGE(name << ": " << ok << " of " << c.inputs.size() << " test strings match");
        total += c.inputs.size();
        matched += ok;
    }
    MESSAGE("all vocabularies: " << matched << " of " << total << " test strings match");
    CHECK(total == 4 * 46 + 56);
    CHECK(matched == total);
}

namespace {

// Extra strings for the round-trip and streaming checks: multi-byte characters of every
// length, characters no vocabulary has (byte fallback), special-token text, whitespace.
const char* const kExtraStrings[] = {
    "€ 𝄞 ẞ ǅ ﬁ",
    "\xF0\x9F\x98\xB6\xE2\x80\x8D\xF0\x9F\x8C\xAB\xEF\xB8\x8F",  // 😶‍🌫️
    "ក្នុងសៀវភៅ ࿐ 𓀀 ꙮ",
    "<s>Hello</s><|endoftext|> [CLS] x [SEP]",
    "  leading and trailing  \n\n\t ",
    "tab\there\r\nCRLF",
};

bool lossless(const Vocab& v) { return v.kind() != vocab::TokenizerKind::WordPiece; }

}  // namespace

TEST_CASE("detokenize(tokenize(s)) == s where the tokenizer is lossless") {
    auto dir = vocab_dir();
    if (!dir) {
        test::skip_because("shared vocabularies not found (set TESSERA_TEST_DATA)");
        return;
    }
    for (const std::string name : kVocabNames) {
        CAPTURE(name);
        Loaded l = load(*dir / (name + ".gguf"));
        std::vector<std::string> strings = read_corpus(*dir, name).inputs;
        strings.insert(strings.end(), std::begin(kExtraStrings), std::end(kExtraStrings));
        for (const std::string& s : strings) {
            CAPTURE(s);
            for (bool add_special : {false, true}) {
                const std::vector<int32_t> ids = l.vocab->tokenize(s, add_special, false);
                const std::string back = l.vocab->detokenize(ids);
                if (lossless(*l.vocab)) {
                    // BPE is exact; SPM's space prefix is undone by the detokenizer.
                    CHECK(back == s);
                } else {
                    CHECK(is_valid_utf8(back));
                }
            }
        }
        if (!lossless(*l.vocab)) {
            // WordPiece lower-cases, strips accents and loses spacing around punctuation.
            CHECK(l.vocab->detokenize(l.vocab->tokenize("Hello Wörld", true)) == "hello world");
            CHECK(l.vocab->detokenize(l.vocab->tokenize("unaffable")) == "unaffable");
        }
    }
}

TEST_CASE("streaming detokenize equals whole detokenize and never emits broken UTF-8") {
    auto dir = vocab_dir();
    if (!dir) {
        test::skip_because("shared vocabularies not found (set TESSERA_TEST_DATA)");
        return;
    }
    std::mt19937 rng(1234);
    for (const std::string name : kVocabNames) {
        CAPTURE(name);
        Loaded l = load(*dir / (name + ".gguf"));
        std::vector<std::vector<int32_t>> sequences;
        std::vector<std::string> strings = read_corpus(*dir, name).inputs;
        strings.insert(strings.end(), std::begin(kExtraStrings), std::end(kExtraStrings));
        for (const std::string& s : strings) sequences.push_back(l.vocab->tokenize(s, true, true));
        // Random ids, so byte tokens and partial characters meet in every order.
        std::uniform_int_distribution<int32_t> any(0, l.vocab->size() - 1), low(0, 300);
        for (int n = 0; n < 200; ++n) {
            std::vector<int32_t> ids;
            for (int k = 0; k < 12; ++k) ids.push_back(k % 2 ? any(rng) : low(rng));
            sequences.push_back(ids);
        }
        for (bool render : {false, true}) {
            vocab::DetokenizeOptions opt;
            opt.render_special = render;
            vocab::Detokenizer stream(*l.vocab, opt);
            for (const auto& ids : sequences) {
                const std::string whole = l.vocab->detokenize(ids, opt);
                CHECK(is_valid_utf8(whole));
                std::string streamed;
                for (int32_t id : ids) {
                    const std::string_view chunk = stream.push(id);
                    CHECK_MESSAGE(is_valid_utf8(chunk), "token " << id << " emitted a broken sequence");
                    streamed += chunk;
                }
                streamed += stream.flush();
                CHECK(streamed == whole);
            }
        }
    }
}

TEST_CASE("byte-fallback and byte-level pieces reassemble into whole characters") {
    auto dir = vocab_dir();
    if (!dir) {
        test::skip_because("shared vocabularies not found (set TESSERA_TEST_DATA)");
        return;
    }
    // U+17CB (Khmer) is not in Llama 2's vocabulary: it becomes <0xE1> <0x9F> <0x8B>.
    Loaded spm = load(*dir / "ggml-vocab-llama-spm.gguf");
    const std::vector<int32_t> ids = spm.vocab->tokenize("\xE1\x9F\x8B", false);
    REQUIRE(ids.size() == 4);
    CHECK(ids[0] == 29871);  // "▁", the space prefix
    CHECK(spm.vocab->token_text(ids[1]) == "<0xE1>");
    CHECK(spm.vocab->piece(ids[1]) == "\xE1");  // the raw piece is a lone lead byte
    vocab::Detokenizer d(*spm.vocab);
    CHECK(d.push(ids[0]).empty());  // the prefix space is dropped at the start
    CHECK(d.push(ids[1]).empty());  // held back: unfinished
    CHECK(d.push(ids[2]).empty());
    CHECK(d.push(ids[3]) == "\xE1\x9F\x8B");
    // A lead byte followed by something else is not a character: U+FFFD, then the rest.
    CHECK(d.push(ids[1]).empty());
    CHECK(d.push(spm.vocab->find_token("<0x41>")) ==
          "\xEF\xBF\xBD"
          "A");
    CHECK(d.push(ids[1]).empty());
    CHECK(d.flush() == "\xEF\xBF\xBD");

    // GPT-2: " 🦙" is three tokens whose pieces split the 4-byte sequence: " \xF0\x9F",
    // "\xA6", "\x99".
    Loaded bpe = load(*dir / "ggml-vocab-gpt-2.gguf");
    const std::vector<int32_t> llama = bpe.vocab->tokenize(" \xF0\x9F\xA6\x99");
    REQUIRE(llama == std::vector<int32_t>{12520, 99, 247});
    CHECK(bpe.vocab->piece(12520) == " \xF0\x9F");
    vocab::Detokenizer g(*bpe.vocab);
    CHECK(g.push(12520) == " ");
    CHECK(g.push(99).empty());
    CHECK(g.push(247) == "\xF0\x9F\xA6\x99");
}

TEST_CASE("special tokens are recognised only when parse_special is on") {
    auto dir = vocab_dir();
    if (!dir) {
        test::skip_because("shared vocabularies not found (set TESSERA_TEST_DATA)");
        return;
    }
    Loaded spm = load(*dir / "ggml-vocab-llama-spm.gguf");
    const Vocab& v = *spm.vocab;
    CHECK(v.bos() == 1);
    CHECK(v.eos() == 2);
    const std::vector<int32_t> plain = v.tokenize("<s>Hello</s>", false, false);
    CHECK(std::find(plain.begin(), plain.end(), 1) == plain.end());
    CHECK(std::find(plain.begin(), plain.end(), 2) == plain.end());
    // Parsed: the text after a special token gets the space prefix again, as a segment start.
    CHECK(v.tokenize("<s>Hello</s>", false, true) == std::vector<int32_t>{1, 15043, 2});
    CHECK(v.tokenize("Hello", true, false) == std::vector<int32_t>{1, 15043});  // BOS per metadata
    CHECK(v.tokenize("", true, false) == std::vector<int32_t>{1});
    CHECK(v.tokenize("", false, false).empty());
    CHECK(v.detokenize(std::vector<int32_t>{1, 15043, 2}) == "Hello");
    vocab::DetokenizeOptions render;
    render.render_special = true;
    CHECK(v.detokenize(std::vector<int32_t>{1, 15043, 2}, render) == "<s>Hello</s>");

    Loaded phi = load(*dir / "ggml-vocab-phi-3.gguf");
    const int32_t user = phi.vocab->find_token("<|user|>");
    REQUIRE(user >= 0);
    CHECK(phi.vocab->is_special(user));
    const std::vector<int32_t> parsed = phi.vocab->tokenize("<|user|>\nHi<|end|>", false, true);
    CHECK(parsed.front() == user);
    CHECK(parsed.back() == phi.vocab->find_token("<|end|>"));
    const std::vector<int32_t> raw = phi.vocab->tokenize("<|user|>\nHi<|end|>", false, false);
    CHECK(std::find(raw.begin(), raw.end(), user) == raw.end());

    Loaded bpe = load(*dir / "ggml-vocab-gpt-2.gguf");
    CHECK(bpe.vocab->tokenize("a<|endoftext|>", false, true) == std::vector<int32_t>{64, 50256});
    CHECK(bpe.vocab->tokenize("a<|endoftext|>", false, false).size() > 2);
    CHECK(bpe.vocab->tokenize("a", true, false) == std::vector<int32_t>{64});  // GPT-2 adds no BOS

    Loaded bert = load(*dir / "ggml-vocab-bert-bge.gguf");
    CHECK(bert.vocab->tokenize("hello", true, false) == std::vector<int32_t>{101, 7592, 102});  // [CLS] .. [SEP]
    CHECK(bert.vocab->tokenize("[CLS] hello", false, true) == std::vector<int32_t>{101, 7592});
    const std::vector<int32_t> bert_raw = bert.vocab->tokenize("[CLS] hello", false, false);
    CHECK(std::find(bert_raw.begin(), bert_raw.end(), 101) == bert_raw.end());
}

namespace {

// What byte-level BPE reads: each byte that does not begin a lead-and-continuations
// sequence (lead bytes up to 0xF7, values unchecked, as llama.cpp's reader) becomes
// U+FFFD. Written apart from the tokenizer's own check, by lengths.
std::string as_bpe_reads(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        const size_t len = c >= 0xF8 ? 0 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : c >= 0x80 ? 0 : 1;
        bool whole = len > 0 && i + len <= s.size();
        for (size_t k = 1; whole && k < len; ++k) whole = (static_cast<unsigned char>(s[i + k]) >> 6) == 2;
        if (whole) {
            out += s.substr(i, len);
            i += len;
        } else {
            out += "\xEF\xBF\xBD";
            i += 1;
        }
    }
    return out;
}

}  // namespace

TEST_CASE("byte-level BPE reads invalid UTF-8 as U+FFFD, never as the unknown or a control token") {
    auto dir = vocab_dir();
    if (!dir) {
        test::skip_because("shared vocabularies not found (set TESSERA_TEST_DATA)");
        return;
    }
    Loaded l = load(*dir / "ggml-vocab-gpt-2.gguf");
    const Vocab& v = *l.vocab;
    // Latin-1 bytes, not UTF-8: "Grüße aus Köln".
    const std::string latin1 =
        "Gr\xFC\xDF"
        "e aus K\xF6ln";
    CHECK(as_bpe_reads(latin1) ==
          "Gr\xEF\xBF\xBD\xEF\xBF\xBD"
          "e aus K\xEF\xBF\xBDln");
    CHECK(ids_to_string(v.tokenize(latin1)) == ids_to_string(v.tokenize(as_bpe_reads(latin1))));
    CHECK(v.detokenize(v.tokenize(latin1)) == as_bpe_reads(latin1));
    // An unfinished character, stray continuation bytes, a lead byte no character has.
    for (const std::string& s : {std::string("abc\xE2\x82"), std::string("ok \x80\x80 ok"), std::string("\xF8x"),
                                 std::string("\xE2\x82 \xE2\x82\xAC")}) {
        CAPTURE(s);
        CHECK(v.tokenize(s) == v.tokenize(as_bpe_reads(s)));
    }

    // A vocabulary without tokens for the bytes valid UTF-8 never holds (as trained
    // vocabularies are), whose unknown token is its end-of-text control token.
    std::vector<std::string> tokens{"<|endoftext|>"};
    std::vector<int32_t> types{3};
    for (int b = 0; b < 256; ++b) {
        if (b == 0xC0 || b == 0xC1 || b >= 0xF5) continue;
        std::string ch;
        vocab::utf8_append(vocab::byte_to_gpt2_char(static_cast<uint8_t>(b)), ch);
        tokens.push_back(ch);
        types.push_back(1);
    }
    gguf::Writer w;
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "gpt-2");
    w.set("tokenizer.ggml.tokens", gguf::OwnedValue::string_array(tokens));
    w.set("tokenizer.ggml.token_type",
          gguf::OwnedValue::numeric_array(gguf::ValueType::I32, types.data(), types.size()));
    w.set("tokenizer.ggml.merges", gguf::OwnedValue::string_array({}));
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
    ScratchDir scratch;
    w.write(scratch.file("no-high-bytes.gguf").string());
    Loaded small = load(scratch.file("no-high-bytes.gguf"));
    const std::vector<int32_t> ids = small.vocab->tokenize(latin1);
    CHECK(std::find(ids.begin(), ids.end(), 0) == ids.end());
    CHECK(small.vocab->detokenize(ids) == as_bpe_reads(latin1));
}

TEST_CASE("invalid UTF-8 input gives a defined result and never crashes") {
    auto dir = vocab_dir();
    if (!dir) {
        test::skip_because("shared vocabularies not found (set TESSERA_TEST_DATA)");
        return;
    }
    const std::string bad[] = {"\xFF\xFE",           "abc\xE2\x82",
                               "\xC0\x80 overlong",  "\xED\xA0\x80 surrogate",
                               "ok \x80\x80\x80 ok", std::string("nul\0inside", 10),
                               "\xF4\x90\x80\x80"};
    for (const std::string name : kVocabNames) {
        CAPTURE(name);
        Loaded l = load(*dir / (name + ".gguf"));
        for (const std::string& s : bad) {
            CAPTURE(s);
            const std::vector<int32_t> ids = l.vocab->tokenize(s, false, true);
            CHECK(ids == l.vocab->tokenize(s, false, true));  // deterministic
            for (int32_t id : ids) CHECK(l.vocab->valid(id));
            CHECK(is_valid_utf8(l.vocab->detokenize(ids)));
            if (lossless(*l.vocab)) {
                // The raw pieces give back every byte (with the space prefix in front, where
                // the vocabulary adds one); BPE as it reads the text.
                std::string joined;
                for (int32_t id : ids) joined += l.vocab->piece(id);
                const bool bpe = l.vocab->kind() == vocab::TokenizerKind::Bpe;
                const std::string expect = (l.vocab->add_space_prefix() ? " " : "") + (bpe ? as_bpe_reads(s) : s);
                CHECK(joined == expect);
            }
        }
        // Random bytes, biased towards UTF-8 lead and continuation bytes.
        std::mt19937 rng(99);
        std::uniform_int_distribution<int> len_dist(0, 48), byte_dist(0, 255), kind(0, 3);
        for (int n = 0; n < 300; ++n) {
            std::string s;
            const int len = len_dist(rng);
            for (int k = 0; k < len; ++k) {
                const int b = byte_dist(rng);
                s += static_cast<char>(kind(rng) == 0 ? b : kind(rng) == 1 ? (0x80 | (b & 0x3f)) : (b & 0x7f) | 0x20);
            }
            const std::vector<int32_t> ids = l.vocab->tokenize(s, true, true);
            for (int32_t id : ids) REQUIRE(l.vocab->valid(id));
            CHECK(is_valid_utf8(l.vocab->detokenize(ids)));
            if (lossless(*l.vocab) && l.vocab->kind() == vocab::TokenizerKind::Bpe) {
                std::string joined;
                for (int32_t id : ids) joined += l.vocab->piece(id, true);
                CHECK(joined == as_bpe_reads(s));
            }
        }
        if (!lossless(*l.vocab)) {
            // WordPiece: a word with an invalid byte is [UNK]; the words around it are not.
            const std::vector<int32_t> ids = l.vocab->tokenize("hello w\xFForld world");
            CHECK(ids == std::vector<int32_t>{7592, l.vocab->unk(), 2088});
        }
    }
}
