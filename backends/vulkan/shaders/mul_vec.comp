#version 450
// Decoding products on a GPU: y[j][i] = dot(row i of a, row j of b) for up to 8 activation
// rows j (and one batch of dims 2 and 3). A workgroup of 64 takes two weight rows, 32
// invocations each; an invocation takes 32-element chunks of its row 32 apart (adjacent
// invocations read adjacent blocks), dequantizing each once for all activation rows, and
// reads the activations 16 bytes at a time where they are aligned so. A shared-memory sum
// over the 32 ends each row. Only the products of mul_mat.comp's mode 0 live here, so a
// workgroup reserves 2 KiB of shared memory (not the prompt tiles' 15), and more of them
// stay resident to hide the weights' latency.
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
shared float part[8][64];

void main() {
    const uint t = gl_LocalInvocationID.x, lane = t % 32u;
    const uint i = 2u * (gl_WorkGroupID.x + p.i_base) + t / 32u;
    const uint jblocks = (p.M + 7u) / 8u;
    const uint j0 = (gl_WorkGroupID.y % jblocks) * 8u, batch = gl_WorkGroupID.y / jblocks;
    const uint i2 = batch % p.B2, i3 = batch / p.B2;
    const uint nj = min(8u, p.M - j0);
    const bool live = i < p.N;  // the second row of the last workgroup may be past the end
    const uint arow = p.a_off + min(i, p.N - 1u) * p.a_nb1 + (i2 / p.r2) * p.a_nb2 + (i3 / p.r3) * p.a_nb3;
    const uint bbase = p.b_off + i2 * p.b_nb2 + i3 * p.b_nb3;
    float acc[8] = float[8](0, 0, 0, 0, 0, 0, 0, 0);
    if (QUANTIZED) {
        const bool vec = ((bbase | p.b_nb1) & 15u) == 0u;
        float v[32];
        for (uint c = lane; c < p.K / 32u; c += 32u) {
            dequant32(WTYPE, arow, c, v);
            [[unroll]] for (uint j = 0u; j < 8u; ++j) {
                if (j >= nj) break;
                const uint br = bbase + (j0 + j) * p.b_nb1 + 128u * c;
                float s = 0.0;
                if (vec) {
                    vec4 s4 = vec4(0.0);
                    [[unroll]] for (uint u = 0u; u < 8u; ++u)
                        s4 += vec4(v[4u * u], v[4u * u + 1u], v[4u * u + 2u], v[4u * u + 3u]) * b4[(br >> 4) + u];
                    s = (s4.x + s4.y) + (s4.z + s4.w);
                } else {
                    [[unroll]] for (uint u = 0u; u < 32u; ++u) s += v[u] * F32(b, br + 4u * u);
                }
                acc[j] += s;
            }
        }
    } else {
        for (uint k = lane; k < p.K; k += 32u) {
            const float w = dequant(WTYPE, arow + k * block_bytes(WTYPE), 0u);
            [[unroll]] for (uint j = 0u; j < 8u; ++j)
                if (j < nj) acc[j] += w * F32(b, bbase + (j0 + j) * p.b_nb1 + 4u * k);
        }
    }
    [[unroll]] for (uint j = 0u; j < 8u; ++j)
        if (j < nj) part[j][t] = acc[j];
    barrier();
    for (uint s = 16u; s > 0u; s >>= 1) {
        if (lane < s)
            [[unroll]] for (uint j = 0u; j < 8u; ++j)
                if (j < nj) part[j][t] += part[j][t + s];
        barrier();
    }
    if (live && lane < nj)
        y[(p.y_off + (j0 + lane) * p.y_nb1 + i2 * p.y_nb2 + i3 * p.y_nb3 + 4u * i) >> 2] =
            floatBitsToUint(part[lane][t - lane]);
}
