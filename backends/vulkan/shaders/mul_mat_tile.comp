#version 450
// Prompt products on a GPU without cooperative matrices: y[j][i] = dot(row i of a, row j of b)
// in f32. A workgroup of 256 invocations computes a tile of 128 weight rows x 128 activation
// rows, 32 elements of K a step, as mul_mat_cm.comp does with its matrices: the step's
// weights (dequantized) and activations go from registers to shared memory (k-major: the
// 4 weight rows or 4 activation rows at one k are one 16-byte vector); then the invocations
// load the next step's activations into registers, each multiplies its 8 weight rows by its
// 8 activation rows over the step's K (two 16-byte loads of each a k, 64 products), and they
// load the next step's weights. Needs K a multiple of 32, 32 KiB of shared memory and 256
// invocations a workgroup (vulkan_pipeline.cpp checks); CPU devices keep mul_mat.comp's mode
// 3 (lavapipe runs a workgroup's invocations as loops between barriers).
// Measured on the H100 with cooperative matrices off (8B Q4_0 pp512, t/s, two interleaved
// runs each): this shader 2153 / 2154, with BK 16 2044 / 2048; mul_mat.comp's mode 3 (64 x 32
// tiles of 64 invocations) 1203 / 1206, and mode 3 with 64 x 64 tiles of 8 x 8 an invocation
// 1050. Products of few tiles (TinyLlama's 256-row K and V: 8) left to mode 3's four times as
// many workgroups were slower too: TinyLlama Q4_0 pp512 8944 t/s with this shader for all,
// 8347 with mode 3 below 64 of these tiles, 8030 below 132.
// F16MATH (devices with f16 arithmetic; quantized and F16 weights): the tiles hold f16, and
// each invocation multiplies pairs of weight rows by an activation in one packed f16
// instruction, the step's 32 products summed in f16 and then added to the f32 sums (in the
// op tests a normalized error near 8e-7, where the f32 tiles' is near 1e-13).
// BN 64 (with F16MATH): tiles of 128 x 64, an invocation's 8 weight rows by 4 activation
// rows, for products of fewer 128 x 128 tiles than the device runs at once.
// Measured on the H100 with cooperative matrices off (pp512 t/s, two interleaved runs each):
// F16MATH against f32, TinyLlama Q4_0 10696 / 10696 against 8982 / 9035 (9659 / 9641 with
// 128 x 128 tiles only), 8B Q4_0 2184 / 2172 against 2062 / 2067: the 14336 x 4096 product
// 1889 us against 1943, so the f32 tiles were not bound by their multiplications. Tried and
// slower: BK 64 in f16 (8B 1908 / 1884, TinyLlama 9237 / 9206); each invocation's weight
// and activation rows adjacent (one 16-byte load of 8 halves each, a subgroup reading 192
// bytes of shared memory a k instead of 288) the same (8B 2176 / 2173 against 2204 / 2175).
#extension GL_GOOGLE_include_directive : enable
#ifdef F16MATH
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define TV f16vec4
#else
#define TV vec4
#endif
#include "common.glsl"
layout(local_size_x = 256) in;
layout(binding = 0) buffer YF { float yf[]; };
layout(binding = 1) readonly buffer AW { uint A[]; };
layout(binding = 1) readonly buffer AW4 { uvec4 A4[]; };  // the same weights, 16 bytes at a time
layout(binding = 2) readonly buffer B { uint b[]; };
layout(binding = 2) readonly buffer B4 { vec4 b4[]; };
#include "dequant.glsl"
#ifndef WTYPE
#define WTYPE T_F32
#endif
layout(push_constant) uniform P {
    uint a_off, a_nb1, a_nb2, a_nb3, split;  // split: dequant.glsl's split_nb
    uint b_off, b_nb1, b_nb2, b_nb3;
    uint y_off, y_nb1, y_nb2, y_nb3;
    uint K, N, M, B2, r2, r3, mode, i_base, B3;
} p;

#ifndef BK
#define BK 32u
#endif
#ifndef BN
#define BN 128u
#endif
const uint WG = 256u, BM = 128u;
const uint NC = BN / 64u;  // an invocation's vectors of 4 activation rows: 2, or 1 in 128 x 64 tiles
shared TV tile_a[BK][BM / 4u];  // [k][weight rows / 4]
shared TV tile_b[BK][BN / 4u];  // [k][activation rows / 4]

const uint NA = BM * (BK / 8u) / WG, NB = BN * (BK / 4u) / WG;
#define WREG TV
#include "tile_loads.glsl"

// The registers into the shared tiles (activation rows past the edge as zeros).
void store_tiles(uint t, uint j0) {
    [[unroll]] for (uint u = 0u; u < NA; ++u) {
        const uint q = t + u * WG, r = q / (BK / 8u), g = q % (BK / 8u);
        [[unroll]] for (uint e = 0u; e < 8u; ++e) tile_a[8u * g + e][r / 4u][r % 4u] = ra[u][e / 4u][e % 4u];
    }
    [[unroll]] for (uint u = 0u; u < NB; ++u) {
        const uint q = t + u * WG, r = q / (BK / 4u), c = q % (BK / 4u);
#ifdef F16MATH
        const TV x = j0 + r < p.M ? f16vec4(clamp(rb[u], vec4(-65504.0), vec4(65504.0))) : TV(0.0);
#else
        const TV x = j0 + r < p.M ? rb[u] : TV(0.0);
#endif
        [[unroll]] for (uint e = 0u; e < 4u; ++e) tile_b[4u * c + e][r / 4u][r % 4u] = x[e];
    }
}

void main() {
    split_nb = p.split;
    const uint t = gl_LocalInvocationID.x;
    const uint i0 = gl_WorkGroupID.x * BM, j0 = gl_WorkGroupID.y * BN;
    const uint i2 = gl_WorkGroupID.z % p.B2, i3 = gl_WorkGroupID.z / p.B2;
    const uint abase = p.a_off + (i2 / p.r2) * p.a_nb2 + (i3 / p.r3) * p.a_nb3;
    const uint bbase = p.b_off + i2 * p.b_nb2 + i3 * p.b_nb3;
    const bool vec = ((bbase | p.b_nb1) & 15u) == 0u;
    const bool avec = WTYPE == T_F16 && ((abase | p.a_nb1) & 15u) == 0u;  // f16 rows: 8 halves a load
    // Invocation t: weight rows 4 ci .. 4 ci + 3 and 64 + 4 ci .. (vectors ci and ci + 16 of a
    // k's row of tile_a), activation rows 4 cj .. and 64 + 4 cj .. (of tile_b).
    const uint ci = t % 16u, cj = t / 16u;
    float acc[8][4u * NC];
    [[unroll]] for (uint a = 0u; a < 8u; ++a)
        [[unroll]] for (uint c = 0u; c < 4u * NC; ++c) acc[a][c] = 0.0;

    load_weights(0u, t, WG, abase, i0, avec);
    load_acts(0u, t, WG, bbase, j0, vec);
    for (uint k0 = 0u; k0 < p.K; k0 += BK) {
        barrier();  // the previous step's tiles are read
        store_tiles(t, j0);
        barrier();
        const uint kn = min(k0 + BK, p.K - BK);  // the last step loads its own again, unused
        load_acts(kn, t, WG, bbase, j0, vec);
#ifdef F16MATH
        // Pairs of weight rows times an activation in f16 (one packed instruction a pair),
        // summed over the step in f16 and added to the f32 sums after it.
        f16vec2 h[4][4u * NC];
        [[unroll]] for (uint a = 0u; a < 4u; ++a)
            [[unroll]] for (uint c = 0u; c < 4u * NC; ++c) h[a][c] = f16vec2(0.0);
        [[unroll]] for (uint k = 0u; k < BK; ++k) {
            const f16vec4 w0 = tile_a[k][ci], w1 = tile_a[k][ci + 16u];
            const f16vec2 w[4] = {w0.xy, w0.zw, w1.xy, w1.zw};
            [[unroll]] for (uint n = 0u; n < NC; ++n) {
                const f16vec4 x = tile_b[k][cj + 16u * n];
                [[unroll]] for (uint a = 0u; a < 4u; ++a)
                    [[unroll]] for (uint c = 0u; c < 4u; ++c) h[a][4u * n + c] = fma(w[a], f16vec2(x[c]), h[a][4u * n + c]);
            }
        }
        [[unroll]] for (uint a = 0u; a < 4u; ++a)
            [[unroll]] for (uint c = 0u; c < 4u * NC; ++c) {
                const vec2 s = vec2(h[a][c]);
                acc[2u * a][c] += s.x;
                acc[2u * a + 1u][c] += s.y;
            }
#else
        [[unroll]] for (uint k = 0u; k < BK; ++k) {
            const vec4 w0 = tile_a[k][ci], w1 = tile_a[k][ci + 16u];
            [[unroll]] for (uint n = 0u; n < NC; ++n) {
                const vec4 x = tile_b[k][cj + 16u * n];
                [[unroll]] for (uint a = 0u; a < 8u; ++a) {
                    const float w = a < 4u ? w0[a] : w1[a - 4u];
                    [[unroll]] for (uint c = 0u; c < 4u; ++c) acc[a][4u * n + c] += w * x[c];
                }
            }
        }
#endif
        load_weights(kn, t, WG, abase, i0, avec);
    }

    // Result (weight row i, activation row j) is y's element j * y_nb1 / 4 + i.
    const uint ybase = (p.y_off + i2 * p.y_nb2 + i3 * p.y_nb3) >> 2, ystride = p.y_nb1 >> 2;
    [[unroll]] for (uint c = 0u; c < 4u * NC; ++c) {
        const uint j = j0 + 64u * (c / 4u) + 4u * cj + c % 4u;
        if (j >= p.M) continue;
        [[unroll]] for (uint a = 0u; a < 8u; ++a) {
            const uint i = i0 + (a < 4u ? 4u * ci + a : 64u + 4u * ci + a - 4u);
            if (i < p.N) yf[ybase + j * ystride + i] = acc[a][c];
        }
    }
}
