// Element e of one block of a weight type, read from the buffer named A at byte offset b:
// the layouts of tensor/quant/blocks.h (the same bits as GGUF files).
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
        const uint b = r + 34u * c;
        const float d = F16(A, b);
        [[unroll]] for (uint u = 0u; u < 32u; u += 2u) {
            const uint w = U16(A, b + 2u + u);
            v[u] = d * float(int(w << 24) >> 24);
            v[u + 1u] = d * float(int(w << 16) >> 24);
        }
        return;
    }
    if (type == T_Q4_0 || type == T_Q4_1 || type == T_Q5_0 || type == T_Q5_1) {
        const uint b = r + block_bytes(type) * c;
        const float d = F16(A, b);
        const float m = type == T_Q4_1 || type == T_Q5_1 ? F16(A, b + 2u) : 0.0;
        const uint qs = type == T_Q4_0 ? 2u : type == T_Q4_1 ? 4u : type == T_Q5_0 ? 6u : 8u;
        const uint qh = type == T_Q5_0 ? U32(A, b + 2u) : type == T_Q5_1 ? U32(A, b + 4u) : 0u;
        const bool five = type == T_Q5_0 || type == T_Q5_1;
        const float off = type == T_Q4_0 ? 8.0 : type == T_Q5_0 ? 16.0 : 0.0;
        [[unroll]] for (uint u = 0u; u < 16u; u += 2u) {
            const uint w = U16(A, b + qs + u);
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
