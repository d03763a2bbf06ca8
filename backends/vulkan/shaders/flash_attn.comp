#version 450
// Flash attention: a workgroup per (query row, head, sequence), or per (query row, up to GMAX
// heads of one KV head, sequence). Its 256 invocations take 256 keys a step, one each: the
// invocation reads its key and computes the heads' scores, and eight groups of 32 keep an
// online softmax per head over their 32 keys of each step (their own running maximum and
// sum), each lane accumulating the weighted values of 4 of each head's dimensions (every 128th
// group of 4), so a group's lanes read a value row together, once for the heads. The groups'
// results are merged at the end, a head at a time.
// Keys the mask hides (-inf) get no weight. K and V rows are F32, F16 or Q8_0; heads of q
// share K/V heads in groups (GQA). Head sizes are multiples of 4 (of 32 for Q8_0), at most 256.
// Decoding over many keys splits them (mode 1): a workgroup per (row, range of keys) writes
// its maximum, sum and unnormalized values to a scratch buffer (bound as o), and mode 2 merges
// each row's ranges (the scratch bound as q) into the output; or (flags bit 19) the last of a
// row's workgroups to finish merges them into the output (bound at 6), in the same dispatch:
// each counts itself in on a counter per row in the scratch's first ATTN_COUNTER_BYTES, and
// the last sets it back to zero for the next. Where a decoding product on
// integer dot products takes the output (flags bit 18), the workgroup that writes a row's
// head also writes its int8 blocks (quant_act.comp's layout: the output seen as rows of
// H * Dv elements, quants from qa_off, block scales from qd_off).
// AHEAD 1 (a specialization constant; F16 rows, heads of at most 128 elements, key rows
// 16-byte aligned, value rows 8): every load of a step is issued before the first use, so a
// step costs one memory latency, not several: an invocation's key row, each lane's four
// elements of its group's 32 value rows, the mask and (first) the queries. Its loads past the
// head's D or the keys' end are skipped, not clamped and read anyway: clamped, the H100 lost
// (TinyLlama Q4_0 tg128 745 t/s against 752 / 773; 8B Q4_0 pp512 at a depth of 4096 without
// cooperative matrices 1092 against 1328), short heads reading the last vector again.
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"
#define QUANT_LANES 256u
#include "quant_block.glsl"
layout(local_size_x = 256) in;
layout(binding = 0) coherent buffer O { uint o[]; };  // coherent: a row's last range reads the others'

layout(binding = 1) readonly buffer Q { uint q[]; };
layout(binding = 2) readonly buffer K { uint k[]; };
layout(binding = 2) readonly buffer K4 { uvec4 k4[]; };  // the same keys, 16 bytes at a time
layout(binding = 3) readonly buffer V { uint v[]; };
layout(binding = 3) readonly buffer V2 { uvec2 v2[]; };  // the same values, 8 bytes at a time
layout(binding = 4) readonly buffer M { uint m[]; };
layout(binding = 5) writeonly buffer QA { uint qa[]; };
layout(binding = 5) writeonly buffer QD { vec2 qd[]; };
layout(binding = 6) writeonly buffer Out { uint out_[]; };
const uint ATTN_COUNTER_BYTES = 16384u;  // vulkan_ops.cpp's kAttnCounterBytes
#include "attn.glsl"

const uint GROUPS = 8u, STEP = 256u;
// The query heads a workgroup takes (heads of one KV head): 1, or up to 4 for prompts (and
// decoding over many keys without AHEAD), whose keys and values are then read once for them
// all (a specialization constant).
layout(constant_id = 0) const uint GMAX = 1u;
layout(constant_id = 1) const uint AHEAD = 0u;
shared vec4 qs[GMAX][64];      // the query rows, four elements an entry
shared float sc[GMAX][STEP];    // this step's scores, then their weights
shared float gm[GROUPS], gl[GROUPS];
shared float merged[GROUPS][256];
shared bool last_range;

// Dot products of the queries (the first nh of GMAX) with key row kr, four elements a
// shared-memory read.
void key_dots(uint kr, uint nh, out float d[GMAX]) {
    const uint t = p.flags & 255u;
    [[unroll]] for (uint g = 0u; g < GMAX; ++g) d[g] = 0.0;
    if (t == T_F16 && ((kr | 2u * p.D) & 63u) == 0u) {  // 8 halves a load, four loads issued together
        for (uint e = 0u; e < p.D; e += 32u) {
            uvec4 w[4];
            [[unroll]] for (uint b = 0u; b < 4u; ++b) w[b] = k4[(kr >> 4) + e / 8u + b];
            [[unroll]] for (uint b = 0u; b < 4u; ++b) {
                const vec4 lo = vec4(unpackHalf2x16(w[b].x), unpackHalf2x16(w[b].y));
                const vec4 hi = vec4(unpackHalf2x16(w[b].z), unpackHalf2x16(w[b].w));
                const uint x = (e + 8u * b) / 4u;
                [[unroll]] for (uint g = 0u; g < GMAX; ++g)
                    if (g < nh) d[g] += dot(qs[g][x], lo) + dot(qs[g][x + 1u], hi);
            }
        }
    } else if (t == T_F16 && ((kr | 2u * p.D) & 15u) == 0u) {  // 8 halves a load
        for (uint e = 0u; e < p.D; e += 8u) {
            const uvec4 w = k4[(kr >> 4) + e / 8u];
            const vec4 lo = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
            const vec4 hi = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
            [[unroll]] for (uint g = 0u; g < GMAX; ++g)
                if (g < nh) d[g] += dot(qs[g][e / 4u], lo) + dot(qs[g][e / 4u + 1u], hi);
        }
    } else if (t == T_Q8_0) {  // the block's scale read once
        for (uint e = 0u; e < p.D; e += 32u) {
            const uint b = kr + 34u * (e / 32u);
            float sum[GMAX];
            [[unroll]] for (uint g = 0u; g < GMAX; ++g) sum[g] = 0.0;
            [[unroll]] for (uint u = 0u; u < 32u; u += 4u) {
                const uint w = U32(k, b + 2u + u);
                const vec4 v = vec4(int(w << 24) >> 24, int(w << 16) >> 24, int(w << 8) >> 24, int(w) >> 24);
                [[unroll]] for (uint g = 0u; g < GMAX; ++g)
                    if (g < nh) sum[g] += dot(qs[g][(e + u) / 4u], v);
            }
            const float scale = F16(k, b);
            [[unroll]] for (uint g = 0u; g < GMAX; ++g) d[g] += scale * sum[g];
        }
    } else {
        for (uint e = 0u; e < p.D; e += 4u) {
            const vec4 a = key4(t, kr, e);
            [[unroll]] for (uint g = 0u; g < GMAX; ++g)
                if (g < nh) d[g] += dot(qs[g][e / 4u], a);
        }
    }
}

// The int8 copy of the head's output row just written at byte orow (Dv a multiple of 32, the
// output contiguous from byte o_off of its binding), which its writers left in merged[0] too:
// four elements an invocation. Every invocation calls it.
void quantize_out(uint orow, uint o_off) {
    if ((p.flags & 0x40000u) == 0u) return;  // uniform
    const uint e = 4u * gl_LocalInvocationID.x;
    barrier();  // the row is in merged[0]
    const vec4 x = e < p.Dv ? vec4(merged[0][e], merged[0][e + 1u], merged[0][e + 2u], merged[0][e + 3u]) : vec4(0.0);
    vec2 ds;
    const uint qv = quantize4(x, ds);
    if (e < p.Dv) {
        const uint f = (orow - o_off) / 4u + e;  // the element's place in the rows of H * Dv
        qa[(p.qa_off >> 2) + f / 4u] = qv;
        if ((gl_LocalInvocationID.x & 7u) == 0u) qd[p.qd_off / 8u + f / 32u] = ds;
    }
}

// Word i of the ranges' results: in the scratch bound as q (mode 2), or as o (merged by the
// last range, in_place).
float part(bool in_place, uint i) { return uintBitsToFloat(in_place ? o[i] : q[i]); }

// Row r's ranges, each (maximum, sum, Dv values), rescaled to their common maximum, into the
// output: mode 2's, or (in_place) by the row's last range. Every invocation calls it.
void merge(uint r, bool in_place) {
    const uint t = gl_LocalInvocationID.x, n = (p.n_kv + p.split - 1u) / p.split, stride = p.Dv + 2u;
    const uint base = ((in_place ? p.o_off : p.q_off) >> 2) + r * n * stride;
    const uint h = r % p.H, i = (r / p.H) % p.n_q, s = r / (p.H * p.n_q);
    const uint o_off = in_place ? p.out_off : p.o_off;
    const uint orow = o_off + h * p.o_nb1 + i * p.o_nb2 + s * p.o_nb2 * p.n_q;
    float top = -1.0 / 0.0;
    for (uint c = 0u; c < n; ++c) top = max(top, part(in_place, base + c * stride));
    for (uint e = t; e < p.Dv; e += 256u) {
        float total = 0.0, sum = 0.0;
        for (uint c = 0u; c < n; ++c) {
            const float mc = part(in_place, base + c * stride);
            if (isinf(mc)) continue;
            const float f = exp(mc - top);
            total += part(in_place, base + c * stride + 1u) * f;
            sum += part(in_place, base + c * stride + 2u + e) * f;
        }
        const float y = total > 0.0 ? sum / total : 0.0;
        if (in_place)
            out_[(orow >> 2) + e] = floatBitsToUint(y);
        else
            o[(orow >> 2) + e] = floatBitsToUint(y);
        merged[0][e] = y;  // for quantize_out
    }
    quantize_out(orow, o_off);
}

// The workgroup's head h (query row i, sequence s), its groups' maxima, sums and values
// (this lane's elements 4 lane and 4 lane + 128) merged, each rescaled to their common
// maximum: in mode 1 the range's maximum, sum and unnormalized values, else the output row
// (and its int8 copy). Every invocation calls it.
void finish_head(uint h, uint i, uint s, uint range, uint ranges, float mx, float l, vec4 acc0, vec4 acc1) {
    const uint t = gl_LocalInvocationID.x, lane = t % 32u, grp = t / 32u;
    const uint r = h + p.H * (i + p.n_q * s);
    barrier();  // the last head's merge is read
    if (lane == 0u) {
        gm[grp] = mx;
        gl[grp] = l;
    }
    barrier();
    float top = -1.0 / 0.0;
    for (uint x = 0u; x < GROUPS; ++x) top = max(top, gm[x]);
    float total = 0.0;
    for (uint x = 0u; x < GROUPS; ++x) total += isinf(gm[x]) ? 0.0 : gl[x] * exp(gm[x] - top);
    const float f = isinf(mx) ? 0.0 : exp(mx - top);
    [[unroll]] for (uint cc = 0u; cc < 2u; ++cc) {
        const uint e = 4u * lane + 128u * cc;
        const vec4 a = (cc == 0u ? acc0 : acc1) * f;
        if (e < p.Dv) {
            merged[grp][e] = a.x;
            merged[grp][e + 1u] = a.y;
            merged[grp][e + 2u] = a.z;
            merged[grp][e + 3u] = a.w;
        }
    }
    barrier();
    float sum = 0.0;
    if (t < p.Dv)
        for (uint x = 0u; x < GROUPS; ++x) sum += merged[x][t];
    if (p.mode == 1u) {  // uniform
        const uint at = (p.o_off >> 2) + (r * ranges + range) * (p.Dv + 2u);
        if (t == 0u) {
            o[at] = floatBitsToUint(top);
            o[at + 1u] = floatBitsToUint(total);
        }
        if (t < p.Dv) o[at + 2u + t] = floatBitsToUint(sum);
        if ((p.flags & 0x80000u) == 0u) return;  // uniform: mode 2 merges
        // This range's results visible to the row's other workgroups, then counted in; the
        // last one merges (its counter back to zero for the next dispatch).
        memoryBarrierBuffer();
        barrier();
        if (t == 0u) {
            const uint counter = ((p.o_off - ATTN_COUNTER_BYTES) >> 2) + r;
            last_range = atomicAdd(o[counter], 1u) == ranges - 1u;
            if (last_range) o[counter] = 0u;
        }
        barrier();
        if (last_range) {  // uniform
            memoryBarrierBuffer();
            merge(r, true);
        }
        return;
    }
    const uint orow = p.o_off + h * p.o_nb1 + i * p.o_nb2 + s * p.o_nb2 * p.n_q;
    if (t < p.Dv) {
        sum *= total > 0.0 ? 1.0 / total : 0.0;
        o[(orow >> 2) + t] = floatBitsToUint(sum);
        merged[0][t] = sum;  // for quantize_out: column t is this invocation's alone
    }
    quantize_out(orow, p.o_off);
}

// AHEAD 1: the rows of workgroup w's heads h0 .. h0 + nh - 1 (query row i, sequence s) over
// keys key0 .. key_end - 1, a step's loads all issued before the first use.
void rows_ahead(uint h0, uint nh, uint hk, uint i, uint s, uint range, uint ranges, uint key0, uint key_end) {
    const uint t = gl_LocalInvocationID.x, lane = t % 32u, grp = t / 32u, e = 4u * lane;
    const uint kb = p.k_off + hk * p.k_nb2 + s * p.k_nb3, vb = p.v_off + hk * p.v_nb2 + s * p.v_nb3;
    const float neg_inf = -1.0 / 0.0;
    vec4 qv[GMAX];
    [[unroll]] for (uint g = 0u; g < GMAX; ++g) {
        const uint qr = p.q_off + i * p.q_nb1 + (h0 + g) * p.q_nb2 + s * p.q_nb3 + 16u * t;
        qv[g] = g < nh && 4u * t < p.D ? vec4(F32(q, qr), F32(q, qr + 4u), F32(q, qr + 8u), F32(q, qr + 12u))
                                       : vec4(0.0);
    }
    float mx[GMAX], l[GMAX];
    vec4 acc[GMAX];
    [[unroll]] for (uint g = 0u; g < GMAX; ++g) {
        mx[g] = neg_inf;
        l[g] = 0.0;
        acc[g] = vec4(0.0);
    }
    for (uint j0 = key0; j0 < key_end; j0 += STEP) {
        const uint j = j0 + t;
        const bool has_key = j < key_end;
        uvec4 kw[16];  // key j, 8 halves an entry
        [[unroll]] for (uint b = 0u; b < 16u; ++b)
            kw[b] = has_key && 8u * b < p.D ? k4[((kb + j * p.k_nb1) >> 4) + b] : uvec4(0u);
        uvec2 vw[32];  // elements e..e+3 of the group's value rows
        [[unroll]] for (uint u = 0u; u < 32u; ++u) {
            const uint jv = j0 + 32u * grp + u;
            vw[u] = jv < key_end && e < p.Dv ? v2[((vb + jv * p.v_nb1) >> 3) + lane] : uvec2(0u);
        }
        const float mv = attn_mask(i, min(j, key_end - 1u));  // unused past the range
        if (j0 == key0)
            [[unroll]] for (uint g = 0u; g < GMAX; ++g)
                if (4u * t < p.D) qs[g][t] = qv[g];
        barrier();  // the queries are in; the last step's weights are read
        float score[GMAX];
        [[unroll]] for (uint g = 0u; g < GMAX; ++g) {
            score[g] = neg_inf;
            if (g < nh && has_key && !(isinf(mv) && mv < 0.0)) {
                float d = 0.0;
                [[unroll]] for (uint b = 0u; b < 16u; ++b)
                    if (8u * b < p.D)
                        d += dot(qs[g][2u * b], vec4(unpackHalf2x16(kw[b].x), unpackHalf2x16(kw[b].y))) +
                             dot(qs[g][2u * b + 1u], vec4(unpackHalf2x16(kw[b].z), unpackHalf2x16(kw[b].w)));
                score[g] = attn_score(d, mv);
            }
            sc[g][t] = score[g];
        }
        barrier();
        // Each head's maximum over the group's 32 keys of the step, and each key's weight.
        float c[GMAX], wt[GMAX];
        [[unroll]] for (uint g = 0u; g < GMAX; ++g) {
            float tile = neg_inf;
            [[unroll]] for (uint u = 0u; u < 32u; ++u) tile = max(tile, sc[g][32u * grp + u]);
            const float m_new = max(mx[g], tile);
            c[g] = isinf(m_new) ? 1.0 : exp(mx[g] - m_new);
            wt[g] = isinf(score[g]) ? 0.0 : exp(score[g] - m_new);
            mx[g] = m_new;
        }
        barrier();  // every lane has read the scores
        [[unroll]] for (uint g = 0u; g < GMAX; ++g) sc[g][t] = wt[g];
        barrier();
        // A zero weight (a masked key, or none) adds nothing, whatever its row holds.
        [[unroll]] for (uint g = 0u; g < GMAX; ++g) {
            float wsum = 0.0;
            vec4 a = vec4(0.0);
            [[unroll]] for (uint u = 0u; u < 32u; ++u) {
                const float wu = sc[g][32u * grp + u];
                wsum += wu;
                a += wu != 0.0 ? wu * vec4(unpackHalf2x16(vw[u].x), unpackHalf2x16(vw[u].y)) : vec4(0.0);
            }
            acc[g] = acc[g] * c[g] + a;
            l[g] = l[g] * c[g] + wsum;
        }
    }
    [[unroll]] for (uint g = 0u; g < GMAX; ++g) {
        if (g >= nh) break;  // uniform
        finish_head(h0 + g, i, s, range, ranges, mx[g], l[g], acc[g], vec4(0.0));
    }
}

void main() {
    const uint t = gl_LocalInvocationID.x;
    const uint ranges = p.mode == 1u ? (p.n_kv + p.split - 1u) / p.split : 1u;
    if (p.mode == 2u) {
        const uint r = group_id();
        if (r < p.n_q * p.H * p.S) merge(r, false);  // uniform over the workgroup
        return;
    }
    // Workgroup w: head group hg of KV head hk (heads h0 .. h0 + nh - 1), query row i,
    // sequence s; with GMAX 1, w is the head row h + H (i + n_q s).
    const uint G = p.H / p.H_kv, ngr = (G + GMAX - 1u) / GMAX;
    const uint w = group_id() / ranges, range = group_id() % ranges;
    if (w >= ngr * p.H_kv * p.n_q * p.S) return;  // uniform
    const uint hg = w % ngr, hk = (w / ngr) % p.H_kv, i = (w / (ngr * p.H_kv)) % p.n_q;
    const uint s = w / (ngr * p.H_kv * p.n_q);
    const uint h0 = hk * G + hg * GMAX, nh = min(GMAX, G - hg * GMAX);
    const uint key0 = range * p.split, key_end = p.mode == 1u ? min(p.n_kv, key0 + p.split) : p.n_kv;
    if (AHEAD == 1u) {
        rows_ahead(h0, nh, hk, i, s, range, ranges, key0, key_end);
        return;
    }
    const uint lane = t % 32u, grp = t / 32u;
    const uint kb = p.k_off + hk * p.k_nb2 + s * p.k_nb3, vb = p.v_off + hk * p.v_nb2 + s * p.v_nb3;
    const float neg_inf = -1.0 / 0.0;
    [[unroll]] for (uint g = 0u; g < GMAX; ++g)
        if (g < nh && 4u * t < p.D) {
            const uint qr = p.q_off + i * p.q_nb1 + (h0 + g) * p.q_nb2 + s * p.q_nb3 + 16u * t;
            qs[g][t] = vec4(F32(q, qr), F32(q, qr + 4u), F32(q, qr + 8u), F32(q, qr + 12u));
        }
    // Per head: this group's running maximum and sum; this lane's dimensions 4 lane + 128 c.
    float mx[GMAX], l[GMAX];
    vec4 acc[GMAX][2];
    [[unroll]] for (uint g = 0u; g < GMAX; ++g) {
        mx[g] = neg_inf;
        l[g] = 0.0;
        acc[g][0] = vec4(0.0);
        acc[g][1] = vec4(0.0);
    }
    for (uint j0 = key0; j0 < key_end; j0 += STEP) {
        barrier();  // the queries are in; the last step's weights are read
        const uint j = j0 + t;
        float score[GMAX];
        [[unroll]] for (uint g = 0u; g < GMAX; ++g) score[g] = neg_inf;
        if (j < key_end) {
            const float mv = attn_mask(i, j);
            if (!(isinf(mv) && mv < 0.0)) {
                float d[GMAX];
                key_dots(kb + j * p.k_nb1, nh, d);
                [[unroll]] for (uint g = 0u; g < GMAX; ++g)
                    if (g < nh) score[g] = attn_score(d[g], mv);
            }
        }
        [[unroll]] for (uint g = 0u; g < GMAX; ++g)
            if (g < nh) sc[g][t] = score[g];
        barrier();
        // Each head's maximum over the group's 32 keys of the step, and each key's weight.
        float c[GMAX], wt[GMAX];
        [[unroll]] for (uint g = 0u; g < GMAX; ++g) {
            c[g] = 1.0;
            wt[g] = 0.0;
            if (g < nh) {
                float tile = neg_inf;
                for (uint u = 0u; u < 32u; ++u) tile = max(tile, sc[g][32u * grp + u]);
                const float m_new = max(mx[g], tile);
                c[g] = isinf(m_new) ? 1.0 : exp(mx[g] - m_new);
                wt[g] = isinf(score[g]) ? 0.0 : exp(score[g] - m_new);
                mx[g] = m_new;
            }
        }
        barrier();  // every lane has read the scores
        [[unroll]] for (uint g = 0u; g < GMAX; ++g)
            if (g < nh) sc[g][t] = wt[g];
        barrier();
        const uint keys = min(32u, key_end - min(key_end, j0 + 32u * grp));
        [[unroll]] for (uint g = 0u; g < GMAX; ++g) {
            if (g >= nh) break;
            float wsum = 0.0;
            for (uint u = 0u; u < keys; ++u) wsum += sc[g][32u * grp + u];
            acc[g][0] *= c[g];
            acc[g][1] *= c[g];
            l[g] = l[g] * c[g] + wsum;
        }
        // Eight value rows a batch, their loads issued before the sums that take them, each
        // read once for the heads; a zero weight (a masked key) adds nothing, whatever its
        // row holds.
        for (uint u0 = 0u; u0 < keys; u0 += 8u) {
            const uint nu = min(8u, keys - u0), vr = vb + (j0 + 32u * grp + u0) * p.v_nb1;
            [[unroll]] for (uint cc = 0u; cc < 2u; ++cc) {
                const uint e = 4u * lane + 128u * cc;
                if (e >= p.Dv) continue;
                vec4 val[8];
                [[unroll]] for (uint u = 0u; u < 8u; ++u) val[u] = u < nu ? value4(vr + u * p.v_nb1, e) : vec4(0.0);
                [[unroll]] for (uint g = 0u; g < GMAX; ++g) {
                    if (g >= nh) break;
                    [[unroll]] for (uint u = 0u; u < 8u; ++u) {
                        const float wu = u < nu ? sc[g][32u * grp + u0 + u] : 0.0;
                        acc[g][cc] += wu != 0.0 ? wu * val[u] : vec4(0.0);
                    }
                }
            }
        }
    }
    [[unroll]] for (uint g = 0u; g < GMAX; ++g) {
        if (g >= nh) break;  // uniform
        finish_head(h0 + g, i, s, range, ranges, mx[g], l[g], acc[g][0], acc[g][1]);
    }
}
