#version 450
// Row-wise ops, one workgroup per row: RMS norm (times an optional weight row, with an int8
// copy where decoding products on integer dot products take it, and optionally of the sum of
// two rows that it writes too: a residual add fused in), layer norm, softmax (scaled, plus an
// optional F32/F16 mask row), argmax.
// Measured slower on an H100 (the fused add + RMS norm + int8 copy of the 8B shape's decoding,
// TESSERA_PROFILE=1): sums over subgroups and the int8 blocks' maxima and sums through subgroup
// shuffles instead of shared memory, with a row over a workgroup per 1024 elements each
// summing all its squares (10.0 -> 11.1 us; tg128 303 -> 296 t/s); a block of 32 elements an
// invocation (10.9 -> 20.4 us: uncoalesced loads); the 16-byte loads past the row clamped to
// its last elements and issued unconditionally, their values dropped, instead of skipped
// (TinyLlama Q4_0 tg128 728 / 726 t/s against 760 / 763, interleaved, a model file being
// written beside them).
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"
#define QUANT_LANES 256u
#include "quant_block.glsl"
layout(local_size_x = 256) in;
layout(binding = 0) buffer O { uint o[]; };
layout(binding = 1) buffer A { uint a[]; };  // written only by a fused add (flags 8)
layout(binding = 2) readonly buffer B { uint b[]; };  // norm weight or mask
// RMS norm's int8 copy (flags 4), as quant_act.comp writes it: the rows' quants from q_off
// (ne0 bytes a row), then their blocks' (d, d * sum) pairs.
layout(binding = 3) buffer QA { uint qa[]; };
layout(binding = 3) buffer QD { vec2 qd[]; };
// A fused add (flags 8): its operands, rows of ne0 F32 values x_nb1 and y_nb1 bytes apart.
// The RMS norm's input (binding 1) is their sum, written by the first pass and read back.
layout(binding = 4) readonly buffer X { uint xa[]; };
layout(binding = 5) readonly buffer Y { uint ya[]; };
// The same bindings 16 bytes at a time (the RMS norm with an int8 copy, where aligned: flags 16).
layout(binding = 0) buffer O4 { vec4 o4[]; };
layout(binding = 1) buffer A4 { vec4 a4[]; };
layout(binding = 2) readonly buffer B4 { vec4 b4[]; };
layout(binding = 4) readonly buffer X4 { vec4 xa4[]; };
layout(binding = 5) readonly buffer Y4 { vec4 ya4[]; };
struct Ten { uint off, ne0, ne1, ne2, ne3, nb0, nb1, nb2, nb3; };
layout(push_constant) uniform P {
    Ten to, ta;
    uint b_off, b_nb1;  // the norm's weight row or the softmax's mask rows
    uint x_off, x_nb1, y_off, y_nb1;
    uint op;
    float param;
    uint flags, q_off;
} p;
const uint RMS = 0u, NORM = 1u, SOFTMAX = 2u, ARGMAX = 3u;
shared float red[256];
shared uint redi[256];

float reduce_sum(float v) {
    const uint t = gl_LocalInvocationID.x;
    barrier();
    red[t] = v;
    barrier();
    [[unroll]] for (uint s = 128u; s > 0u; s >>= 1) {
        if (t < s) red[t] += red[t + s];
        barrier();
    }
    return red[0];
}

float reduce_max(float v) {
    const uint t = gl_LocalInvocationID.x;
    barrier();
    red[t] = v;
    barrier();
    [[unroll]] for (uint s = 128u; s > 0u; s >>= 1) {
        if (t < s) red[t] = max(red[t], red[t + s]);
        barrier();
    }
    return red[0];
}

uint row_at(Ten t, uint r) { return t.off + (r % t.ne1) * t.nb1 + ((r / t.ne1) % t.ne2) * t.nb2 + (r / (t.ne1 * t.ne2)) * t.nb3; }

void main() {
    const uint r = group_id(), t = gl_LocalInvocationID.x;
    const uint n = p.ta.ne0;
    if (r >= p.ta.ne1 * p.ta.ne2 * p.ta.ne3) return;
    const uint x = row_at(p.ta, r);
    if (p.op == ARGMAX) {
        float bv = -1.0 / 0.0;
        uint bi = 0xFFFFFFFFu;
        for (uint i = t; i < n; i += 256u) {
            const float v = F32(a, x + 4u * i);
            if (bi == 0xFFFFFFFFu || v > bv) bv = v, bi = i;
        }
        red[t] = bv;
        redi[t] = bi;
        barrier();
        for (uint s = 128u; s > 0u; s >>= 1) {
            if (t < s) {
                const uint oi = redi[t + s], mi = redi[t];
                const float ov = red[t + s];
                if (oi != 0xFFFFFFFFu && (mi == 0xFFFFFFFFu || ov > red[t] || (ov == red[t] && oi < mi)))
                    red[t] = ov, redi[t] = oi;
            }
            barrier();
        }
        if (t == 0u) o[(p.to.off >> 2) + r] = redi[0] == 0xFFFFFFFFu ? 0u : redi[0];
        return;
    }
    const uint y = row_at(p.to, r);
    if (p.op == RMS && (p.flags & 4u) != 0u && n <= 8192u) {
        // With the int8 copy (rows of at most 8192): four consecutive elements an invocation,
        // 1024 a step, as quantize4 takes them. Every load (the sum's operands or the row, and
        // the weight) is issued before the first is used, and the row stays in registers from
        // the sum of squares to the output: the dispatch waits on memory once.
        const bool fused = (p.flags & 8u) != 0u, weighted = (p.flags & 1u) != 0u;
        const uint xr = p.x_off + r * p.x_nb1, yr = p.y_off + r * p.y_nb1;
        // 16-byte loads and stores where every row starts at a multiple of 16 bytes (flags 16).
        const bool wide = (p.flags & 16u) != 0u && ((x | y | p.b_off | (fused ? xr | yr : 0u)) & 15u) == 0u;
        vec4 v[8], w[8];
        [[unroll]] for (uint k = 0u; k < 8u; ++k) {
            const uint e = 1024u * k + 4u * t;
            v[k] = vec4(0.0);
            w[k] = vec4(1.0);
            if (e < n && wide) {
                v[k] = fused ? xa4[(xr >> 4) + (e >> 2)] + ya4[(yr >> 4) + (e >> 2)] : a4[(x >> 4) + (e >> 2)];
                if (weighted) w[k] = b4[(p.b_off >> 4) + (e >> 2)];
            } else if (e < n) {
                if (fused)
                    v[k] = vec4(F32(xa, xr + 4u * e), F32(xa, xr + 4u * e + 4u), F32(xa, xr + 4u * e + 8u),
                                F32(xa, xr + 4u * e + 12u)) +
                           vec4(F32(ya, yr + 4u * e), F32(ya, yr + 4u * e + 4u), F32(ya, yr + 4u * e + 8u),
                                F32(ya, yr + 4u * e + 12u));
                else
                    v[k] = vec4(F32(a, x + 4u * e), F32(a, x + 4u * e + 4u), F32(a, x + 4u * e + 8u),
                                F32(a, x + 4u * e + 12u));
                if (weighted) {
                    const uint wb = p.b_off + 4u * e;
                    w[k] = vec4(F32(b, wb), F32(b, wb + 4u), F32(b, wb + 8u), F32(b, wb + 12u));
                }
            }
        }
        vec4 ss4 = vec4(0.0);
        [[unroll]] for (uint k = 0u; k < 8u; ++k) {
            const uint e = 1024u * k + 4u * t;
            if (fused && e < n && wide)
                a4[(x >> 4) + (e >> 2)] = v[k];
            else if (fused && e < n)
                [[unroll]] for (uint c = 0u; c < 4u; ++c) a[(x >> 2) + e + c] = floatBitsToUint(v[k][c]);
            ss4 += v[k] * v[k];
        }
        const float s = 1.0 / sqrt(reduce_sum((ss4.x + ss4.y) + (ss4.z + ss4.w)) / float(n) + p.param);
        const uint rows = p.ta.ne1 * p.ta.ne2 * p.ta.ne3;
        [[unroll]] for (uint k = 0u; k < 8u; ++k) {
            if (1024u * k >= n) break;  // uniform: quantize4 has barriers
            const uint e = 1024u * k + 4u * t;
            const bool live = e < n;  // n is a multiple of 32
            const vec4 u = live ? v[k] * s * w[k] : vec4(0.0);
            if (live && wide)
                o4[(y >> 4) + (e >> 2)] = u;
            else if (live)
                [[unroll]] for (uint c = 0u; c < 4u; ++c) o[(y >> 2) + e + c] = floatBitsToUint(u[c]);
            vec2 d;
            const uint q = quantize4(u, d);
            if (live) {
                qa[((p.q_off + r * n + e) >> 2)] = q;
                if ((t & 7u) == 0u) qd[(p.q_off + rows * n) / 8u + (r * n + e) / 32u] = d;
            }
        }
    } else if (p.op == RMS) {
        // Four elements per step, their loads issued together: one workgroup walks the row,
        // so a load's latency per step would otherwise be paid n / 256 times over.
        vec4 ss4 = vec4(0.0);
        uint i = t;
        if ((p.flags & 8u) != 0u) {  // the row is x + y: summed, written, and read back below
            const uint xr = p.x_off + r * p.x_nb1, yr = p.y_off + r * p.y_nb1;
            for (; i + 768u < n; i += 1024u) {
                const vec4 v = vec4(F32(xa, xr + 4u * i), F32(xa, xr + 4u * (i + 256u)),
                                    F32(xa, xr + 4u * (i + 512u)), F32(xa, xr + 4u * (i + 768u))) +
                               vec4(F32(ya, yr + 4u * i), F32(ya, yr + 4u * (i + 256u)),
                                    F32(ya, yr + 4u * (i + 512u)), F32(ya, yr + 4u * (i + 768u)));
                [[unroll]] for (uint k = 0u; k < 4u; ++k) a[(x >> 2) + i + 256u * k] = floatBitsToUint(v[k]);
                ss4 += v * v;
            }
            for (; i < n; i += 256u) {
                const float v = F32(xa, xr + 4u * i) + F32(ya, yr + 4u * i);
                a[(x >> 2) + i] = floatBitsToUint(v);
                ss4.x += v * v;
            }
            memoryBarrierBuffer();  // the sums visible to the workgroup after reduce_sum's barrier
        }
        for (; i + 768u < n; i += 1024u) {
            const vec4 v = vec4(F32(a, x + 4u * i), F32(a, x + 4u * (i + 256u)), F32(a, x + 4u * (i + 512u)),
                                F32(a, x + 4u * (i + 768u)));
            ss4 += v * v;
        }
        float ss = (ss4.x + ss4.y) + (ss4.z + ss4.w);
        for (; i < n; i += 256u) ss += F32(a, x + 4u * i) * F32(a, x + 4u * i);
        const float s = 1.0 / sqrt(reduce_sum(ss) / float(n) + p.param);
        if ((p.flags & 4u) != 0u) {  // and the int8 copy: four elements an invocation a step
            const uint rows = p.ta.ne1 * p.ta.ne2 * p.ta.ne3;
            for (uint base = 0u; base < n; base += 1024u) {
                const uint e = base + 4u * t;
                const bool live = e < n;  // n is a multiple of 32
                vec4 v = vec4(0.0);
                if (live) {
                    v = vec4(F32(a, x + 4u * e), F32(a, x + 4u * e + 4u), F32(a, x + 4u * e + 8u),
                             F32(a, x + 4u * e + 12u)) * s;
                    if ((p.flags & 1u) != 0u) {
                        const uint w = p.b_off + 4u * e;
                        v *= vec4(F32(b, w), F32(b, w + 4u), F32(b, w + 8u), F32(b, w + 12u));
                    }
                    [[unroll]] for (uint k = 0u; k < 4u; ++k) o[(y >> 2) + e + k] = floatBitsToUint(v[k]);
                }
                vec2 d;
                const uint q = quantize4(v, d);
                if (live) {
                    qa[((p.q_off + r * n + e) >> 2)] = q;
                    if ((t & 7u) == 0u) qd[(p.q_off + rows * n) / 8u + (r * n + e) / 32u] = d;
                }
            }
            return;
        }
        i = t;
        for (; i + 768u < n; i += 1024u) {
            vec4 v = vec4(F32(a, x + 4u * i), F32(a, x + 4u * (i + 256u)), F32(a, x + 4u * (i + 512u)),
                          F32(a, x + 4u * (i + 768u))) * s;
            if (p.flags != 0u) {
                const uint w = p.b_off + 4u * i;
                v *= vec4(F32(b, w), F32(b, w + 1024u), F32(b, w + 2048u), F32(b, w + 3072u));
            }
            [[unroll]] for (uint k = 0u; k < 4u; ++k) o[(y >> 2) + i + 256u * k] = floatBitsToUint(v[k]);
        }
        for (; i < n; i += 256u) {
            float v = F32(a, x + 4u * i) * s;
            if (p.flags != 0u) v *= F32(b, p.b_off + 4u * i);
            o[(y >> 2) + i] = floatBitsToUint(v);
        }
    } else if (p.op == NORM) {
        float sum = 0.0;
        for (uint i = t; i < n; i += 256u) sum += F32(a, x + 4u * i);
        const float mean = reduce_sum(sum) / float(n);
        float var = 0.0;
        for (uint i = t; i < n; i += 256u) var += (F32(a, x + 4u * i) - mean) * (F32(a, x + 4u * i) - mean);
        const float s = 1.0 / sqrt(reduce_sum(var) / float(n) + p.param);
        for (uint i = t; i < n; i += 256u) o[(y >> 2) + i] = floatBitsToUint((F32(a, x + 4u * i) - mean) * s);
    } else {  // softmax; flags: 1 mask present, 2 mask is F16
        const uint m = p.b_off + (r % p.ta.ne1) * p.b_nb1;
        float mx = -1.0 / 0.0;
        for (uint i = t; i < n; i += 256u) {
            float v = F32(a, x + 4u * i) * p.param;
            if ((p.flags & 1u) != 0u) v += (p.flags & 2u) != 0u ? F16(b, m + 2u * i) : F32(b, m + 4u * i);
            o[(y >> 2) + i] = floatBitsToUint(v);
            mx = max(mx, v);
        }
        mx = reduce_max(mx);
        if (isinf(mx) && mx < 0.0) {
            for (uint i = t; i < n; i += 256u) o[(y >> 2) + i] = 0u;
            return;
        }
        float sum = 0.0;
        for (uint i = t; i < n; i += 256u) {
            const float e = exp(uintBitsToFloat(o[(y >> 2) + i]) - mx);
            o[(y >> 2) + i] = floatBitsToUint(e);
            sum += e;
        }
        const float inv = 1.0 / reduce_sum(sum);
        for (uint i = t; i < n; i += 256u) o[(y >> 2) + i] = floatBitsToUint(uintBitsToFloat(o[(y >> 2) + i]) * inv);
    }
}
