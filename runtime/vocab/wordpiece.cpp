// WordPiece ("bert" vocabularies), as BERT's tokenizer does it: clean the text (drop
// control characters, whitespace becomes a space), put spaces around CJK ideographs,
// NFD and drop non-spacing marks (accents), lower-case; split on whitespace and make
// each punctuation character a word of its own; then cover each word greedily with the
// longest vocabulary pieces, continuation pieces after the first. A word that cannot be
// covered (or is over 100 characters) is [UNK].
//
// GGUF converters store a word-start piece as "▁word" and a continuation piece as plain
// "suffix"; vocabularies in the original "word" / "##suffix" spelling work too.
#include <algorithm>
#include <vector>

#include "runtime/vocab/unicode.h"
#include "runtime/vocab/vocab.h"

namespace tessera::vocab {

namespace {

constexpr std::string_view kWordMark = "\xE2\x96\x81";  // U+2581
constexpr size_t kMaxWordChars = 100;                   // BERT's max_input_chars_per_word

bool is_cjk_ideograph(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

bool is_bert_whitespace(uint32_t cp) { return cp == '\t' || cp == '\n' || cp == '\r' || is_white_space(cp); }

// Control characters BERT drops: the "other" categories (Cc, Cf, Cs, Co, Cn) except the
// whitespace controls. An invalid byte is kept, so the word holding it becomes [UNK].
bool is_bert_control(uint32_t cp) {
    if (cp == '\t' || cp == '\n' || cp == '\r' || is_invalid_byte(cp)) return false;
    const Category c = category(cp);
    return c == Category::Cc || c == Category::Cf || c == Category::Cs || c == Category::Co || c == Category::Cn;
}

bool is_bert_punctuation(uint32_t cp) {
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
        return true;
    return (char_flags(cp) & kPunct) != 0;
}

// Whether byte k of s continues a UTF-8 character (so k is no place to cut).
bool is_continuation(const std::string& s, size_t k) {
    return k < s.size() && (static_cast<unsigned char>(s[k]) & 0xc0) == 0x80;
}

class WordPieceEncoder final : public Encoder {
public:
    explicit WordPieceEncoder(const Vocab& vocab) : vocab_(vocab) {
        size_t marks = 0, hashes = 0;
        for (int32_t id = 0; id < vocab.size(); ++id) {
            const std::string_view t = vocab.token_text(id);
            if (t.substr(0, kWordMark.size()) == kWordMark) ++marks;
            if (t.size() > 2 && t.substr(0, 2) == "##") ++hashes;
        }
        const bool hash_spelling = hashes > marks;
        start_.reserve(static_cast<size_t>(vocab.size()));
        cont_.reserve(static_cast<size_t>(vocab.size()));
        for (int32_t id = 0; id < vocab.size(); ++id) {
            std::string_view t = vocab.token_text(id);
            if (t.empty()) continue;
            bool start;
            if (hash_spelling) {
                start = !(t.size() > 2 && t.substr(0, 2) == "##");
                if (!start) t.remove_prefix(2);
            } else {
                start = t.substr(0, kWordMark.size()) == kWordMark;
                if (start) t.remove_prefix(kWordMark.size());
            }
            if (t.empty()) continue;
            (start ? start_ : cont_).insert(t, id, false);
            max_len_ = std::max(max_len_, t.size());
        }
    }

    void encode(std::string_view text, std::span<const Fragment> fragments, std::vector<int32_t>& out) const override {
        Work w;
        for_each_fragment(text, fragments, out, [&](std::string_view raw) { encode_segment(raw, w, out); });
    }

private:
    // Working memory, kept across the segments of one text.
    struct Work {
        std::vector<uint32_t> cps, nfd, norm;
        std::string word;
    };

    void encode_segment(std::string_view text, Work& w, std::vector<int32_t>& out) const {
        // Normalize: clean, isolate CJK, NFD without non-spacing marks, lower case.
        std::vector<uint32_t>& cps = w.cps;
        std::vector<uint32_t>& nfd = w.nfd;
        std::vector<uint32_t>& norm = w.norm;
        cps.clear();
        nfd.clear();
        norm.clear();
        cps.reserve(text.size());
        for (size_t i = 0; i < text.size();) {
            uint32_t cp;
            i += utf8_decode(text.data() + i, text.size() - i, &cp);
            if (cp == 0 || cp == 0xFFFD || is_bert_control(cp)) continue;
            if (is_bert_whitespace(cp)) {
                cps.push_back(' ');
            } else if (is_cjk_ideograph(cp)) {
                cps.push_back(' ');
                cps.push_back(cp);
                cps.push_back(' ');
            } else {
                cps.push_back(cp);
            }
        }
        to_nfd(cps, nfd);
        norm.reserve(nfd.size());
        for (uint32_t cp : nfd) {
            if (!is_invalid_byte(cp) && category(cp) == Category::Mn) continue;
            append_lower(cp, norm);
        }

        // Split into words and encode each.
        std::string& word = w.word;
        word.clear();
        size_t word_chars = 0;
        auto flush = [&] {
            if (!word.empty()) encode_word(word, word_chars, out);
            word.clear();
            word_chars = 0;
        };
        for (uint32_t cp : norm) {
            if (is_white_space(cp)) {
                flush();
            } else if (is_bert_punctuation(cp)) {
                flush();
                utf8_append(cp, word);
                word_chars = 1;
                flush();
            } else {
                utf8_append(cp, word);
                ++word_chars;
            }
        }
        flush();
    }

    void encode_word(const std::string& word, size_t chars, std::vector<int32_t>& out) const {
        const size_t mark = out.size();
        if (chars <= kMaxWordChars) {
            size_t start = 0;
            while (start < word.size()) {
                const TextIndex& index = start == 0 ? start_ : cont_;
                // Longest piece first, shortening one character at a time.
                size_t end = std::min(word.size(), start + max_len_);
                while (end > start && is_continuation(word, end)) --end;
                int32_t id = -1;
                while (end > start) {
                    id = index.find(word.data() + start, end - start);
                    if (id >= 0) break;
                    do --end;
                    while (end > start && is_continuation(word, end));
                }
                if (id < 0) break;
                out.push_back(id);
                start = end;
            }
            if (start == word.size()) return;
        }
        out.resize(mark);  // the word as a whole is unknown
        if (vocab_.unk() >= 0) out.push_back(vocab_.unk());
    }

    const Vocab& vocab_;
    TextIndex start_;  // pieces that begin a word
    TextIndex cont_;   // pieces that continue one
    size_t max_len_ = 0;
};

}  // namespace

std::unique_ptr<Encoder> make_wordpiece_encoder(const Vocab& vocab) {
    return std::make_unique<WordPieceEncoder>(vocab);
}

}  // namespace tessera::vocab
