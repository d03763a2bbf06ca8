#version 450
// Flash attention, one invocation per (query row, head, sequence): the keys in order with an
// online softmax, the weighted values accumulated in place. Keys the mask hides (-inf) are
// skipped. K and V rows are F32, F16 or Q8_0; heads of q share K/V heads in groups (GQA).
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"
layout(local_size_x = 64) in;
layout(binding = 0) buffer O { uint o[]; };
layout(binding = 1) readonly buffer Q { uint q[]; };
layout(binding = 2) readonly buffer K { uint k[]; };
layout(binding = 3) readonly buffer V { uint v[]; };
layout(binding = 4) readonly buffer M { uint m[]; };
layout(push_constant) uniform P {
    uint q_off, q_nb1, q_nb2, q_nb3;
    uint k_off, k_nb1, k_nb2, k_nb3;
    uint v_off, v_nb1, v_nb2, v_nb3;
    uint o_off, o_nb1, o_nb2;
    uint m_off, m_nb1;
    uint D, Dv, n_q, H, H_kv, n_kv, S;
    uint flags;  // k type | v type << 8 | has mask << 16 | mask F16 << 17
    float scale, softcap;
} p;

float k_at(uint row, uint e) {
    const uint t = p.flags & 255u;
    if (t == T_F16) return F16(k, row + 2u * e);
    if (t == T_F32) return F32(k, row + 4u * e);
    const uint b = row + 34u * (e / 32u);
    return F16(k, b) * float(I8(k, b + 2u + e % 32u));
}

float v_at(uint row, uint e) {
    const uint t = (p.flags >> 8) & 255u;
    if (t == T_F16) return F16(v, row + 2u * e);
    if (t == T_F32) return F32(v, row + 4u * e);
    const uint b = row + 34u * (e / 32u);
    return F16(v, b) * float(I8(v, b + 2u + e % 32u));
}

shared float red[64];
shared float part[64][16];

float reduce(float v, bool take_max) {
    const uint t = gl_LocalInvocationID.x;
    barrier();
    red[t] = v;
    barrier();
    [[unroll]] for (uint s = 32u; s > 0u; s >>= 1) {
        if (t < s) red[t] = take_max ? max(red[t], red[t + s]) : red[t] + red[t + s];
        barrier();
    }
    return red[0];
}

void main() {
    const uint r = group_id(), t = gl_LocalInvocationID.x;
    if (r >= p.n_q * p.H * p.S) return;  // uniform over the workgroup
    const uint h = r % p.H, i = (r / p.H) % p.n_q, s = r / (p.H * p.n_q);
    const uint hk = h / (p.H / p.H_kv);
    const uint qr = p.q_off + i * p.q_nb1 + h * p.q_nb2 + s * p.q_nb3;
    const uint kb = p.k_off + hk * p.k_nb2 + s * p.k_nb3, vb = p.v_off + hk * p.v_nb2 + s * p.v_nb3;
    const bool has_mask = (p.flags & 0x10000u) != 0u, mask_f16 = (p.flags & 0x20000u) != 0u;
    const uint mr = p.m_off + i * p.m_nb1;
    // Thread t takes keys t, t + 64, ...: its own running max, sum and weighted values.
    float acc[256];
    for (uint e = 0u; e < p.Dv; ++e) acc[e] = 0.0;
    float mx = -1.0 / 0.0, l = 0.0;
    for (uint j = t; j < p.n_kv; j += 64u) {
        float mv = 0.0;
        if (has_mask) {
            mv = mask_f16 ? F16(m, mr + 2u * j) : F32(m, mr + 4u * j);
            if (isinf(mv) && mv < 0.0) continue;
        }
        const uint kr = kb + j * p.k_nb1;
        float d = 0.0;
        for (uint e = 0u; e < p.D; e += 4u) {  // head sizes are multiples of 4 (of 32 for Q8_0)
            [[unroll]] for (uint u = 0u; u < 4u; ++u) d += F32(q, qr + 4u * (e + u)) * k_at(kr, e + u);
        }
        float sc;
        if (p.softcap > 0.0) {
            const float z = d * p.scale / p.softcap, tz = exp(-2.0 * abs(z));
            sc = p.softcap * sign(z) * (1.0 - tz) / (1.0 + tz);
        } else {
            sc = d * p.scale;
        }
        sc += mv;
        if (isinf(sc) && sc < 0.0) continue;
        const float m_new = max(mx, sc);
        const float c = exp(mx - m_new), w = exp(sc - m_new);
        l = l * c + w;
        const uint vr = vb + j * p.v_nb1;
        for (uint e = 0u; e < p.Dv; e += 4u) {
            [[unroll]] for (uint u = 0u; u < 4u; ++u) acc[e + u] = acc[e + u] * c + w * v_at(vr, e + u);
        }
        mx = m_new;
    }
    // Merge the threads: rescale to the common max, then sum.
    const float gm = reduce(mx, true);
    const float f = isinf(mx) ? 0.0 : exp(mx - gm);
    const float total = reduce(l * f, false);
    const float inv = total > 0.0 ? 1.0 / total : 0.0;
    const uint orow = p.o_off + h * p.o_nb1 + i * p.o_nb2 + s * p.o_nb2 * p.n_q;
    // The values 16 at a time: each thread's share into shared memory, then 16 threads sum.
    for (uint e0 = 0u; e0 < p.Dv; e0 += 16u) {
        barrier();
        [[unroll]] for (uint u = 0u; u < 16u; ++u) part[t][u] = e0 + u < p.Dv ? acc[e0 + u] * f : 0.0;
        barrier();
        if (t < 16u && e0 + t < p.Dv) {
            float sum = 0.0;
            for (uint k = 0u; k < 64u; ++k) sum += part[k][t];
            o[(orow >> 2) + e0 + t] = floatBitsToUint(sum * inv);
        }
    }
}
