#version 450
// Flash attention for prompts on cooperative matrices (16x16x16 f16 x f16 -> f32 at subgroup
// scope, as mul_mat_cm.comp): a workgroup takes BR = 32 query rows that share a KV head (query
// positions times the heads of a GQA group, "virtual rows" v = position * G + head in group,
// as flash_attn_tile.comp) and walks the keys BC = 64 at a time. Heads of at most 128
// elements, multiples of 16; F16 or Q8_0 rows (an F32 cache stays on the exact f32 shaders).
// A step:
//   keys:    the step's key rows into shared memory as f16 (zeros past the range), a row a
//            key as the values' rows (the scores' B matrix, loaded column-major);
//   scores:  the subgroups multiply the queries (f16, in shared memory since the start) by
//            the keys, 16 x 16 scores a matrix, into shared memory as f32;
//   weights: eight invocations a row scale, soft-cap and mask 8 scores each, take the row's
//            maximum and the factor that rescales what the row holds, and write the weights
//            as f16 (the row's sum adds the same rounded weights), while the step's value rows
//            replace the keys in shared memory;
//   values:  the subgroups multiply the weights by the values into shared memory, and each
//            invocation adds its 16 of the row's output elements (held in registers) to them.
// Keys hidden from every row of the workgroup (a causal mask's future, a window's past) are
// found first and their steps skipped. Mode 1 takes a range of the keys (split) and writes
// its maximum, sum and unnormalized values where flash_attn.comp's mode 2 merges them.
#extension GL_GOOGLE_include_directive : enable
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
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
const uint LDQ = DMAX / 8u + 1u;  // rows of queries: 8 halves a 16-byte vector, padded by one
const uint LDV = DMAX + 8u;       // rows of keys or values (halves)
const uint LDS = BC + 4u;         // rows of scores (f32)
const uint LDO = DMAX + 4u;       // rows of a step's products of weights and values (f32)
const uint LDP = BC / 4u + 2u;    // rows of weights (f16 vectors of 4)
const uint RED = BR * LDS;        // after the scores in fsh: the rows' partial maxima and sums
// vulkan_device.h's kAttnCmShared: 8704 + 17408 + 16896 + 4608 + 8 bytes. The queries are
// kept as 16-byte vectors: loaded as the A operand from a float16_t array (the same offsets
// and stride in halves), the scores came out wrong on NVIDIA's driver (580, H100: 12 of the
// 38 flash_attn op cases failed, with errors of 0.13 to 246).
shared uvec4 qsh[BR * LDQ];
shared float16_t kvh[BC * LDV];  // keys [key][dim], then values [key][dim]
shared float fsh[BR * LDO];     // the scores [row][LDS] and partial maxima (RED), then the products [row][LDO]
shared f16vec4 psh[BR * LDP];   // the weights
shared uint live_lo, live_hi;   // the keys some row sees: [live_lo, live_hi)

#include "attn_blocks.glsl"

// Halves at .. at + 7 of the keys or values from 8 packed in w.
void put8(uint at, uvec4 w) {
    [[unroll]] for (uint i = 0u; i < 4u; ++i) {
        const f16vec2 h = unpackFloat2x16(w[i]);
        kvh[at + 2u * i] = h.x;
        kvh[at + 2u * i + 1u] = h.y;
    }
}

void main() {
    const uint t = gl_LocalInvocationID.x, sg = gl_SubgroupID, nsg = gl_NumSubgroups;
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
    const uint first = live.x, last = live.y;

    // Invocation t: row r of the tile, its keys 8 part .. 8 part + 7 of a step and its
    // output elements 4 part + 32 i .. + 3.
    const uint r = t / 8u, part = t % 8u, vr = v0 + r, pos = vr / G;
    const bool row_live = vr < VR;
    float m_run = neg_inf, l_part = 0.0;
    vec4 acc[4] = vec4[4](vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));

    for (uint j0 = first; j0 < last; j0 += BC) {
        barrier();  // the last step's values, weights and products are read
        for (uint x = t; x < BC * D8; x += WG) {
            const uint c = x / D8, e = 8u * (x % D8), j = j0 + c;
            const uvec4 w = key8(kt, kb + min(j, key_end - 1u) * p.k_nb1, e, k_wide);
            put8(c * LDV + e, j < key_end ? w : uvec4(0u));
        }
        barrier();
        for (uint i = sg; i < (BR / 16u) * (BC / 16u); i += nsg) {
            const uint ti = i / (BC / 16u), tj = i % (BC / 16u);
            coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> sc =
                coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0);
            for (uint kk = 0u; kk < p.D / 16u; ++kk) {
                coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> ma;
                coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> mb;
                coopMatLoad(ma, qsh, 16u * ti * LDQ + 2u * kk, LDQ, gl_CooperativeMatrixLayoutRowMajor);
                coopMatLoad(mb, kvh, 16u * tj * LDV + 16u * kk, LDV, gl_CooperativeMatrixLayoutColumnMajor);
                sc = coopMatMulAdd(ma, mb, sc);
            }
            coopMatStore(sc, fsh, 16u * ti * LDS + 16u * tj, LDS, gl_CooperativeMatrixLayoutRowMajor);
        }
        barrier();
        for (uint x = t; x < BC * Dv8; x += WG) {  // the keys are read: the values in their place
            const uint c = x / Dv8, e = 8u * (x % Dv8), j = j0 + c;
            const uvec4 w = value8(vt, vb + min(j, key_end - 1u) * p.v_nb1, e, v_wide);
            put8(c * LDV + e, j < key_end ? w : uvec4(0u));
        }
        float x[8];
        float top = neg_inf;
        [[unroll]] for (uint u = 0u; u < 8u; ++u) {
            const uint c = 8u * part + u, j = j0 + c;
            // Read for every key, clamped (a read behind the bounds check waited for the
            // one before it); with keys untransposed too, 8B Q4_0 pp512 at depth 4096 went
            // from 3321 to 3535 t/s on the H100.
            const float mv = attn_mask(min(pos, p.n_q - 1u), min(j, key_end - 1u));
            const float sc = attn_score(fsh[r * LDS + c], mv);
            x[u] = row_live && j < key_end && !hidden(mv) ? sc : neg_inf;
            top = max(top, x[u]);
        }
        fsh[RED + t] = top;
        barrier();
        [[unroll]] for (uint u = 0u; u < 8u; ++u) top = max(top, fsh[RED + 8u * r + u]);
        const float m_new = max(m_run, top);
        const float corr = isinf(m_new) ? 1.0 : exp(m_run - m_new);
        m_run = m_new;
        float16_t w[8];
        float sum = 0.0;
        [[unroll]] for (uint u = 0u; u < 8u; ++u) {
            w[u] = float16_t(isinf(x[u]) ? 0.0 : exp(x[u] - m_new));
            sum += float(w[u]);
        }
        psh[r * LDP + 2u * part] = f16vec4(w[0], w[1], w[2], w[3]);
        psh[r * LDP + 2u * part + 1u] = f16vec4(w[4], w[5], w[6], w[7]);
        l_part = l_part * corr + sum;
        [[unroll]] for (uint i = 0u; i < 4u; ++i) acc[i] *= corr;
        barrier();
        for (uint i = sg; i < (BR / 16u) * (p.Dv / 16u); i += nsg) {
            const uint ti = i / (p.Dv / 16u), tj = i % (p.Dv / 16u);
            coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> pv =
                coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0);
            [[unroll]] for (uint kk = 0u; kk < BC / 16u; ++kk) {
                coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> ma;
                coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> mb;
                coopMatLoad(ma, psh, 16u * ti * LDP + 4u * kk, LDP, gl_CooperativeMatrixLayoutRowMajor);
                coopMatLoad(mb, kvh, 16u * kk * LDV + 16u * tj, LDV, gl_CooperativeMatrixLayoutRowMajor);
                pv = coopMatMulAdd(ma, mb, pv);
            }
            coopMatStore(pv, fsh, 16u * ti * LDO + 16u * tj, LDO, gl_CooperativeMatrixLayoutRowMajor);
        }
        barrier();
        [[unroll]] for (uint i = 0u; i < 4u; ++i) {
            const uint c = 4u * part + 32u * i;
            if (c < p.Dv) acc[i] += vec4(fsh[r * LDO + c], fsh[r * LDO + c + 1u], fsh[r * LDO + c + 2u], fsh[r * LDO + c + 3u]);
        }
    }

    // The row's sum from its eight parts; its result: normalized (mode 0), or this range's
    // maximum, sum and values.
    barrier();
    fsh[RED + t] = l_part;
    barrier();
    float l = 0.0;
    [[unroll]] for (uint u = 0u; u < 8u; ++u) l += fsh[RED + 8u * r + u];
    if (!row_live) return;
    const uint i = vr / G, h = hk * G + vr % G;
    uint at;
    float f = 1.0;
    if (p.mode == 1u) {
        at = (p.o_off >> 2) + (((s * p.n_q + i) * p.H + h) * ranges + range) * (p.Dv + 2u);
        if (part == 0u) {
            o[at] = floatBitsToUint(m_run);
            o[at + 1u] = floatBitsToUint(l);
        }
        at += 2u;
    } else {
        at = (p.o_off + h * p.o_nb1 + i * p.o_nb2 + s * p.o_nb2 * p.n_q) >> 2;
        f = l > 0.0 ? 1.0 / l : 0.0;
    }
    [[unroll]] for (uint c4 = 0u; c4 < 4u; ++c4) {
        const uint c = 4u * part + 32u * c4;
        if (c < p.Dv) {
            const vec4 y = acc[c4] * f;
            o[at + c] = floatBitsToUint(y.x);
            o[at + c + 1u] = floatBitsToUint(y.y);
            o[at + c + 2u] = floatBitsToUint(y.z);
            o[at + c + 3u] = floatBitsToUint(y.w);
        }
    }
}
