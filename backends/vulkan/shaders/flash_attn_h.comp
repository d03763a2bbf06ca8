#version 450
// Flash attention for prompts in packed f16 arithmetic, for GPUs without cooperative
// matrices: flash_attn_cm.comp's blocks (BR = 32 query rows that share a KV head, BC = 64
// keys a step; queries, keys, values and the softmax's weights in f16; F16 or Q8_0 rows,
// heads of at most 128 in multiples of 16) with the products done by each invocation t:
// rows 2 rp and 2 rp + 1 of the block (rp = t / 16) and, with kc = t % 16, keys 4 kc ..
// 4 kc + 3 of a step's scores and elements 8 kc .. 8 kc + 7 of the outputs. A product's f16
// sums (of SV x 8 elements of a head, or of PK x 4 keys) are added to f32 sums. Measured
// with SV and PK 4 / 2 / 1: H100 (NVIDIA's driver), 8B Q4_0 pp512 at a depth of 4096, 1745 /
// 1726 / 1692 t/s; on lavapipe, the op-parity errors up to 6.8e-7 / 4.9e-7 / 3.1e-7 (their
// bound is 1e-6). 2 it is.
// The softmax runs where the scores are: the 16 invocations of two rows exchange their
// maxima through shared memory, and each keeps the rows' weights, their sums and the factor
// that rescales the outputs in registers.
// Within 32 KiB of shared memory (lavapipe has that, as do many ARM GPUs). The key rows are
// stored in the order 4 kc + i -> 16 i + kc, so the 16 rows that a load of the scores reads
// at once lie in distinct banks.
#extension GL_GOOGLE_include_directive : enable
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#include "common.glsl"
layout(local_size_x = 256) in;
layout(binding = 0) buffer O { uint o[]; };
layout(binding = 1) readonly buffer Q { uint q[]; };
layout(binding = 2) readonly buffer K { uint k[]; };
layout(binding = 2) readonly buffer K4 { uvec4 k4[]; };  // the same rows, 16 bytes at a time
layout(binding = 3) readonly buffer V { uint v[]; };
layout(binding = 3) readonly buffer V4 { uvec4 v4[]; };
layout(binding = 4) readonly buffer M { uint m[]; };
#include "attn.glsl"

const uint WG = 256u, BR = 32u, BC = 64u, DMAX = 128u;
const uint LDQ = DMAX / 8u + 1u;  // rows of queries, keys and values: 8 halves a vector, padded by one
const uint LDP = BC / 4u;         // rows of weights (f16 vectors of 4)
const uint SV = 2u;  // vectors of 8 elements of a head in a score's f16 sums
const uint PK = 2u;  // groups of 4 keys in an output's f16 sums
// vulkan_device.h's kAttnHShared: 8704 + 17408 + 4096 + 2048 + 8 bytes.
shared uvec4 qsh[BR * LDQ];
shared uvec4 kvh[BC * LDQ];    // keys (in the order above), then values [key][dim]
shared f16vec4 psh[BR * LDP];  // the weights [row][key / 4]
shared vec4 red[BR * 4u];      // a row's 16 partial maxima or sums
shared uint live_lo, live_hi;  // the keys some row sees: [live_lo, live_hi)

#include "attn_blocks.glsl"

// h + the products of 8 halves of x and y, pairwise.
f16vec2 dot8(uvec4 x, uvec4 y, f16vec2 h) {
    h = fma(unpackFloat2x16(x.x), unpackFloat2x16(y.x), h);
    h = fma(unpackFloat2x16(x.y), unpackFloat2x16(y.y), h);
    h = fma(unpackFloat2x16(x.z), unpackFloat2x16(y.z), h);
    return fma(unpackFloat2x16(x.w), unpackFloat2x16(y.w), h);
}

// h[0..3] + w times 8 halves of y.
void axpy8(float16_t w, uvec4 y, inout f16vec2 h[4]) {
    const f16vec2 ww = f16vec2(w);
    h[0] = fma(ww, unpackFloat2x16(y.x), h[0]);
    h[1] = fma(ww, unpackFloat2x16(y.y), h[1]);
    h[2] = fma(ww, unpackFloat2x16(y.z), h[2]);
    h[3] = fma(ww, unpackFloat2x16(y.w), h[3]);
}

// The largest (or the sum) of row r's 16 parts in red.
float row_max(uint r) {
    const vec4 a = max(max(red[4u * r], red[4u * r + 1u]), max(red[4u * r + 2u], red[4u * r + 3u]));
    return max(max(a.x, a.y), max(a.z, a.w));
}
float row_sum(uint r) {
    const vec4 a = red[4u * r] + red[4u * r + 1u] + red[4u * r + 2u] + red[4u * r + 3u];
    return a.x + a.y + a.z + a.w;
}

void main() {
    const uint t = gl_LocalInvocationID.x;
    const uint D8 = p.D / 8u, Dv8 = p.Dv / 8u;
    const uint G = p.H / p.H_kv, VR = p.n_q * G, tiles = (VR + BR - 1u) / BR;
    const uint ranges = p.mode == 1u ? (p.n_kv + p.split - 1u) / p.split : 1u;
    const uint id = group_id(), range = id % ranges, tile = (id / ranges) % tiles;
    const uint hk = (id / (ranges * tiles)) % p.H_kv, s = id / (ranges * tiles * p.H_kv);
    if (s >= p.S) return;  // uniform over the workgroup
    const uint v0 = tile * BR;
    const uint key0 = range * p.split, key_end = p.mode == 1u ? min(p.n_kv, key0 + p.split) : p.n_kv;
    const uint kb = p.k_off + hk * p.k_nb2 + s * p.k_nb3, vb = p.v_off + hk * p.v_nb2 + s * p.v_nb3;
    const uint kt = p.flags & 255u, vt = (p.flags >> 8) & 255u;
    const bool k_wide = kt == T_F16 && ((kb | p.k_nb1) & 15u) == 0u, v_wide = vt == T_F16 && ((vb | p.v_nb1) & 15u) == 0u;
    const float neg_inf = -1.0 / 0.0;

    load_queries(t, v0, VR, G, hk, s);
    const uvec2 live = live_keys(t, v0, VR, G, key0, key_end);

    const uint rp = t / 16u, kc = t % 16u;
    uint pos[2];
    bool row_live[2];
    float m_run[2], l_part[2];
    [[unroll]] for (uint w = 0u; w < 2u; ++w) {
        const uint vr = v0 + 2u * rp + w;
        pos[w] = min(vr / G, p.n_q - 1u);
        row_live[w] = vr < VR;
        m_run[w] = neg_inf;
        l_part[w] = 0.0;
    }
    vec4 acc[4] = vec4[4](vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));  // [2 row + half]

    for (uint j0 = live.x; j0 < live.y; j0 += BC) {
        barrier();  // the last step's values and weights are read
        for (uint x = t; x < BC * D8; x += WG) {
            const uint c = x / D8, e = 8u * (x % D8), j = j0 + c;
            const uint kr = kb + min(j, key_end - 1u) * p.k_nb1;
            const uvec4 w = key8(kt, kr, e, k_wide);
            kvh[((c % 4u) * 16u + c / 4u) * LDQ + e / 8u] = j < key_end ? w : uvec4(0u);
        }
        barrier();
        float d[8] = float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);  // [4 row + i]: key 4 kc + i
        for (uint e8 = 0u; e8 < D8; e8 += SV) {
            f16vec2 h[8];
            [[unroll]] for (uint i = 0u; i < 8u; ++i) h[i] = f16vec2(0.0);
            [[unroll]] for (uint u = 0u; u < SV; ++u) {
                if (e8 + u >= D8) break;
                const uvec4 q0 = qsh[2u * rp * LDQ + e8 + u], q1 = qsh[(2u * rp + 1u) * LDQ + e8 + u];
                [[unroll]] for (uint i = 0u; i < 4u; ++i) {
                    const uvec4 kk = kvh[(16u * i + kc) * LDQ + e8 + u];
                    h[i] = dot8(q0, kk, h[i]);
                    h[4u + i] = dot8(q1, kk, h[4u + i]);
                }
            }
            [[unroll]] for (uint i = 0u; i < 8u; ++i) d[i] += float(h[i].x) + float(h[i].y);
        }
        // Scaled, soft-capped and masked (the mask read for every key, clamped), and the
        // rows' maxima of these 4 keys.
        float x[8];
        [[unroll]] for (uint w = 0u; w < 2u; ++w) {
            float top = neg_inf;
            [[unroll]] for (uint i = 0u; i < 4u; ++i) {
                const uint j = j0 + 4u * kc + i;
                const float mv = attn_mask(pos[w], min(j, key_end - 1u));
                x[4u * w + i] = row_live[w] && j < key_end && !hidden(mv) ? attn_score(d[4u * w + i], mv) : neg_inf;
                top = max(top, x[4u * w + i]);
            }
            red[4u * (2u * rp + w) + kc / 4u][kc % 4u] = top;
        }
        barrier();  // the keys are read, the maxima written
        for (uint x = t; x < BC * Dv8; x += WG) {  // the values in the keys' place
            const uint c = x / Dv8, e = 8u * (x % Dv8), j = j0 + c;
            const uint vr = vb + min(j, key_end - 1u) * p.v_nb1;
            const uvec4 w = value8(vt, vr, e, v_wide);
            kvh[c * LDQ + e / 8u] = j < key_end ? w : uvec4(0u);
        }
        [[unroll]] for (uint w = 0u; w < 2u; ++w) {
            const float m_new = max(m_run[w], row_max(2u * rp + w));
            const float corr = isinf(m_new) ? 1.0 : exp(m_run[w] - m_new);
            m_run[w] = m_new;
            f16vec4 wt;
            [[unroll]] for (uint i = 0u; i < 4u; ++i)
                wt[i] = float16_t(isinf(x[4u * w + i]) ? 0.0 : exp(x[4u * w + i] - m_new));
            psh[(2u * rp + w) * LDP + kc] = wt;  // the row's sum adds the same rounded weights
            l_part[w] = l_part[w] * corr + (float(wt.x) + float(wt.y) + float(wt.z) + float(wt.w));
            acc[2u * w] *= corr;
            acc[2u * w + 1u] *= corr;
        }
        barrier();  // the values and weights are in
        if (kc < Dv8) {
            for (uint k4 = 0u; k4 < BC / 4u; k4 += PK) {  // 4 PK keys a round of f16 sums
                f16vec2 h0[4] = f16vec2[4](f16vec2(0.0), f16vec2(0.0), f16vec2(0.0), f16vec2(0.0));
                f16vec2 h1[4] = h0;
                [[unroll]] for (uint u = 0u; u < PK; ++u) {
                    const f16vec4 w0 = psh[2u * rp * LDP + k4 + u], w1 = psh[(2u * rp + 1u) * LDP + k4 + u];
                    [[unroll]] for (uint z = 0u; z < 4u; ++z) {
                        const uvec4 vv = kvh[(4u * (k4 + u) + z) * LDQ + kc];
                        axpy8(w0[z], vv, h0);
                        axpy8(w1[z], vv, h1);
                    }
                }
                acc[0] += vec4(vec2(h0[0]), vec2(h0[1]));
                acc[1] += vec4(vec2(h0[2]), vec2(h0[3]));
                acc[2] += vec4(vec2(h1[0]), vec2(h1[1]));
                acc[3] += vec4(vec2(h1[2]), vec2(h1[3]));
            }
        }
    }

    // The rows' sums from their 16 parts (red was last read before the last step's final
    // barrier); their results: normalized (mode 0), or this range's maximum, sum and values.
    red[4u * (2u * rp) + kc / 4u][kc % 4u] = l_part[0];
    red[4u * (2u * rp + 1u) + kc / 4u][kc % 4u] = l_part[1];
    barrier();
    [[unroll]] for (uint w = 0u; w < 2u; ++w) {
        const uint vr = v0 + 2u * rp + w;
        if (!row_live[w] || kc >= Dv8) break;
        const uint i = vr / G, h = hk * G + vr % G;
        const float l = row_sum(2u * rp + w);
        uint at;
        float f = 1.0;
        if (p.mode == 1u) {
            at = (p.o_off >> 2) + (((s * p.n_q + i) * p.H + h) * ranges + range) * (p.Dv + 2u);
            if (kc == 0u) {
                o[at] = floatBitsToUint(m_run[w]);
                o[at + 1u] = floatBitsToUint(l);
            }
            at += 2u;
        } else {
            at = (p.o_off + h * p.o_nb1 + i * p.o_nb2 + s * p.o_nb2 * p.n_q) >> 2;
            f = l > 0.0 ? 1.0 / l : 0.0;
        }
        [[unroll]] for (uint z = 0u; z < 2u; ++z) {
            const vec4 y = acc[2u * w + z] * f;
            const uint c = 8u * kc + 4u * z;
            o[at + c] = floatBitsToUint(y.x);
            o[at + c + 1u] = floatBitsToUint(y.y);
            o[at + c + 2u] = floatBitsToUint(y.z);
            o[at + c + 3u] = floatBitsToUint(y.w);
        }
    }
}
