// Added tokens found in raw text before the tokenizer family's segmentation: the
// resolution rules on a small token set, Gemma 3's whitespace tokens and Phi-3's
// whitespace stripping on the real vocabularies, and a GPT-2 vocabulary with user-defined
// tokens (written by our GGUF writer) against Hugging Face `tokenizers`.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <sstream>

#include "runtime/vocab/added_tokens.h"
#include "runtime/vocab/vocab.h"
#include "tensor/gguf.h"
#include "tensor/gguf_writer.h"
#include "tests/test_support.h"
#include "tests/tokenizer/vocab_test_support.h"

using namespace tessera;
using namespace tessera::test;
using vocab::AddedTokens;
using vocab::Vocab;

namespace {

// Fragments as "raw:TEXT" or "#ID", space-separated, for readable comparisons.
std::string show(const AddedTokens& added, std::string_view text, bool parse_special) {
    std::vector<AddedTokens::Fragment> fragments;
    added.split(text, parse_special, fragments);
    std::string s;
    for (const AddedTokens::Fragment& f : fragments) {
        if (!s.empty()) s += ' ';
        if (f.token >= 0) {
            s += '#';
            s += std::to_string(f.token);
        } else {
            s += "raw:";
            s += text.substr(f.begin, f.end - f.begin);
        }
    }
    return s;
}

std::string from_hex(const std::string& hex) {
    std::string out;
    if (hex == "-") return out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    return out;
}

}  // namespace

TEST_CASE("added tokens: the longest text first over the whole input, then left to right") {
    AddedTokens a;
    a.add("ab", 10, true, AddedTokens::kStripNone);
    a.add("bcd", 11, true, AddedTokens::kStripNone);
    // Leftmost-first would take "ab"; the longer "bcd" claims its bytes first.
    CHECK(show(a, "abcd", false) == "raw:a #11");
    CHECK(show(a, "ab bcd abcd ab", false) == "#10 raw:  #11 raw: a #11 raw:  #10");
    CHECK(show(a, "", false).empty());
    CHECK(show(a, "no match here", false) == "raw:no match here");

    AddedTokens spaces;  // runs of 2..5 spaces, as Gemma and GPT-NeoX have them
    for (int n = 2; n <= 5; ++n) spaces.add(std::string(static_cast<size_t>(n), ' '), 100 + n, true, 0);
    CHECK(show(spaces, "x            y", false) == "raw:x #105 #105 #102 raw:y");  // 12 = 5 + 5 + 2
    CHECK(show(spaces, "x y", false) == "raw:x y");
    CHECK(show(spaces, "       ", false) == "#105 #102");

    AddedTokens same;  // one text, two ids: the lower id wins
    same.add("<x>", 31, true, 0);
    same.add("<x>", 30, true, 0);
    CHECK(show(same, "a<x>b", false) == "raw:a #30 raw:b");
}

TEST_CASE("added tokens: control tokens only when parsing special text; user-defined always") {
    AddedTokens a;
    a.add("<ctl>", 1, false, AddedTokens::kStripNone);
    a.add("t", 2, true, AddedTokens::kStripNone);
    CHECK(show(a, "a<ctl>b", false) == "raw:a<c #2 raw:l>b");
    CHECK(show(a, "a<ctl>b", true) == "raw:a #1 raw:b");
    CHECK(show(a, "tt", true) == "#2 #2");
}

TEST_CASE("added tokens: stripping tokens take the ASCII whitespace beside them, up to the next token") {
    AddedTokens a;
    a.add("<m>", 1, true, AddedTokens::kStripLeft);
    a.add("</s>", 2, true, AddedTokens::kStripRight);
    a.add("[long]", 3, true, AddedTokens::kStripNone);
    CHECK(show(a, "a \t <m> b", false) == "raw:a #1 raw: b");
    CHECK(show(a, "x</s> \n y", false) == "raw:x #2 raw:y");
    CHECK(show(a, "</s>   ", false) == "#2");
    CHECK(show(a, "</s>  [long]  <m>", false) == "#2 #3 #1");
    // The stripped whitespace between two tokens belongs to neither fragment.
    CHECK(show(a, "</s>  [long]", false) == "#2 #3");
    CHECK(show(a, "[long]  <m>", false) == "#3 #1");
    CHECK(show(a, "[long] x  <m>", false) == "#3 raw: x #1");
}

TEST_CASE("added tokens: megabytes of one added character neither lose bytes nor take unbounded memory") {
    AddedTokens spaces;
    for (int n = 2; n <= 31; ++n) spaces.add(std::string(static_cast<size_t>(n), ' '), n, true, 0);
    const std::string text = "a" + std::string(200000, ' ') + "b";
    std::vector<AddedTokens::Fragment> fragments;
    spaces.split(text, false, fragments);
    size_t covered = 0, next = 0;
    for (const AddedTokens::Fragment& f : fragments) {
        REQUIRE(f.begin == next);  // contiguous: nothing dropped, nothing repeated
        if (f.token >= 0) CHECK(static_cast<size_t>(f.token) == f.end - f.begin);
        covered += f.end - f.begin;
        next = f.end;
    }
    CHECK(covered == text.size());
    CHECK(fragments.front().token < 0);
    CHECK(fragments.back().token < 0);
    CHECK(fragments.size() < 200000 / 31 + 16);  // runs of 31, save a few where groups were cut
}

TEST_CASE("Gemma 3: runs of spaces, tabs and newlines are its user-defined tokens") {
    auto dir = vocab_dir();
    if (!dir || !std::filesystem::exists(*dir / "ggml-vocab-gemma-3.gguf")) {
        skip_because("ggml-vocab-gemma-3.gguf not found in the shared data (set TESSERA_TEST_DATA)");
        return;
    }
    Loaded g = load(*dir / "ggml-vocab-gemma-3.gguf");
    const Vocab& v = *g.vocab;
    const std::string text = "Hello world.\n\n    Indented  text   with\t\ttabs\n\n\nEnd";
    // llama.cpp's ids for this text on Gemma 3 (llama-tokenize, BOS added).
    const std::vector<int32_t> expected = {2,   9259, 1902, 236761, 108,    140,   2704, 16764,
                                           138, 1005, 139,  4060,   255969, 39218, 109,  7315};
    CHECK(ids_to_string(v.tokenize(text, true, false)) == ids_to_string(expected));
    CHECK(v.tokenize(text, true, true) == expected);  // no control-token text in it
    CHECK(v.detokenize(expected) == text);
    CHECK(v.piece(138) == "  ");
    CHECK(v.piece(255969) == "\t\t");
    vocab::Detokenizer d(v);
    std::string streamed;
    for (int32_t id : expected) streamed += d.push(id);
    CHECK(streamed + std::string(d.flush()) == text);

    // Control-token text is plain text unless parsed; user-defined HTML tags are always tokens.
    const int32_t start = v.find_token("<start_of_turn>"), table = v.find_token("<table>");
    REQUIRE(start >= 0);
    REQUIRE(table >= 0);
    const std::vector<int32_t> plain = v.tokenize("<start_of_turn>user <table>", false, false);
    CHECK(std::find(plain.begin(), plain.end(), start) == plain.end());
    CHECK(std::find(plain.begin(), plain.end(), table) != plain.end());
    const std::vector<int32_t> parsed = v.tokenize("<start_of_turn>user <table>", false, true);
    CHECK(parsed.front() == start);
    CHECK(parsed.back() == table);
}

TEST_CASE("Phi-3: its added tokens take the whitespace after them, as its tokenizer marks them") {
    auto dir = vocab_dir();
    if (!dir) {
        skip_because("shared vocabularies not found (set TESSERA_TEST_DATA)");
        return;
    }
    Loaded p = load(*dir / "ggml-vocab-phi-3.gguf");
    const Vocab& v = *p.vocab;
    // "</s>" is user-defined in Phi-3's vocabulary: a token even in plain text; the space
    // after it goes, and the text after it starts a segment with its own space prefix.
    CHECK(v.tokenize("Hello</s> world", false, false) == std::vector<int32_t>{15043, 2, 3186});
    CHECK(v.tokenize("Hello</s>world", false, false) == std::vector<int32_t>{15043, 2, 3186});
    const int32_t user = v.find_token("<|user|>");
    REQUIRE(user >= 0);
    // Parsed control tokens strip too ("<|user|>\n" is how the chat template writes it).
    CHECK(v.tokenize("<|user|>\nHi", false, true) == v.tokenize("<|user|>Hi", false, true));
    // "<s>" is excepted.
    CHECK(v.tokenize("<s> Hi", false, true) == std::vector<int32_t>{1, 29871, 6324});
}

TEST_CASE("a GPT-2 vocabulary with user-defined tokens gives the ids of Hugging Face tokenizers") {
    auto dir = vocab_dir();
    if (!dir) {
        skip_because("shared vocabularies not found (set TESSERA_TEST_DATA)");
        return;
    }
#ifndef TESSERA_SOURCE_DIR
    skip_because("built without TESSERA_SOURCE_DIR: the reference file's folder is unknown");
    return;
#else
    const std::string ref = read_text(std::filesystem::path(TESSERA_SOURCE_DIR) / "tests" / "tokenizer" / "reference" /
                                      "gpt2-added-tokens.txt");
    std::vector<std::string> added;
    std::vector<std::pair<std::string, std::vector<int32_t> > > cases;
    std::istringstream lines(ref);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream f(line);
        std::string kind, hex;
        f >> kind >> hex;
        if (kind == "added") {
            added.push_back(from_hex(hex));
        } else if (kind == "case") {
            std::vector<int32_t> ids;
            int32_t id;
            while (f >> id) ids.push_back(id);
            cases.emplace_back(from_hex(hex), ids);
        }
    }
    REQUIRE(added.size() >= 10);
    REQUIRE(cases.size() >= 50);

    // GPT-2's vocabulary with the added tokens appended, user-defined.
    auto base = gguf::File::open((*dir / "ggml-vocab-gpt-2.gguf").string());
    gguf::Writer w;
    for (size_t i = 0; i < base->n_kv(); ++i) w.set(base->kv(i).key, gguf::OwnedValue::copy_of(base->kv(i).value));
    const gguf::Value& base_tokens = base->require("tokenizer.ggml.tokens");
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    const gguf::Value* base_types = base->find("tokenizer.ggml.token_type");
    for (uint64_t i = 0; i < base_tokens.size(); ++i) {
        tokens.emplace_back(base_tokens.string_at(i));
        types.push_back(base_types ? static_cast<int32_t>(base_types->int_at(i)) : 1);
    }
    const size_t first_added = tokens.size();
    for (const std::string& t : added) {
        tokens.push_back(t);
        types.push_back(static_cast<int32_t>(vocab::TokenType::UserDefined));
    }
    w.set("tokenizer.ggml.tokens", gguf::OwnedValue::string_array(tokens));
    w.set("tokenizer.ggml.token_type",
          gguf::OwnedValue::numeric_array(gguf::ValueType::I32, types.data(), types.size()));
    ScratchDir scratch;
    const auto path = scratch.file("gpt2-added.gguf");
    w.write(path.string());
    Loaded l = load(path);
    const Vocab& v = *l.vocab;
    for (size_t i = 0; i < added.size(); ++i) CHECK(v.piece(static_cast<int32_t>(first_added + i)) == added[i]);

    size_t ok = 0;
    for (const auto& [text, expected] : cases) {
        const std::vector<int32_t> got = v.tokenize(text, false, false);
        if (got == expected) {
            ++ok;
        } else {
            FAIL_CHECK("'" << text << "'\n  expected: " << ids_to_string(expected)
                           << "\n  got:      " << ids_to_string(got));
        }
        CHECK(v.detokenize(got) == text);  // byte-level BPE stays lossless
    }
    MESSAGE("GPT-2 with " << added.size() << " added tokens: " << ok << " of " << cases.size() << " match");
#endif
}

TEST_CASE("end-of-generation tokens: EOS, EOT and the end-of-turn markers a vocabulary has") {
    auto dir = vocab_dir();
    if (!dir) {
        skip_because("shared vocabularies not found (set TESSERA_TEST_DATA)");
        return;
    }
    Loaded phi = load(*dir / "ggml-vocab-phi-3.gguf");
    CHECK(phi.vocab->is_eog(phi.vocab->eos()));                  // <|endoftext|>
    CHECK(phi.vocab->is_eog(phi.vocab->find_token("<|end|>")));  // Phi-3's end of turn
    CHECK_FALSE(phi.vocab->is_eog(phi.vocab->find_token("<|user|>")));
    CHECK_FALSE(phi.vocab->is_eog(phi.vocab->bos()));
    if (std::filesystem::exists(*dir / "ggml-vocab-gemma-3.gguf")) {
        Loaded g = load(*dir / "ggml-vocab-gemma-3.gguf");
        CHECK(g.vocab->is_eog(g.vocab->eos()));
        CHECK(g.vocab->is_eog(g.vocab->find_token("<end_of_turn>")));
        CHECK_FALSE(g.vocab->is_eog(g.vocab->find_token("<start_of_turn>")));
    }
    Loaded gpt2 = load(*dir / "ggml-vocab-gpt-2.gguf");
    CHECK(gpt2.vocab->eog_ids() == std::vector<int32_t>{50256});
}

namespace {

// The reference's partition, written the plain way: for each token in order (longest text
// first, then lower id), split every raw fragment at each of its occurrences, left to
// right, stripping whitespace beside it as its flags say. Slow, obviously right.
struct NaiveToken {
    std::string text;
    int32_t id;
    bool plain;
    uint8_t strip;
};

std::string naive_split(const std::vector<NaiveToken>& tokens, const std::string& text, bool parse_special) {
    struct Piece {
        size_t begin, end;
        int32_t token;
    };
    std::vector<Piece> pieces;
    if (!text.empty()) pieces.push_back({0, text.size(), -1});
    std::vector<NaiveToken> order = tokens;
    std::stable_sort(order.begin(), order.end(), [](const NaiveToken& a, const NaiveToken& b) {
        return a.text.size() != b.text.size() ? a.text.size() > b.text.size() : a.id < b.id;
    });
    auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
    for (const NaiveToken& t : order) {
        if (!t.plain && !parse_special) continue;
        std::vector<Piece> next;
        for (Piece p : pieces) {
            if (p.token >= 0) {
                next.push_back(p);
                continue;
            }
            size_t from = p.begin;
            while (true) {
                const size_t at = std::string_view(text).substr(0, p.end).find(t.text, from);
                if (at == std::string::npos) break;
                size_t left_end = at;
                if (t.strip & AddedTokens::kStripLeft)
                    while (left_end > from && space(text[left_end - 1])) --left_end;
                if (left_end > from) next.push_back({from, left_end, -1});
                next.push_back({at, at + t.text.size(), t.id});
                from = at + t.text.size();
                if (t.strip & AddedTokens::kStripRight)
                    while (from < p.end && space(text[from])) ++from;
            }
            if (from < p.end) next.push_back({from, p.end, -1});
        }
        pieces = std::move(next);
    }
    std::string s;
    for (const Piece& p : pieces) {
        if (!s.empty()) s += ' ';
        if (p.token >= 0) {
            s += '#';
            s += std::to_string(p.token);
        } else {
            s += "raw:";
            s += text.substr(p.begin, p.end - p.begin);
        }
    }
    return s;
}

}  // namespace

TEST_CASE("added tokens: random token sets and texts give the reference's partition exactly") {
    std::mt19937 rng(20261202);
    const std::string alphabet = "ab <>\n\t";
    auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
    size_t trials = 0, with_tokens = 0;
    for (int set = 0; set < 400; ++set) {
        std::vector<NaiveToken> tokens;
        AddedTokens added;
        const size_t n_tokens = 1 + pick(8);
        for (size_t i = 0; i < n_tokens; ++i) {
            NaiveToken t;
            const size_t len = 1 + pick(4);
            for (size_t k = 0; k < len; ++k) t.text += alphabet[pick(alphabet.size())];
            t.id = static_cast<int32_t>(100 + pick(50));
            bool clash = false;  // one strip setting per id, as a vocabulary has
            for (const NaiveToken& o : tokens) clash |= o.id == t.id;
            if (clash) continue;
            t.plain = pick(3) != 0;
            t.strip = static_cast<uint8_t>(pick(6) == 0 ? 1 + pick(3) : 0);  // kStripLeft, kStripRight or both
            tokens.push_back(t);
            added.add(t.text, t.id, t.plain, t.strip);
        }
        for (int k = 0; k < 50; ++k) {
            std::string text;
            const size_t len = pick(40);
            for (size_t i = 0; i < len; ++i) text += alphabet[pick(alphabet.size())];
            for (bool parse : {false, true}) {
                CAPTURE(text);
                CAPTURE(parse);
                const std::string want = naive_split(tokens, text, parse);
                CHECK(show(added, text, parse) == want);
                ++trials;
                with_tokens += want.find('#') != std::string::npos;
            }
        }
    }
    MESSAGE(trials << " texts, " << with_tokens << " of them with added tokens in them");
}
