// What the flash-attention shaders share: K and V rows of F32, F16 or Q8_0 read four
// elements at a time from the buffers named k and v (byte offsets, any multiple of 2), and
// the push constants both take (vulkan_ops.cpp fills them once for either).
layout(push_constant) uniform P {
    uint q_off, q_nb1, q_nb2, q_nb3;
    uint k_off, k_nb1, k_nb2, k_nb3;
    uint v_off, v_nb1, v_nb2, v_nb3;
    uint o_off, o_nb1, o_nb2;
    uint m_off, m_nb1;
    uint D, Dv, n_q, H, H_kv, n_kv, S;
    uint flags;  // k type | v type << 8 | has mask << 16 | mask F16 << 17 | int8 copy << 18
                 // | ranges merged by their last workgroup << 19
    float scale, softcap;
    uint mode, split;  // 0: whole rows; 1: ranges of split keys; 2: merge the ranges
    uint qa_off, qd_off;  // flash_attn.comp's int8 copy of the output: quants, block scales
    uint out_off;         // mode 1 with flags bit 19: the output's offset in binding 6
} p;

#define ATTN_LOAD4(NAME, B)                                                                                    \
    vec4 NAME(uint t, uint r, uint e) {                                                                        \
        if (t == T_F16) {                                                                                      \
            const uint o = r + 2u * e;                                                                         \
            const bool w = (o & 3u) == 0u;                                                                     \
            return vec4(unpackHalf2x16(w ? B[o >> 2] : U32(B, o)), unpackHalf2x16(w ? B[(o >> 2) + 1u] : U32(B, o + 4u))); \
        }                                                                                                      \
        if (t == T_F32) return vec4(F32(B, r + 4u * e), F32(B, r + 4u * e + 4u), F32(B, r + 4u * e + 8u), F32(B, r + 4u * e + 12u)); \
        const uint b = r + 34u * (e / 32u), w = U32(B, b + 2u + e % 32u);                                      \
        return F16(B, b) * vec4(int(w << 24) >> 24, int(w << 16) >> 24, int(w << 8) >> 24, int(w) >> 24);     \
    }

// Elements e..e+3 of key row kr and of value row vr.
ATTN_LOAD4(key4, k)
ATTN_LOAD4(value4_of, v)
vec4 value4(uint vr, uint e) { return value4_of((p.flags >> 8) & 255u, vr, e); }

// The score of a raw dot product: scaled, soft-capped where asked, masked.
float attn_score(float d, float mv) {
    if (p.softcap > 0.0) {
        const float z = d * p.scale / p.softcap, tz = exp(-2.0 * abs(z));
        return p.softcap * sign(z) * (1.0 - tz) / (1.0 + tz) + mv;
    }
    return d * p.scale + mv;
}

// The mask's value for query position i and key j (0 without a mask), from one load and no
// branch: without a mask, word 0 of the binding (the dummy buffer), unused. Loads behind a
// branch each wait for the one before; the prompt attention on cooperative matrices took
// its mask this way, not behind the keys' bounds check, and 8B Q4_0 pp512 at depth 4096 went
// from 3321 to 3437 t/s on the H100.
float attn_mask(uint i, uint j) {
    const bool has = (p.flags & 0x10000u) != 0u, f16 = (p.flags & 0x20000u) != 0u;
    const uint at = has ? p.m_off + i * p.m_nb1 + (f16 ? 2u : 4u) * j : 0u;
    const uint w = m[at >> 2];
    const float x = f16 ? unpackHalf2x16(w >> (8u * (at & 2u))).x : uintBitsToFloat(w);
    return has ? x : 0.0;
}
