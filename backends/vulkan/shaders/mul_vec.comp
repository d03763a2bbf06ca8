#version 450
// Decoding products on a GPU: y[j][i] = dot(row i of a, row j of b) for up to 8 activation
// rows j (and one batch of dims 2 and 3). A workgroup of W invocations takes R weight rows
// (W and R: specialization constants, set per device when the pipeline is made); its
// invocations split K between them in groups of 8 elements, adjacent invocations taking
// adjacent groups, so each load instruction of a subgroup reads adjacent bytes of the weights
// and of the activations. A group is dequantized once for all activation rows and its
// activations read once for the R weight rows. The invocations' partial sums meet in shared
// memory: through subgroup sums where the device has them (the SUBGROUPS variant, chosen at
// run time), else a tree. Only the products of mul_mat.comp's mode 0 live here. The INTDOT
// variants (mul_vec_int.glsl) take int8 activations instead, on integer dot products.
// Measured slower on an H100 (tg128 t/s, two interleaved runs each): a gated feed-forward's
// gate and up products and their activation in one dispatch (a workgroup taking a row of each
// and writing act(gate) * up, the int8 copy of each block of 32 outputs made by the block's
// last workgroup, found by counting in on an atomic counter) against the two products side by
// side and a quantizing dispatch after them: 8B Q4_0 285 / 287 against 297 / 300, TinyLlama
// Q4_0 763 / 736 against 746 / 751. The dispatch saved costs less than the products lose.
#extension GL_GOOGLE_include_directive : enable
#ifdef SUBGROUPS
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
#endif
#ifdef INTDOT
#extension GL_EXT_spirv_intrinsics : require
#endif
#include "common.glsl"
// Weight rows per workgroup and invocations per workgroup.
layout(constant_id = 0) const uint R = 2u;
layout(constant_id = 1) const uint W = 64u;
// Groups of 8 an invocation takes in a step of the one-activation-row loop, and the INTDOT
// variants' 32-element slices (half as many, at least one).
layout(constant_id = 2) const uint U = 4u;
const uint US = U > 1u ? U / 2u : 1u;
// A workgroup of one subgroup writes its sums from the lanes (SUBGROUPS variants).
layout(constant_id = 3) const bool LANE_SUMS = false;
layout(local_size_x_id = 1) in;
layout(binding = 0) buffer Y { uint y[]; };
layout(binding = 1) readonly buffer AW { uint A[]; };
layout(binding = 1) readonly buffer AW4 { uvec4 A4[]; };  // the same weights, 16 bytes at a time
layout(binding = 2) readonly buffer B { uint b[]; };
layout(binding = 2) readonly buffer B4 { vec4 b4[]; };  // the same activations, 16 bytes at a time
#include "dequant.glsl"
#ifndef WTYPE
#define WTYPE T_F32
#endif
const bool QUANTIZED = WTYPE != T_F32 && WTYPE != T_F16 && WTYPE != T_BF16;
layout(push_constant) uniform P {
    uint a_off, a_nb1, a_nb2, a_nb3, split;  // split: dequant.glsl's split_nb
    uint b_off, b_nb1, b_nb2, b_nb3;
    uint y_off, y_nb1, y_nb2, y_nb3;
    uint K, N, M, B2, r2, r3, mode, i_base, B3;
    uint ds_off;  // INTDOT: the byte offset of the activations' block scales in b
} p;
shared float part[R * 8u * W];  // [row r][activation row j][invocation or subgroup]

#ifdef INTDOT
#include "mul_vec_int.glsl"
#endif

void main() {
    split_nb = p.split;
    const uint t = gl_LocalInvocationID.x;
    const uint i0 = R * (gl_WorkGroupID.x + p.i_base);
    const uint jblocks = (p.M + 7u) / 8u;
    const uint j0 = (gl_WorkGroupID.y % jblocks) * 8u, batch = gl_WorkGroupID.y / jblocks;
    const uint i2 = batch % p.B2, i3 = batch / p.B2;
    const uint nj = min(8u, p.M - j0);
    // Rows past the end (the last workgroup's) read the last row and write nothing.
    uint arow[R];
    [[unroll]] for (uint r = 0u; r < R; ++r)
        arow[r] = p.a_off + min(i0 + r, p.N - 1u) * p.a_nb1 + (i2 / p.r2) * p.a_nb2 + (i3 / p.r3) * p.a_nb3;
    const uint bbase = p.b_off + i2 * p.b_nb2 + i3 * p.b_nb3;
    float acc[R][8];
    [[unroll]] for (uint r = 0u; r < R; ++r)
        [[unroll]] for (uint j = 0u; j < 8u; ++j) acc[r][j] = 0.0;
#ifdef INTDOT
    const uint slices = p.K / 32u;
    uint s0 = t;
    if (nj == 1u) {  // one activation row, US slices a step: all their loads issued first
        const uint xrow = (p.b_off + j0 * p.b_nb1) / 16u, drow = p.ds_off / 8u + j0 * slices;
        for (; s0 + (US - 1u) * W < slices; s0 += US * W) {
            uvec4 x0[US], x1[US];
            vec2 d[US];
            [[unroll]] for (uint u = 0u; u < US; ++u) {
                const uint s = s0 + u * W;
                x0[u] = bq[xrow + 2u * s];
                x1[u] = bq[xrow + 2u * s + 1u];
                d[u] = bd[drow + s];
            }
            [[unroll]] for (uint r = 0u; r < R; ++r) {
                uint q[US][8];
                vec3 f[US];
                [[unroll]] for (uint u = 0u; u < US; ++u) weight_slice(arow[r], s0 + u * W, q[u], f[u]);
                [[unroll]] for (uint u = 0u; u < US; ++u) acc[r][0] += slice_dot(q[u], f[u], x0[u], x1[u], d[u]);
            }
        }
    }
    for (uint s = s0; s < slices; s += W) {
        if (nj == 1u) {  // one activation row: its block loaded once for the R rows
            const uint x = (p.b_off + j0 * p.b_nb1) / 16u + 2u * s;
            const uvec4 x0 = bq[x], x1 = bq[x + 1u];
            const vec2 ds = bd[p.ds_off / 8u + j0 * (p.K / 32u) + s];
            [[unroll]] for (uint r = 0u; r < R; ++r) {
                uint q[8];
                vec3 f;
                weight_slice(arow[r], s, q, f);
                acc[r][0] += slice_dot(q, f, x0, x1, ds);
            }
            continue;
        }
        [[unroll]] for (uint r = 0u; r < R; ++r) {
            uint q[8];
            vec3 f;
            weight_slice(arow[r], s, q, f);
            [[unroll]] for (uint j = 0u; j < 8u; ++j) {
                if (j >= nj) break;
                const uint x = (p.b_off + (j0 + j) * p.b_nb1) / 16u + 2u * s;
                acc[r][j] += slice_dot(q, f, bq[x], bq[x + 1u], bd[p.ds_off / 8u + (j0 + j) * (p.K / 32u) + s]);
            }
        }
    }
#else
    if (QUANTIZED) {
        const uint groups = p.K / 8u;  // K is a multiple of the block, 32 or 256
        const bool vec = ((bbase | p.b_nb1) & 15u) == 0u;
        float v[8];
        if (nj == 1u && vec) {
            const uint xb = (bbase + j0 * p.b_nb1) >> 4;
            uint g = t;
            // U groups a step, their loads issued together: a decoding product is bound by the
            // bytes each multiprocessor has in flight.
            for (; g + (U - 1u) * W < groups; g += U * W) {
                float vu[U][8];
                vec4 x0[U], x1[U];
                [[unroll]] for (uint u = 0u; u < U; ++u) {
                    x0[u] = b4[xb + 2u * (g + u * W)];
                    x1[u] = b4[xb + 2u * (g + u * W) + 1u];
                }
                [[unroll]] for (uint r = 0u; r < R; ++r) {
                    [[unroll]] for (uint u = 0u; u < U; ++u) dequant8(WTYPE, arow[r], g + u * W, vu[u]);
                    [[unroll]] for (uint u = 0u; u < U; ++u)
                        acc[r][0] += dot(vec4(vu[u][0], vu[u][1], vu[u][2], vu[u][3]), x0[u]) +
                                     dot(vec4(vu[u][4], vu[u][5], vu[u][6], vu[u][7]), x1[u]);
                }
            }
            for (; g < groups; g += W) {
                const vec4 x0 = b4[xb + 2u * g], x1 = b4[xb + 2u * g + 1u];
                [[unroll]] for (uint r = 0u; r < R; ++r) {
                    dequant8(WTYPE, arow[r], g, v);
                    acc[r][0] += dot(vec4(v[0], v[1], v[2], v[3]), x0) + dot(vec4(v[4], v[5], v[6], v[7]), x1);
                }
            }
        } else {
            for (uint g = t; g < groups; g += W) {
                [[unroll]] for (uint r = 0u; r < R; ++r) {
                    dequant8(WTYPE, arow[r], g, v);
                    [[unroll]] for (uint j = 0u; j < 8u; ++j) {
                        if (j >= nj) break;
                        const uint br = bbase + (j0 + j) * p.b_nb1 + 32u * g;
                        if (vec) {
                            acc[r][j] += dot(vec4(v[0], v[1], v[2], v[3]), b4[br >> 4]) +
                                         dot(vec4(v[4], v[5], v[6], v[7]), b4[(br >> 4) + 1u]);
                        } else {
                            [[unroll]] for (uint u = 0u; u < 8u; ++u) acc[r][j] += v[u] * F32(b, br + 4u * u);
                        }
                    }
                }
            }
        }
    } else {
        for (uint k = t; k < p.K; k += W) {
            [[unroll]] for (uint r = 0u; r < R; ++r) {
                const float w = dequant(WTYPE, arow[r] + k * block_bytes(WTYPE), 0u);
                [[unroll]] for (uint j = 0u; j < 8u; ++j)
                    if (j < nj) acc[r][j] += w * F32(b, bbase + (j0 + j) * p.b_nb1 + 4u * k);
            }
        }
    }
#endif
#ifdef SUBGROUPS
    // A workgroup of one subgroup (a GPU's decoding products: W is its subgroup size): the
    // sums written by the lanes that hold them, without shared memory or a barrier.
    if (LANE_SUMS && gl_NumSubgroups == 1u) {
        [[unroll]] for (uint r = 0u; r < R; ++r)
            [[unroll]] for (uint j = 0u; j < 8u; ++j) {
                if (j >= nj) break;
                const float s = subgroupAdd(acc[r][j]);
                if (gl_SubgroupInvocationID == (8u * r + j) % gl_SubgroupSize && i0 + r < p.N)
                    y[(p.y_off + (j0 + j) * p.y_nb1 + i2 * p.y_nb2 + i3 * p.y_nb3 + 4u * (i0 + r)) >> 2] =
                        floatBitsToUint(s);
            }
        return;
    }
    // Each subgroup's sums, then the subgroups' in shared memory.
    [[unroll]] for (uint r = 0u; r < R; ++r)
        [[unroll]] for (uint j = 0u; j < 8u; ++j) {
            if (j >= nj) break;
            const float s = subgroupAdd(acc[r][j]);
            if (subgroupElect()) part[(8u * r + j) * W + gl_SubgroupID] = s;
        }
    barrier();
    const uint parts = gl_NumSubgroups;
#else
    [[unroll]] for (uint r = 0u; r < R; ++r)
        [[unroll]] for (uint j = 0u; j < 8u; ++j)
            if (j < nj) part[(8u * r + j) * W + t] = acc[r][j];
    barrier();
    uint parts = W;
    for (; parts > 4u; parts >>= 1) {  // halve to four partial sums
        const uint h = parts >> 1;
        if (t < h)
            [[unroll]] for (uint r = 0u; r < R; ++r)
                [[unroll]] for (uint j = 0u; j < 8u; ++j)
                    if (j < nj) part[(8u * r + j) * W + t] += part[(8u * r + j) * W + t + h];
        barrier();
    }
#endif
    // Invocation 8r + j (modulo W) ends row r's sum for activation row j.
    for (uint o = t; o < 8u * R; o += W) {
        const uint r = o / 8u, j = o % 8u;
        if (j < nj && i0 + r < p.N) {
            float s = 0.0;
            for (uint k = 0u; k < parts; ++k) s += part[o * W + k];
            y[(p.y_off + (j0 + j) * p.y_nb1 + i2 * p.y_nb2 + i3 * p.y_nb3 + 4u * (i0 + r)) >> 2] = floatBitsToUint(s);
        }
    }
}
