#version 450
// RoPE, and row writes into a cache (set_rows, optionally rotating first: rope_set_rows).
// mode 0: rope, one invocation per element of x [head, n_head, n_tokens] into a contiguous
// output; mode 1: set_rows / rope_set_rows into F32/F16/BF16 rows (one invocation per
// element) or Q8_0 rows (one per block of 32, quantized as the CPU reference does).
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"
layout(local_size_x = 256) in;
layout(binding = 0) buffer O { uint o[]; };

// A 16-bit store as two atomics on its 32-bit word: the invocation writing the word's other
// half may run at the same time, and neither needs 16-bit storage.
void store16(uint byte, uint v) {
    const uint shift = (byte & 2u) * 8u;
    atomicAnd(o[byte >> 2], ~(0xFFFFu << shift));
    atomicOr(o[byte >> 2], (v & 0xFFFFu) << shift);
}
layout(binding = 1) readonly buffer X { uint x[]; };
layout(binding = 2) readonly buffer Pos { uint pos[]; };
layout(binding = 3) readonly buffer Idx { uint idx[]; };
layout(binding = 4) readonly buffer FF { uint ff[]; };
layout(push_constant) uniform P {
    uint o_off, o_nb1, o_rows, o_type;
    uint x_off, head, n_head, n_tok, x_nb1, x_nb2;
    uint pos_off, idx_off, idx64, ff_off, has_ff;
    uint n_dims, neox, rotate, mode;
    float base, freq_scale, ext_factor, attn_factor, corr0, corr1;
} p;

float xv(uint ih, uint it, uint i) { return F32(x, p.x_off + ih * p.x_nb1 + it * p.x_nb2 + 4u * i); }

// Element i of head ih of token it, rotated when asked.
float value(uint ih, uint it, uint i) {
    if (p.rotate == 0u || i >= p.n_dims) return xv(ih, it, i);
    const uint half_dims = p.n_dims / 2u;
    uint i0, ia, ib;
    bool first;
    if (p.neox != 0u) {
        first = i < half_dims;
        ia = first ? i : i - half_dims;
        ib = ia + half_dims;
        i0 = 2u * ia;
    } else {
        first = (i & 1u) == 0u;
        ia = i & ~1u;
        ib = ia + 1u;
        i0 = ia;
    }
    const int ps = int(pos[(p.pos_off >> 2) + it]);
    const float factor = p.has_ff != 0u ? F32(ff, p.ff_off + 4u * (i0 / 2u)) : 1.0;
    const float te = float(ps) * pow(p.base, -float(i0) / float(p.n_dims)) / factor;
    float theta = p.freq_scale * te;
    float mscale = p.attn_factor;
    if (p.ext_factor != 0.0) {
        const float y = (float(i0 / 2u) - p.corr0) / max(0.001, p.corr1 - p.corr0);
        const float mix = (1.0 - min(1.0, max(0.0, y))) * p.ext_factor;
        theta = theta * (1.0 - mix) + te * mix;
        mscale *= 1.0 + 0.1 * log(1.0 / p.freq_scale);
    }
    const float c = cos(theta) * mscale, s = sin(theta) * mscale;
    const float x0 = xv(ih, it, ia), x1 = xv(ih, it, ib);
    return first ? x0 * c - x1 * s : x0 * s + x1 * c;
}

void store(uint byte, float v) {
    if (p.o_type == T_F32) o[byte >> 2] = floatBitsToUint(v);
    else if (p.o_type == T_F16) store16(byte, packHalf2x16(vec2(v, 0.0)) & 0xFFFFu);
    else {
        uint u = floatBitsToUint(v);
        store16(byte, (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    }
}

void main() {
    const uint g = group_id() * 256u + gl_LocalInvocationID.x;
    const uint width = p.head * p.n_head;  // a row: one token's heads side by side
    if (p.mode == 0u) {
        if (g >= width * p.n_tok) return;
        const uint it = g / width, e = g % width;
        o[(p.o_off >> 2) + g] = floatBitsToUint(value(e / p.head, it, e % p.head));
        return;
    }
    const bool q8 = p.o_type == T_Q8_0;
    const uint per_row = q8 ? width / 32u : width;
    if (g >= per_row * p.n_tok) return;
    const uint it = g / per_row, e = g % per_row;
    const uint target = p.idx64 != 0u ? idx[(p.idx_off >> 2) + 2u * it] : idx[(p.idx_off >> 2) + it];
    if (target >= p.o_rows || (p.idx64 != 0u && idx[(p.idx_off >> 2) + 2u * it + 1u] != 0u)) return;
    const uint row = p.o_off + target * p.o_nb1;
    if (!q8) {
        store(row + (p.o_type == T_F32 ? 4u : 2u) * e, value(e / p.head, it, e % p.head));
        return;
    }
    float v[32];
    float amax = 0.0;
    [[unroll]] for (uint j = 0u; j < 32u; ++j) {
        const uint k = 32u * e + j;
        v[j] = value(k / p.head, it, k % p.head);
        amax = max(amax, abs(v[j]));
    }
    const uint dh = packHalf2x16(vec2(amax / 127.0, 0.0)) & 0xFFFFu;
    const float d = unpackHalf2x16(dh).x;
    const float id = d != 0.0 ? 1.0 / d : 0.0;
    const uint b = row + 34u * e;
    store16(b, dh);
    [[unroll]] for (uint j = 0u; j < 32u; j += 2u) {
        const int q0 = int(roundEven(clamp(v[j] * id, -127.0, 127.0)));
        const int q1 = int(roundEven(clamp(v[j + 1u] * id, -127.0, 127.0)));
        store16((b + 2u + j), (uint(q0) & 0xFFu) | ((uint(q1) & 0xFFu) << 8));
    }
}
