// GPT-2's byte-level alphabet: every byte is shown as one printable character, so BPE
// vocabularies store any byte string as text. Bytes '!'..'~', U+00A1..U+00AC and
// U+00AE..U+00FF stand for themselves; the other 68 bytes (controls, space, DEL, the
// C1 range, NBSP and soft hyphen), in increasing order, become U+0100, U+0101, ...
#pragma once

#include <cstdint>

namespace tessera::vocab {

inline bool byte_is_printable_in_gpt2(uint32_t b) {
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

// The character that stands for byte b.
inline uint32_t byte_to_gpt2_char(uint8_t b) {
    if (byte_is_printable_in_gpt2(b)) return b;
    uint32_t n = 0;  // how many non-printable bytes come before b
    for (uint32_t x = 0; x < b; ++x)
        if (!byte_is_printable_in_gpt2(x)) ++n;
    return 0x100 + n;
}

// The byte a character stands for, or -1 when it is not in the alphabet.
inline int gpt2_char_to_byte(uint32_t cp) {
    if (cp < 0x100) return byte_is_printable_in_gpt2(cp) ? static_cast<int>(cp) : -1;
    if (cp >= 0x100 + 68) return -1;
    uint32_t n = cp - 0x100;
    for (uint32_t x = 0; x < 256; ++x)
        if (!byte_is_printable_in_gpt2(x) && n-- == 0) return static_cast<int>(x);
    return -1;
}

}  // namespace tessera::vocab
