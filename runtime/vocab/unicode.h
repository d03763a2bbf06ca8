// Unicode for the tokenizers: UTF-8 decoding that never fails, general categories and the
// flag bits the pre-tokenizer patterns test (\p{L}, \p{N}, \s, ...), simple lower case and
// NFD. Data from runtime/vocab/unicode_tables.inc (generated; see scripts/gen_unicode_tables.py).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::vocab {

// General categories; the numbering is the generator's (checked at compile time).
// clang-format off
enum class Category : uint8_t {
    Cn, Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps,
    Pe, Pi, Pf, Po, Sm, Sc, Sk, So, Zs, Zl, Zp, Cc, Cf, Cs, Co,
};
// clang-format on
inline constexpr std::string_view kCategoryOrder =
    "Cn Lu Ll Lt Lm Lo Mn Mc Me Nd Nl No Pc Pd Ps Pe Pi Pf Po Sm Sc Sk So Zs Zl Zp Cc Cf Cs Co";

// The Unicode version the tables were generated from, e.g. "15.0.0".
const char* unicode_version();

// A byte that is not part of a valid UTF-8 sequence decodes to kInvalidByteBase + byte:
// a value above U+10FFFF, so it is never confused with a real character, and the
// original byte can be recovered. Such "characters" have category Cn and no flags.
inline constexpr uint32_t kInvalidByteBase = 0x110000;
inline bool is_invalid_byte(uint32_t cp) { return cp >= kInvalidByteBase; }

// Decodes one character at s[0..n) (n >= 1). Returns the bytes consumed (1 to 4) and sets
// *cp. Overlong forms, surrogates, values past U+10FFFF and truncated sequences are
// invalid: one byte is consumed and *cp = kInvalidByteBase + that byte.
size_t utf8_decode(const char* s, size_t n, uint32_t* cp);
// Appends the UTF-8 form of cp (an invalid-byte value appends the original byte).
void utf8_append(uint32_t cp, std::string& out);
// Bytes of the UTF-8 sequence a lead byte starts (1 for ASCII and for bytes that cannot
// start a sequence).
inline size_t utf8_sequence_length(uint8_t lead) {
    if (lead < 0xc0) return 1;
    if (lead < 0xe0) return 2;
    if (lead < 0xf0) return 3;
    if (lead < 0xf8) return 4;
    return 1;
}

Category category(uint32_t cp);
bool is_white_space(uint32_t cp);  // the White_Space property: what \s matches

// Flag bits of one character, as the pre-tokenizer patterns test them.
enum CharFlag : uint8_t {
    kLetter = 1 << 0,     // \p{L}
    kNumber = 1 << 1,     // \p{N}
    kPunct = 1 << 2,      // \p{P}
    kSymbol = 1 << 3,     // \p{S}
    kMark = 1 << 4,       // \p{M}
    kSpace = 1 << 5,      // \s (White_Space)
    kUpperLike = 1 << 6,  // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
    kLowerLike = 1 << 7,  // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
};
uint8_t char_flags(uint32_t cp);

// Simple (one-to-one) lower-case mapping; cp itself when it has none.
uint32_t to_lower(uint32_t cp);
// Full lower case as Rust's char::to_lowercase gives it (HF tokenizers' BERT normalizer):
// the simple mapping, except U+0130 which becomes "i" + U+0307.
void append_lower(uint32_t cp, std::vector<uint32_t>& out);

// Canonical combining class (0 for starters).
uint8_t combining_class(uint32_t cp);
// Appends the full canonical decomposition of cp (Hangul syllables included).
void append_nfd(uint32_t cp, std::vector<uint32_t>& out);
// NFD of a code point sequence: decompose, then order each run of non-starters by class.
void to_nfd(const std::vector<uint32_t>& in, std::vector<uint32_t>& out);

// Code points of UTF-8 text (invalid bytes as kInvalidByteBase + byte).
std::vector<uint32_t> decode_utf8(std::string_view text);

}  // namespace tessera::vocab
