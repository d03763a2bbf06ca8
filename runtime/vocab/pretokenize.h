// Pre-tokenizers of byte-level BPE vocabularies: `tokenizer.ggml.pre` names one, and it
// splits text into the pieces that BPE then merges within. Each is a sequence of split
// rules; a rule is one of the regular expressions real tokenizers use, written by hand
// (no regex engine). Applying a rule to a piece keeps its matches and the text between
// them as separate pieces, and the next rule splits each piece again, independently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::vocab {

// One split rule; the comment gives the regular expression it implements.
enum class SplitRule : uint8_t {
    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    Gpt2,
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    // ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    Llama3,
    // Llama3 with \p{N} (one digit) instead of \p{N}{1,3}
    Qwen2,
    // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+
    SeedCoder,
    // [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|
    // [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}|
    // ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
    Tekken,
    // Tekken with (?i:'s|'t|'re|'ve|'m|'ll|'d)? after each letter alternative and \p{N}{1,3}
    Gpt4o,
    // [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
    // ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    DeepseekV3,
    Digit,              // \p{N}
    Digits,             // \p{N}+
    Digits1To3,         // \p{N}{1,3}
    AsciiDigits3,       // [0-9][0-9][0-9]
    LineBreak,          // [\r\n]
    SpaceLetters,       // \s?\p{L}+
    SpacePunct,         // \s?\p{P}+
    DeepseekLetters,    // \s?[A-Za-zµÀ-ÖØ-öø-ƺ...𞤀-𞥃]+ (cased letters of DeepSeek LLM's tokenizer)
    DeepseekPunct,      // \s?[!-/:-~！-／：-～‘-‟　-。]+
    TrailingSpace,      // \s+$
    DeepseekCjk,        // [一-龥ࠀ-一가-퟿]+
    DeepseekV3Cjk,      // [一-龥぀-ゟ゠-ヿ]+
    PunctRun,           // [\p{P}\$\+<=>\^~\|]+
    PunctRunBacktick,   // [\p{P}\$\+<=>\^~\|`]+
    Bloom,              //  ?[^(\s|.,!?…。，、।۔،)]+
    ChameleonSentinel,  // <sentinel:[0-9]+>
    ChameleonImage,     // (IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z
    ChameleonSpaces,    // ([\t\n]|    |  )
    ChameleonPunct,     // [\p{P}!-/:-@\[-`{-~]
};

// A pre-tokenizer: its rules in order and the tokenizer settings its family implies.
struct PreTokenizer {
    std::string_view family;  // e.g. "llama3"; the same for every alias
    std::vector<SplitRule> rules;
    bool ignore_merges = false;   // a piece that is a whole token skips BPE (Llama 3, Tekken)
    int8_t default_add_bos = -1;  // when the file has no add_bos_token: -1 no opinion, 0 or 1
    int8_t default_add_sep = -1;
};

// The pre-tokenizer for a `tokenizer.ggml.pre` value; nullptr when unknown.
const PreTokenizer* find_pre_tokenizer(std::string_view name);
// The GPT-2 split: what an unknown name falls back to when the caller allows it.
const PreTokenizer& gpt2_pre_tokenizer();
// Every `tokenizer.ggml.pre` value that find_pre_tokenizer knows, in table order.
std::vector<std::string_view> supported_pre_names();

// Text as code points with the flags the rules test; reused between calls.
struct CodepointText {
    std::vector<uint32_t> cps;
    std::vector<uint8_t> flags;
    std::vector<uint32_t> offsets;  // byte offset of each code point in the text, then the text's size
    void assign(std::string_view text);
    size_t size() const { return cps.size(); }
};

// A piece: code points [begin, end).
struct Span {
    uint32_t begin;
    uint32_t end;
};

// Splits text into pieces; `out` gets them in order, covering all of the text. `scratch`
// is working memory (pass the same vector again to avoid allocating). Never throws except
// std::bad_alloc.
void pre_tokenize(const PreTokenizer& pre, const CodepointText& text, std::vector<Span>& out,
                  std::vector<Span>& scratch);
// One rule over one piece (used by the sequence above and by tests).
void split_piece(SplitRule rule, const CodepointText& text, Span piece, std::vector<Span>& out);

// Convenience for tests and tools: the pieces of UTF-8 text as strings.
std::vector<std::string> pre_tokenize_to_strings(const PreTokenizer& pre, std::string_view text);

}  // namespace tessera::vocab
