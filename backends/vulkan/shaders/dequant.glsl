// Element e of one block of a weight type, read from the buffer named A at byte offset b:
// the layouts of tensor/quant/blocks.h (the same bits as GGUF files).

// Split rows: the layout in which the Vulkan backend keeps Q4_0 and Q8_0 product weights
// whose rows are a multiple of 256 long (vulkan_backend.cpp's split_rows). Each row's nb
// blocks are taken apart: their quants one after another (16 bytes a block for Q4_0, 32 for
// Q8_0), then their nb fp16 scales. A row keeps its size and place, and its quants are
// 16-byte aligned. split_nb: a row's blocks where the weight bound as A is kept so (the
// product shaders set it from their push constant `split`), 0 for the file's layout.
uint split_nb = 0u;

// Where block c of a Q4_0 or Q8_0 row at byte r keeps its fp16 scale and its quants.
uint block_scale_at(uint type, uint r, uint c) {
    return split_nb != 0u ? r + (type == T_Q8_0 ? 32u : 16u) * split_nb + 2u * c : r + (type == T_Q8_0 ? 34u : 18u) * c;
}
uint block_quants_at(uint type, uint r, uint c) {
    return split_nb != 0u ? r + (type == T_Q8_0 ? 32u : 16u) * c : r + (type == T_Q8_0 ? 34u : 18u) * c + 2u;
}

float q4k_scale_min(uint b, uint j, out float m) {
    uint sc, mn;
    if (j < 4u) {
        sc = U8(A, b + 4u + j) & 63u;
        mn = U8(A, b + 8u + j) & 63u;
    } else {
        sc = (U8(A, b + 8u + j) & 15u) | ((U8(A, b + j) >> 6) << 4);
        mn = (U8(A, b + 8u + j) >> 4) | ((U8(A, b + 4u + j) >> 6) << 4);
    }
    m = float(mn);
    return float(sc);
}

// Q3_K's 6-bit scale of sub-block s (0..15), less its offset of 32.
int q3k_scale(uint b, uint s) {
    const uint lo = s < 8u ? U8(A, b + 96u + s) & 15u : U8(A, b + 96u + s - 8u) >> 4;
    const uint hi = (U8(A, b + 104u + s % 4u) >> (2u * (s / 4u))) & 3u;
    return int(lo | (hi << 4)) - 32;
}

float dequant(uint type, uint b, uint e) {
    if (type == T_F32) return F32(A, b + 4u * e);
    if (type == T_F16) return F16(A, b + 2u * e);
    if (type == T_BF16) return BF16(A, b + 2u * e);
    if (type == T_Q8_0) return F16(A, b) * float(I8(A, b + 2u + e));
    if (type == T_Q4_0 || type == T_Q4_1) {
        const uint qs = type == T_Q4_0 ? 2u : 4u;
        const uint q = U8(A, b + qs + (e & 15u));
        const uint v = e < 16u ? q & 15u : q >> 4;
        return type == T_Q4_0 ? F16(A, b) * (float(v) - 8.0) : F16(A, b) * float(v) + F16(A, b + 2u);
    }
    if (type == T_Q5_0 || type == T_Q5_1) {
        const uint qh_at = type == T_Q5_0 ? 2u : 4u;
        const uint q = U8(A, b + qh_at + 4u + (e & 15u));
        const uint v = (e < 16u ? q & 15u : q >> 4) | (((U32(A, b + qh_at) >> e) & 1u) << 4);
        return type == T_Q5_0 ? F16(A, b) * (float(v) - 16.0) : F16(A, b) * float(v) + F16(A, b + 2u);
    }
    if (type == T_Q4_K || type == T_Q5_K) {
        const uint c = e / 64u, l = e % 64u;
        const uint qs_at = type == T_Q4_K ? 16u : 48u;
        const uint q = U8(A, b + qs_at + 32u * c + (l & 31u));
        uint v = l < 32u ? q & 15u : q >> 4;
        if (type == T_Q5_K) v |= ((U8(A, b + 16u + (e & 31u)) >> (e / 32u)) & 1u) << 4;
        float mn;
        const float sc = q4k_scale_min(b, e / 32u, mn);
        return F16(A, b) * sc * float(v) - F16(A, b + 2u) * mn;
    }
    if (type == T_Q2_K || type == T_Q3_K) {
        // e = 128h + 32j + l: bits 2j..2j+1 of qs[32h + l]; sub-block e / 16.
        const uint h = e / 128u, j = (e / 32u) % 4u, l = e % 32u, sub = e / 16u;
        const uint qs_at = type == T_Q2_K ? 16u : 32u;
        const uint q = (U8(A, b + qs_at + 32u * h + l) >> (2u * j)) & 3u;
        if (type == T_Q2_K) {
            const uint sc = U8(A, b + sub);
            return F16(A, b + 80u) * float(sc & 15u) * float(q) - F16(A, b + 82u) * float(sc >> 4);
        }
        const uint hi = (U8(A, b + l) >> (4u * h + j)) & 1u;
        return F16(A, b + 108u) * float(q3k_scale(b, sub)) * (float(q) - (hi != 0u ? 0.0 : 4.0));
    }
    if (type == T_Q6_K) {
        const uint n = e / 128u, r = e % 128u, l = r % 32u, p = r / 32u;
        const uint ql = U8(A, b + 64u * n + l + (p & 1u) * 32u);
        const uint qh = U8(A, b + 128u + 32u * n + l);
        const int v = int(((ql >> (p >= 2u ? 4u : 0u)) & 15u) | (((qh >> (2u * p)) & 3u) << 4)) - 32;
        return F16(A, b + 208u) * float(I8(A, b + 192u + 8u * n + l / 16u + 2u * p)) * float(v);
    }
    return 0.0;
}

// Bytes of a block and elements in it.
uint block_bytes(uint type) {
    switch (type) {
        case T_F32: return 4u;
        case T_F16: case T_BF16: return 2u;
        case T_Q4_0: return 18u;
        case T_Q4_1: return 20u;
        case T_Q5_0: return 22u;
        case T_Q5_1: return 24u;
        case T_Q8_0: return 34u;
        case T_Q2_K: return 84u;
        case T_Q3_K: return 110u;
        case T_Q4_K: return 144u;
        case T_Q5_K: return 176u;
        case T_Q6_K: return 210u;
    }
    return 0u;
}

uint block_elems(uint type) {
    if (type == T_F32 || type == T_F16 || type == T_BF16) return 1u;
    if (type == T_Q2_K || type == T_Q3_K || type == T_Q4_K || type == T_Q5_K || type == T_Q6_K) return 256u;
    return 32u;
}

// Element k of a weight row starting at byte r.
float weight_at(uint type, uint r, uint k) {
    if (split_nb != 0u && (type == T_Q4_0 || type == T_Q8_0)) {
        const uint c = k / 32u, e = k % 32u, q = block_quants_at(type, r, c);
        const float d = F16(A, block_scale_at(type, r, c));
        if (type == T_Q8_0) return d * float(I8(A, q + e));
        const uint x = U8(A, q + (e & 15u));
        return d * (float(e < 16u ? x & 15u : x >> 4) - 8.0);
    }
    const uint be = block_elems(type);
    return dequant(type, r + (k / be) * block_bytes(type), k % be);
}

// 32 consecutive elements, chunk c of a row starting at byte r (elements 32c .. 32c + 31):
// the block's scales are read once, each quant byte once.
void dequant32(uint type, uint r, uint c, out float v[32]) {
    if (type == T_F32 || type == T_F16 || type == T_BF16) {
        [[unroll]] for (uint u = 0u; u < 32u; ++u) v[u] = dequant(type, r + (32u * c + u) * block_bytes(type), 0u);
        return;
    }
    if (type == T_Q8_0) {
        const float d = F16(A, block_scale_at(type, r, c));
        const uint qs = block_quants_at(type, r, c);
        [[unroll]] for (uint u = 0u; u < 32u; u += 2u) {
            const uint w = U16(A, qs + u);
            v[u] = d * float(int(w << 24) >> 24);
            v[u + 1u] = d * float(int(w << 16) >> 24);
        }
        return;
    }
    if (type == T_Q4_0 || type == T_Q4_1 || type == T_Q5_0 || type == T_Q5_1) {
        const uint b = r + block_bytes(type) * c;
        const float d = F16(A, type == T_Q4_0 ? block_scale_at(type, r, c) : b);
        const float m = type == T_Q4_1 || type == T_Q5_1 ? F16(A, b + 2u) : 0.0;
        // The quants' first byte (Q4_0's may be in a split row).
        const uint qs = type == T_Q4_0   ? block_quants_at(type, r, c)
                        : type == T_Q4_1 ? b + 4u
                        : type == T_Q5_0 ? b + 6u
                                         : b + 8u;
        const uint qh = type == T_Q5_0 ? U32(A, b + 2u) : type == T_Q5_1 ? U32(A, b + 4u) : 0u;
        const bool five = type == T_Q5_0 || type == T_Q5_1;
        const float off = type == T_Q4_0 ? 8.0 : type == T_Q5_0 ? 16.0 : 0.0;
        [[unroll]] for (uint u = 0u; u < 16u; u += 2u) {
            const uint w = U16(A, qs + u);
            [[unroll]] for (uint h = 0u; h < 2u; ++h) {
                const uint q = (w >> (8u * h)) & 0xFFu;
                uint lo = q & 15u, hi = q >> 4;
                if (five) {
                    lo |= ((qh >> (u + h)) & 1u) << 4;
                    hi |= ((qh >> (u + h + 16u)) & 1u) << 4;
                }
                v[u + h] = d * (float(lo) - off) + m;
                v[u + h + 16u] = d * (float(hi) - off) + m;
            }
        }
        return;
    }
    if (type == T_Q4_K || type == T_Q5_K) {
        const uint bb = block_bytes(type);
        const uint b = r + bb * (c / 8u), j = c % 8u;  // sub-block j of the super-block
        float mn;
        const float sc = q4k_scale_min(b, j, mn);
        const float d = F16(A, b) * sc, m = F16(A, b + 2u) * mn;
        const uint qs = b + (type == T_Q4_K ? 16u : 48u) + 32u * (j / 2u);
        const uint shift = (j & 1u) * 4u;
        [[unroll]] for (uint u = 0u; u < 32u; u += 2u) {
            const uint w = U16(A, qs + u);
            uint q0 = ((w & 0xFFu) >> shift) & 15u, q1 = ((w >> 8) >> shift) & 15u;
            if (type == T_Q5_K) {
                const uint hw = U16(A, b + 16u + u);
                q0 |= (((hw & 0xFFu) >> j) & 1u) << 4;
                q1 |= (((hw >> 8) >> j) & 1u) << 4;
            }
            v[u] = d * float(q0) - m;
            v[u + 1u] = d * float(q1) - m;
        }
        return;
    }
    if (type == T_Q2_K || type == T_Q3_K) {  // chunk c: h = cc / 4, j = cc % 4, sub-blocks 2cc, 2cc + 1
        const uint bb = block_bytes(type);
        const uint b = r + bb * (c / 8u), cc = c % 8u, h = cc / 4u, j = cc % 4u;
        const uint qs = b + (type == T_Q2_K ? 16u : 32u) + 32u * h;
        float scale[2], minv[2];
        [[unroll]] for (uint k = 0u; k < 2u; ++k) {
            if (type == T_Q2_K) {
                const uint sc = U8(A, b + 2u * cc + k);
                scale[k] = F16(A, b + 80u) * float(sc & 15u);
                minv[k] = F16(A, b + 82u) * float(sc >> 4);
            } else {
                scale[k] = F16(A, b + 108u) * float(q3k_scale(b, 2u * cc + k));
                minv[k] = 0.0;
            }
        }
        [[unroll]] for (uint u = 0u; u < 32u; u += 2u) {
            const uint w = U16(A, qs + u);
            const uint hw = type == T_Q3_K ? U16(A, b + u) : 0u;
            [[unroll]] for (uint t = 0u; t < 2u; ++t) {
                const uint q = ((w >> (8u * t)) >> (2u * j)) & 3u;
                const uint k = (u + t) / 16u;
                if (type == T_Q2_K) {
                    v[u + t] = scale[k] * float(q) - minv[k];
                } else {
                    const uint hi = ((hw >> (8u * t)) >> (4u * h + j)) & 1u;
                    v[u + t] = scale[k] * (float(q) - (hi != 0u ? 0.0 : 4.0));
                }
            }
        }
        return;
    }
    // Q6_K: chunk c is part p of half n of super-block c / 8.
    const uint b = r + 210u * (c / 8u), n = (c % 8u) / 4u, p = c % 4u;
    const float d = F16(A, b + 208u);
    const uint ql = b + 64u * n + (p & 1u) * 32u, qh = b + 128u + 32u * n;
    const uint lshift = p >= 2u ? 4u : 0u, hshift = 2u * p;
    const float s0 = d * float(I8(A, b + 192u + 8u * n + 2u * p)), s1 = d * float(I8(A, b + 193u + 8u * n + 2u * p));
    [[unroll]] for (uint u = 0u; u < 32u; u += 2u) {
        const uint lw = U16(A, ql + u), hw = U16(A, qh + u);
        const int q0 = int((((lw & 0xFFu) >> lshift) & 15u) | ((((hw & 0xFFu) >> hshift) & 3u) << 4)) - 32;
        const int q1 = int((((lw >> 8) >> lshift) & 15u) | ((((hw >> 8) >> hshift) & 3u) << 4)) - 32;
        v[u] = (u < 16u ? s0 : s1) * float(q0);
        v[u + 1u] = (u < 16u ? s0 : s1) * float(q1);
    }
}

// ---- eight elements at a time, for the decoding products (mul_vec.comp) ----
// Adjacent invocations take adjacent groups of 8 elements, so a subgroup's loads of the
// weights and of the activations fall on adjacent bytes. Small integers become floats by
// the exponent trick (2^23 + x as bits, less 2^23), which is exact and leaves the slower
// conversion unit alone.

// x - bias as a float, for an integer 0 <= x < 2^23.
float from_small(uint x, float bias) { return uintBitsToFloat(0x4B000000u | x) - (8388608.0 + bias); }

// Four bytes of A from an even byte offset, as a little-endian word.
uint bytes4(uint o) {
    const uint w = o >> 2, odd = (o >> 1) & 1u;
    const uint a = A[w], b = A[w + odd];
    return odd != 0u ? (a >> 16) | (b << 16) : a;
}

// Eight bytes of A from an even byte offset, as two little-endian words.
uvec2 bytes8(uint o) {
    const uint w = o >> 2, odd = (o >> 1) & 1u;
    const uint a = A[w], b = A[w + 1u], c = A[w + 1u + odd];
    return odd != 0u ? uvec2((a >> 16) | (b << 16), (b >> 16) | (c << 16)) : uvec2(a, b);
}

// Eight bytes of A from an even byte offset, or from a multiple of 8 (a split row's quants:
// two loads, not three).
uvec2 quant_bytes8(uint o) {
    if (split_nb != 0u) return uvec2(A[o >> 2], A[(o >> 2) + 1u]);
    return bytes8(o);
}

// Byte i (0..7) of eight, shifted right by s and masked.
uint byte_of(uvec2 q, uint i, uint s, uint mask) { return (q[i / 4u] >> (8u * (i % 4u) + s)) & mask; }

// Elements 8g .. 8g + 7 of a quantized row starting at byte r (the row's group g).
void dequant8(uint type, uint r, uint g, out float v[8]) {
    if (type == T_Q4_0 || type == T_Q4_1 || type == T_Q5_0 || type == T_Q5_1 || type == T_Q8_0) {
        const uint bb = block_bytes(type), h = g % 4u;  // group h of the block's 4
        const uint b = r + bb * (g / 4u);
        const bool q40 = type == T_Q4_0 || type == T_Q8_0;  // the types that may be split rows
        const float d = F16(A, q40 ? block_scale_at(type, r, g / 4u) : b);
        if (type == T_Q8_0) {
            const uvec2 q = quant_bytes8(block_quants_at(type, r, g / 4u) + 8u * h);
            [[unroll]] for (uint i = 0u; i < 8u; ++i) v[i] = d * from_small(byte_of(q, i, 0u, 0xFFu) ^ 0x80u, 128.0);
            return;
        }
        // Elements 0..15 are the low nibbles of the 16 quant bytes, 16..31 the high ones.
        const uint qs = type == T_Q4_0   ? block_quants_at(type, r, g / 4u)
                        : type == T_Q4_1 ? b + 4u
                        : type == T_Q5_0 ? b + 6u
                                         : b + 8u;
        const uvec2 q = type == T_Q4_0 ? quant_bytes8(qs + 8u * (h & 1u)) : bytes8(qs + 8u * (h & 1u));
        const uint s = 4u * (h >> 1);
        const bool five = type == T_Q5_0 || type == T_Q5_1;
        const uint qh = five ? bytes4(b + (type == T_Q5_0 ? 2u : 4u)) >> (8u * h) : 0u;
        const float m = type == T_Q4_1 || type == T_Q5_1 ? F16(A, b + 2u) : 0.0;
        const float bias = type == T_Q4_0 ? 8.0 : type == T_Q5_0 ? 16.0 : 0.0;
        [[unroll]] for (uint i = 0u; i < 8u; ++i) {
            const uint x = byte_of(q, i, s, 15u) | (five ? ((qh >> i) & 1u) << 4 : 0u);
            v[i] = d * from_small(x, bias) + m;
        }
        return;
    }
    // Super-blocks of 256: group gi of the block's 32.
    const uint gi = g % 32u, e0 = 8u * gi;
    const uint b = r + block_bytes(type) * (g / 32u);
    if (type == T_Q4_K || type == T_Q5_K) {
        const uint j = gi / 4u;  // sub-block of 32
        float mn;
        const float sc = q4k_scale_min(b, j, mn);
        const uint dw = bytes4(b);
        const float d = unpackHalf2x16(dw).x * sc, m = unpackHalf2x16(dw).y * mn;
        const uvec2 q = bytes8(b + (type == T_Q4_K ? 16u : 48u) + 32u * (j / 2u) + 8u * (gi % 4u));
        const uvec2 qh = type == T_Q5_K ? bytes8(b + 16u + 8u * (gi % 4u)) : uvec2(0u);
        [[unroll]] for (uint i = 0u; i < 8u; ++i) {
            const uint x = byte_of(q, i, 4u * (j & 1u), 15u) | (type == T_Q5_K ? byte_of(qh, i, j, 1u) << 4 : 0u);
            v[i] = d * from_small(x, 0.0) - m;
        }
        return;
    }
    if (type == T_Q6_K) {  // half n, part p; bytes l0 .. l0 + 7 of its 32
        const uint n = e0 / 128u, p = (e0 % 128u) / 32u, l0 = e0 % 32u;
        const uvec2 ql = bytes8(b + 64u * n + 32u * (p & 1u) + l0);
        const uvec2 qh = bytes8(b + 128u + 32u * n + l0);
        const float d = F16(A, b + 208u) * float(I8(A, b + 192u + 8u * n + l0 / 16u + 2u * p));
        [[unroll]] for (uint i = 0u; i < 8u; ++i) {
            const uint x = byte_of(ql, i, p >= 2u ? 4u : 0u, 15u) | (byte_of(qh, i, 2u * p, 3u) << 4);
            v[i] = d * from_small(x, 32.0);
        }
        return;
    }
    // Q2_K and Q3_K: e0 = 128h + 32j + l0, bits 2j of quant bytes 32h + l0 .. + 7; sub-block e0 / 16.
    const uint h = e0 / 128u, j = (e0 / 32u) % 4u, l0 = e0 % 32u, sub = e0 / 16u;
    const uvec2 q = bytes8(b + (type == T_Q2_K ? 16u : 32u) + 32u * h + l0);
    if (type == T_Q2_K) {
        const uint sc = U8(A, b + sub), dw = bytes4(b + 80u);
        const float d = unpackHalf2x16(dw).x * float(sc & 15u), m = unpackHalf2x16(dw).y * float(sc >> 4);
        [[unroll]] for (uint i = 0u; i < 8u; ++i) v[i] = d * from_small(byte_of(q, i, 2u * j, 3u), 0.0) - m;
        return;
    }
    const uvec2 hm = bytes8(b + l0);
    const float d = F16(A, b + 108u) * float(q3k_scale(b, sub));
    [[unroll]] for (uint i = 0u; i < 8u; ++i) {
        // The high bit set means no offset: q - 4 + 4 hi.
        const uint x = byte_of(q, i, 2u * j, 3u) | (byte_of(hm, i, 4u * h + j, 1u) << 2);
        v[i] = d * from_small(x, 4.0);
    }
}
