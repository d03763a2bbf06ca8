#version 450
// Decoding products on a GPU: y[j][i] = dot(row i of a, row j of b) for up to 8 activation
// rows j (and one batch of dims 2 and 3). A workgroup of 64 takes 2R weight rows, R per 32
// invocations (R: a specialization constant, set per device when the pipeline is made); an
// invocation takes 32-element chunks of its rows 32 apart (adjacent
// invocations read adjacent blocks), dequantizing each once for all activation rows, and
// reads the activations 16 bytes at a time where they are aligned so; with one activation row
// it reads each chunk of it once for its R weight rows (f32 activations are four times the
// bytes of Q8_0 weights: read per row, they outweighed the weights). A shared-memory sum over
// the 32 ends each row. Only the products of mul_mat.comp's mode 0 live here, so a workgroup
// reserves 2R KiB of shared memory (not the prompt tiles' 15).
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"
layout(local_size_x = 64) in;
layout(binding = 0) buffer Y { uint y[]; };
layout(binding = 1) readonly buffer AW { uint A[]; };
layout(binding = 2) readonly buffer B { uint b[]; };
layout(binding = 2) readonly buffer B4 { vec4 b4[]; };  // the same activations, 16 bytes at a time
#include "dequant.glsl"
#ifndef WTYPE
#define WTYPE T_F32
#endif
const bool QUANTIZED = WTYPE != T_F32 && WTYPE != T_F16 && WTYPE != T_BF16;
layout(push_constant) uniform P {
    uint a_off, a_nb1, a_nb2, a_nb3, type_unused;
    uint b_off, b_nb1, b_nb2, b_nb3;
    uint y_off, y_nb1, y_nb2, y_nb3;
    uint K, N, M, B2, r2, r3, mode, i_base, B3;
} p;
// Weight rows per 32 invocations (the workgroup takes 2R), chosen when the pipeline is made.
layout(constant_id = 0) const uint R = 2u;
shared float part[R * 8u][64];

void main() {
    const uint t = gl_LocalInvocationID.x, lane = t % 32u;
    const uint i0 = 2u * R * (gl_WorkGroupID.x + p.i_base) + R * (t / 32u);  // this half's first row
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
    if (QUANTIZED) {
        const bool vec = ((bbase | p.b_nb1) & 15u) == 0u;
        float v[32];
        if (nj == 1u && vec) {
            // One activation row: its chunk is read once for the R weight rows.
            vec4 x[8];
            const uint xb = (bbase + j0 * p.b_nb1) >> 4;
            for (uint c = lane; c < p.K / 32u; c += 32u) {
                [[unroll]] for (uint u = 0u; u < 8u; ++u) x[u] = b4[xb + 8u * c + u];
                [[unroll]] for (uint r = 0u; r < R; ++r) {
                    dequant32(WTYPE, arow[r], c, v);
                    vec4 s4 = vec4(0.0);
                    [[unroll]] for (uint u = 0u; u < 8u; ++u)
                        s4 += vec4(v[4u * u], v[4u * u + 1u], v[4u * u + 2u], v[4u * u + 3u]) * x[u];
                    acc[r][0] += (s4.x + s4.y) + (s4.z + s4.w);
                }
            }
        } else {
            for (uint c = lane; c < p.K / 32u; c += 32u) {
                [[unroll]] for (uint r = 0u; r < R; ++r) {
                    dequant32(WTYPE, arow[r], c, v);
                    [[unroll]] for (uint j = 0u; j < 8u; ++j) {
                        if (j >= nj) break;
                        const uint br = bbase + (j0 + j) * p.b_nb1 + 128u * c;
                        float s = 0.0;
                        if (vec) {
                            vec4 s4 = vec4(0.0);
                            [[unroll]] for (uint u = 0u; u < 8u; ++u)
                                s4 += vec4(v[4u * u], v[4u * u + 1u], v[4u * u + 2u], v[4u * u + 3u]) *
                                      b4[(br >> 4) + u];
                            s = (s4.x + s4.y) + (s4.z + s4.w);
                        } else {
                            [[unroll]] for (uint u = 0u; u < 32u; ++u) s += v[u] * F32(b, br + 4u * u);
                        }
                        acc[r][j] += s;
                    }
                }
            }
        }
    } else {
        for (uint k = lane; k < p.K; k += 32u) {
            [[unroll]] for (uint r = 0u; r < R; ++r) {
                const float w = dequant(WTYPE, arow[r] + k * block_bytes(WTYPE), 0u);
                [[unroll]] for (uint j = 0u; j < 8u; ++j)
                    if (j < nj) acc[r][j] += w * F32(b, bbase + (j0 + j) * p.b_nb1 + 4u * k);
            }
        }
    }
    [[unroll]] for (uint r = 0u; r < R; ++r)
        [[unroll]] for (uint j = 0u; j < 8u; ++j)
            if (j < nj) part[8u * r + j][t] = acc[r][j];
    barrier();
    for (uint s = 16u; s > 0u; s >>= 1) {
        if (lane < s)
            [[unroll]] for (uint r = 0u; r < R; ++r)
                [[unroll]] for (uint j = 0u; j < 8u; ++j)
                    if (j < nj) part[8u * r + j][t] += part[8u * r + j][t + s];
        barrier();
    }
    if (lane < nj)
        [[unroll]] for (uint r = 0u; r < R; ++r)
            if (i0 + r < p.N)
                y[(p.y_off + (j0 + lane) * p.y_nb1 + i2 * p.y_nb2 + i3 * p.y_nb3 + 4u * (i0 + r)) >> 2] =
                    floatBitsToUint(part[8u * r + lane][t - lane]);
}
