#version 450
// Flash attention for prompts: a workgroup takes BR query rows that share a KV head (query
// positions times the heads of a GQA group, "virtual rows" v = position * G + head in group)
// and walks the keys BC = 64 at a time, so each key and value row it reads serves BR rows
// (flash_attn.comp reads them once per row). BR is 32 for heads of up to 128, else 16; the
// queries sit in shared memory.
//   scores:  invocation t takes key t % 64 and BR / 4 rows: it reads its key row once and
//            keeps the rows' scores in registers (keys the mask hides are not computed);
//   softmax: eight invocations a row take the step's maximum, then one the running maximum
//            and the factor that rescales what the row has so far; the scores become weights;
//   values:  a group of 32 invocations takes BR / 8 rows, each lane 4 of the value
//            dimensions (every 128th group of 4), and adds the 64 weighted value rows.
// Mode 1 takes a range of the keys (split) and writes its maximum, sum and unnormalized values
// where flash_attn.comp's mode 2 merges them, as that shader's own mode 1 does.
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"
layout(local_size_x = 256) in;
layout(binding = 0) buffer O { uint o[]; };
layout(binding = 1) readonly buffer Q { uint q[]; };
layout(binding = 2) readonly buffer K { uint k[]; };
layout(binding = 2) readonly buffer K4 { uvec4 k4[]; };  // the same keys, 16 bytes at a time
layout(binding = 3) readonly buffer V { uint v[]; };
layout(binding = 4) readonly buffer M { uint m[]; };
#include "attn.glsl"

const uint BC = 64u, LD = BC + 1u;  // keys a step; the padded row of the weights
shared vec4 qs[1024];               // BR query rows of D / 4, BR * D <= 4096
shared float ps[32u * LD];          // [row][key]: scores, then weights
shared float pm[256];              // the rows' maxima of 8 keys
shared float rmax[32], rcorr[32];

void main() {
    const uint t = gl_LocalInvocationID.x;
    const uint BR = p.D > 128u || p.Dv > 128u ? 16u : 32u, D4 = p.D / 4u;
    const uint G = p.H / p.H_kv, VR = p.n_q * G, tiles = (VR + BR - 1u) / BR;
    const uint ranges = p.mode == 1u ? (p.n_kv + p.split - 1u) / p.split : 1u;
    const uint id = group_id(), range = id % ranges, tile = (id / ranges) % tiles;
    const uint hk = (id / (ranges * tiles)) % p.H_kv, s = id / (ranges * tiles * p.H_kv);
    if (s >= p.S) return;  // uniform over the workgroup
    const uint v0 = tile * BR;
    const uint key0 = range * p.split, key_end = p.mode == 1u ? min(p.n_kv, key0 + p.split) : p.n_kv;
    const uint kb = p.k_off + hk * p.k_nb2 + s * p.k_nb3, vb = p.v_off + hk * p.v_nb2 + s * p.v_nb3;
    const float neg_inf = -1.0 / 0.0;

    for (uint x = t; x < BR * D4; x += 256u) {  // the rows' queries (zeros past the last)
        const uint row = x / D4, e = 4u * (x % D4), vr = v0 + row;
        vec4 qv = vec4(0.0);
        if (vr < VR) {
            const uint qr = p.q_off + (vr / G) * p.q_nb1 + (hk * G + vr % G) * p.q_nb2 + s * p.q_nb3 + 4u * e;
            qv = vec4(F32(q, qr), F32(q, qr + 4u), F32(q, qr + 8u), F32(q, qr + 12u));
        }
        qs[x] = qv;
    }
    if (t < BR) rmax[t] = neg_inf;

    // Scores: key c of the step, rows r0.. r0 + SR - 1.
    const uint SR = BR / 4u, c = t % BC, r0 = (t / BC) * SR;
    const uint kt = p.flags & 255u;
    // Values: dimensions 4 lane + 128 cc, rows g0.. g0 + VRS - 1.
    const uint VRS = BR / 8u, CH = (p.Dv + 127u) / 128u, lane = t % 32u, g0 = (t / 32u) * VRS;
    vec4 acc[4] = vec4[4](vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));  // [row * CH + cc]
    float l[4] = float[4](0.0, 0.0, 0.0, 0.0);

    for (uint j0 = key0; j0 < key_end; j0 += BC) {
        barrier();  // the queries are in; the last step's weights are read
        const uint j = j0 + c;
        float sc[8];
        bool live = false;
        [[unroll]] for (uint r = 0u; r < 8u; ++r) {  // the mask read for every row, clamped
            const float mv = attn_mask(min(v0 + r0 + r, VR - 1u) / G, min(j, key_end - 1u));
            sc[r] = r < SR && j < key_end && v0 + r0 + r < VR ? mv : neg_inf;
            live = live || !(isinf(sc[r]) && sc[r] < 0.0);
        }
        if (live) {
            const uint kr = kb + j * p.k_nb1;
            float d[8] = float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
            if (kt == T_F16 && ((kr | 2u * p.D) & 15u) == 0u) {  // 8 halves a load
                for (uint e = 0u; e < p.D; e += 8u) {
                    const uvec4 w = k4[(kr >> 4) + e / 8u];
                    const vec4 a = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
                    const vec4 b = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
                    [[unroll]] for (uint r = 0u; r < 8u; ++r)
                        if (r < SR) d[r] += dot(qs[(r0 + r) * D4 + e / 4u], a) + dot(qs[(r0 + r) * D4 + e / 4u + 1u], b);
                }
            } else {
                for (uint e = 0u; e < p.D; e += 4u) {
                    const vec4 a = key4(kt, kr, e);
                    [[unroll]] for (uint r = 0u; r < 8u; ++r)
                        if (r < SR) d[r] += dot(qs[(r0 + r) * D4 + e / 4u], a);
                }
            }
            [[unroll]] for (uint r = 0u; r < 8u; ++r)
                if (r < SR && !(isinf(sc[r]) && sc[r] < 0.0)) sc[r] = attn_score(d[r], sc[r]);
        }
        [[unroll]] for (uint r = 0u; r < 8u; ++r)
            if (r < SR) ps[(r0 + r) * LD + c] = sc[r];
        barrier();
        if (t < 8u * BR) {  // eight invocations a row: the maximum of 8 keys each
            const uint at = (t / 8u) * LD + 8u * (t % 8u);
            float top = ps[at];
            [[unroll]] for (uint u = 1u; u < 8u; ++u) top = max(top, ps[at + u]);
            pm[t] = top;
        }
        barrier();
        if (t < BR) {  // the row's new maximum and the factor for what it holds
            float top = pm[8u * t];
            [[unroll]] for (uint u = 1u; u < 8u; ++u) top = max(top, pm[8u * t + u]);
            const float m_old = rmax[t], m_new = max(m_old, top);
            rcorr[t] = isinf(m_new) ? 1.0 : exp(m_old - m_new);
            rmax[t] = m_new;
        }
        barrier();
        [[unroll]] for (uint r = 0u; r < 8u; ++r)
            if (r < SR) ps[(r0 + r) * LD + c] = isinf(sc[r]) ? 0.0 : exp(sc[r] - rmax[r0 + r]);
        barrier();
        const uint keys = min(BC, key_end - j0);
        [[unroll]] for (uint r = 0u; r < 4u; ++r) {
            if (r >= VRS) break;
            const float f = rcorr[g0 + r];
            l[r] *= f;
            [[unroll]] for (uint cc = 0u; cc < 2u; ++cc)
                if (cc < CH) acc[r * CH + cc] *= f;
        }
        for (uint u = 0u; u < keys; ++u) {
            float w[4];
            bool any = false;
            [[unroll]] for (uint r = 0u; r < 4u; ++r) {
                w[r] = r < VRS ? ps[(g0 + r) * LD + u] : 0.0;
                l[r] += w[r];
                any = any || w[r] != 0.0;
            }
            if (!any) continue;
            const uint vr = vb + (j0 + u) * p.v_nb1;
            [[unroll]] for (uint cc = 0u; cc < 2u; ++cc) {
                const uint e = 4u * lane + 128u * cc;
                if (cc < CH && e < p.Dv) {
                    const vec4 x = value4(vr, e);
                    [[unroll]] for (uint r = 0u; r < 4u; ++r)
                        if (r < VRS) acc[r * CH + cc] += w[r] * x;
                }
            }
        }
    }

    // The rows' results: normalized (mode 0), or this range's maximum, sum and values.
    [[unroll]] for (uint r = 0u; r < 4u; ++r) {
        const uint vr = v0 + g0 + r;
        if (r >= VRS || vr >= VR) break;
        const uint i = vr / G, h = hk * G + vr % G;
        uint at;
        float f = 1.0;
        if (p.mode == 1u) {
            at = (p.o_off >> 2) + (((s * p.n_q + i) * p.H + h) * ranges + range) * (p.Dv + 2u);
            if (lane == 0u) {
                o[at] = floatBitsToUint(rmax[g0 + r]);
                o[at + 1u] = floatBitsToUint(l[r]);
            }
            at += 2u;
        } else {
            at = (p.o_off + h * p.o_nb1 + i * p.o_nb2 + s * p.o_nb2 * p.n_q) >> 2;
            f = l[r] > 0.0 ? 1.0 / l[r] : 0.0;
        }
        [[unroll]] for (uint cc = 0u; cc < 2u; ++cc) {
            const uint e = 4u * lane + 128u * cc;
            if (cc < CH && e < p.Dv) {
                const vec4 x = acc[r * CH + cc] * f;
                o[at + e] = floatBitsToUint(x.x);
                o[at + e + 1u] = floatBitsToUint(x.y);
                o[at + e + 2u] = floatBitsToUint(x.z);
                o[at + e + 3u] = floatBitsToUint(x.w);
            }
        }
    }
}
