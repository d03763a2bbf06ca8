#version 450
// Matrix products y[j][i] = dot(row i of a, row j of b) (a GPU's decoding products are in
// mul_vec.comp). Mode 2, for devices that are CPUs (lavapipe runs a workgroup's barriers as
// coroutine switches): one invocation per weight row and 8 activation rows (and one batch of
// dims 2 and 3), with no barrier (the mul_mat_u variants, compiled with UNIFORM_ACTS, run
// it with the activations in a uniform buffer: below). Also get_rows (mode 1): rows of a
// (any weight type) picked by ids, to F32, an invocation per element.
// Mode 3, for prompts: a workgroup computes a tile of 64 weight rows x 32 activation rows,
// 32 elements of K at a time: each invocation dequantizes one weight row's chunk and loads
// 16 activations into shared memory (k-major), then accumulates 4 weight rows x 8 activation
// rows, reading them at each k as one 16-byte load and two, so a weight is dequantized once
// per 32 activation rows and each value read from shared memory serves 8 (or 4) products.
// Needs K a multiple of 32. A device takes it for more than 8 activation rows where it does
// not take mul_mat_tile.comp's larger tiles (a CPU device: on lavapipe SmolLM2 pp64 5.4 -> 9.4
// t/s against mode 2). Its 12 KiB of shared memory
// bound how many workgroups a multiprocessor holds: a second set of tiles in the same
// shader (24 KiB) cost the H200 40% of its prompt speed.
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"
layout(local_size_x = 64) in;
layout(binding = 0) buffer Y { uint y[]; };
layout(binding = 1) readonly buffer AW { uint A[]; };
#ifdef UNIFORM_ACTS
// Mode 2 with the activations in a uniform buffer (64 KiB at most): see below.
layout(binding = 2) uniform BU { uvec4 bu[4096]; };
#else
layout(binding = 2) readonly buffer B { uint b[]; };
#endif
#include "dequant.glsl"
// The weight type this variant is compiled for (the build passes -DWTYPE=<GGUF type id>).
#ifndef WTYPE
#define WTYPE T_F32
#endif
const bool QUANTIZED = WTYPE != T_F32 && WTYPE != T_F16 && WTYPE != T_BF16;
layout(push_constant) uniform P {
    uint a_off, a_nb1, a_nb2, a_nb3, split;  // split: dequant.glsl's split_nb
    uint b_off, b_nb1, b_nb2, b_nb3;
    uint y_off, y_nb1, y_nb2, y_nb3;
    uint K, N, M, B2, r2, r3, mode, i_base, B3;
} p;
#ifdef UNIFORM_ACTS
// Mode 2 as the mul_mat_u variants run it, on a CPU device whose storage-buffer loads cost a
// loop over the SIMD lanes even where every lane reads the same address (lavapipe's), while a
// uniform buffer's load at a workgroup-uniform offset is one load: a workgroup takes 64
// weight rows along x and the same 8 activation rows (y) of one batch (z), so every
// activation offset is uniform, and reads them 16 bytes at a time. Offsets and strides of b
// are multiples of 16, and K of 4 (the host's conditions).
vec4 act4(uint o) { return uintBitsToFloat(bu[o >> 4]); }

void main() {
    split_nb = p.split;
    const uint i_raw = gl_WorkGroupID.x * 64u + gl_LocalInvocationID.x;
    const uint i = min(i_raw, p.N - 1u);  // rows past the edge repeat the last; never stored
    const uint j0 = gl_WorkGroupID.y * 8u;
    const uint i2 = gl_WorkGroupID.z % p.B2, i3 = gl_WorkGroupID.z / p.B2;
    const uint arow = p.a_off + i * p.a_nb1 + (i2 / p.r2) * p.a_nb2 + (i3 / p.r3) * p.a_nb3;
    const uint bbase = p.b_off + i2 * p.b_nb2 + i3 * p.b_nb3;
    const uint nj = min(8u, p.M - j0);
    float acc[8] = float[8](0, 0, 0, 0, 0, 0, 0, 0);
    if (QUANTIZED) {
        float v[32];
        for (uint c = 0u; c < p.K / 32u; ++c) {
            dequant32(WTYPE, arow, c, v);
            [[unroll]] for (uint j = 0u; j < 8u; ++j) {
                if (j >= nj) break;
                const uint br = bbase + (j0 + j) * p.b_nb1 + 128u * c;
                vec4 s = vec4(0.0);
                [[unroll]] for (uint u = 0u; u < 8u; ++u)
                    s += vec4(v[4u * u], v[4u * u + 1u], v[4u * u + 2u], v[4u * u + 3u]) * act4(br + 16u * u);
                acc[j] += (s.x + s.y) + (s.z + s.w);
            }
        }
    } else {
        for (uint k = 0u; k < p.K; k += 4u) {
            vec4 w;
            [[unroll]] for (uint u = 0u; u < 4u; ++u) w[u] = dequant(WTYPE, arow + (k + u) * block_bytes(WTYPE), 0u);
            [[unroll]] for (uint j = 0u; j < 8u; ++j)
                if (j < nj) acc[j] += dot(w, act4(bbase + (j0 + j) * p.b_nb1 + 4u * k));
        }
    }
    if (i_raw < p.N)
        for (uint j = 0u; j < nj; ++j)
            y[(p.y_off + (j0 + j) * p.y_nb1 + i2 * p.y_nb2 + i3 * p.y_nb3 + 4u * i) >> 2] = floatBitsToUint(acc[j]);
}
#else
// Mode 3's tiles, k-major: an invocation's 4 weight rows and 8 activation rows at one k are
// one 16-byte load and two.
shared vec4 tile_a4[32][16];  // [k][weight rows / 4]
shared vec4 tile_b4[32][8];   // [k][activation rows / 4]

void tiled_product() {
    const uint t = gl_LocalInvocationID.x;
    const uint i0 = gl_WorkGroupID.x * 64u, j0 = gl_WorkGroupID.y * 32u;
    const uint i2 = gl_WorkGroupID.z % p.B2, i3 = gl_WorkGroupID.z / p.B2;
    const uint ia = min(i0 + t, p.N - 1u);  // rows past the edge repeat the last; never stored
    const uint arow = p.a_off + ia * p.a_nb1 + (i2 / p.r2) * p.a_nb2 + (i3 / p.r3) * p.a_nb3;
    const uint bbase = p.b_off + i2 * p.b_nb2 + i3 * p.b_nb3;
    const uint lj = t / 2u, lk = 16u * (t % 2u);
    const bool lj_in = j0 + lj < p.M;
    const uint brow = bbase + min(j0 + lj, p.M - 1u) * p.b_nb1;
    const uint ci = t % 16u, cj = 2u * (t / 16u);  // vec4 columns of the tiles
    float acc[4][8];
    [[unroll]] for (uint a = 0u; a < 4u; ++a)
        [[unroll]] for (uint b = 0u; b < 8u; ++b) acc[a][b] = 0.0;
    // A chunk's weights (dequantized) and activations (as loaded) held in registers: the
    // next chunk's activations load while this chunk's products run, its weights after them.
    float v[32], x[16];
    const uint chunks = p.K / 32u;
    dequant32(WTYPE, arow, 0u, v);
    [[unroll]] for (uint u = 0u; u < 16u; ++u) x[u] = F32(b, brow + 4u * (lk + u));
    for (uint c = 0u; c < chunks; ++c) {
        barrier();  // the previous chunk's tiles are read
        [[unroll]] for (uint u = 0u; u < 32u; ++u) tile_a4[u][t / 4u][t % 4u] = v[u];
        [[unroll]] for (uint u = 0u; u < 16u; ++u) tile_b4[lk + u][lj / 4u][lj % 4u] = lj_in ? x[u] : 0.0;
        barrier();
        const uint cn = min(c + 1u, chunks - 1u);
        [[unroll]] for (uint u = 0u; u < 16u; ++u) x[u] = F32(b, brow + 4u * (32u * cn + lk + u));
        [[unroll]] for (uint k = 0u; k < 32u; ++k) {
            const vec4 wa = tile_a4[k][ci], x0 = tile_b4[k][cj], x1 = tile_b4[k][cj + 1u];
            [[unroll]] for (uint a = 0u; a < 4u; ++a) {
                acc[a][0] += wa[a] * x0.x;
                acc[a][1] += wa[a] * x0.y;
                acc[a][2] += wa[a] * x0.z;
                acc[a][3] += wa[a] * x0.w;
                acc[a][4] += wa[a] * x1.x;
                acc[a][5] += wa[a] * x1.y;
                acc[a][6] += wa[a] * x1.z;
                acc[a][7] += wa[a] * x1.w;
            }
        }
        dequant32(WTYPE, arow, cn, v);
    }
    [[unroll]] for (uint b = 0u; b < 8u; ++b) {
        const uint j = j0 + 4u * cj + b;
        if (j >= p.M) break;
        [[unroll]] for (uint a = 0u; a < 4u; ++a) {
            const uint i = i0 + 4u * ci + a;
            if (i < p.N)
                y[(p.y_off + j * p.y_nb1 + i2 * p.y_nb2 + i3 * p.y_nb3 + 4u * i) >> 2] = floatBitsToUint(acc[a][b]);
        }
    }
}

void main() {
    split_nb = p.split;
    const uint t = gl_LocalInvocationID.x;
    if (p.mode == 3u) {
        tiled_product();
        return;
    }
    if (p.mode == 1u) {  // get_rows: b holds the I32 ids; K elements per row, M rows
        const uint g = group_id() * 64u + t;
        if (g >= p.K * p.M) return;
        const uint r = g / p.K, e = g % p.K;
        const uint row = b[(p.b_off >> 2) + r];
        y[(p.y_off >> 2) + r * (p.y_nb1 >> 2) + e] = floatBitsToUint(weight_at(WTYPE, p.a_off + row * p.a_nb1, e));
        return;
    }
    if (p.mode == 2u) {  // an invocation per (weight row, 8 activation rows): no barriers
        const uint g = group_id() * 64u + t;
        const uint jblocks = (p.M + 7u) / 8u;
        const uint i = g % p.N, rest = g / p.N;
        const uint j0 = (rest % jblocks) * 8u, batch = rest / jblocks;
        const uint i2 = batch % p.B2, i3 = batch / p.B2;
        if (i3 >= p.B3) return;
        const uint arow = p.a_off + i * p.a_nb1 + (i2 / p.r2) * p.a_nb2 + (i3 / p.r3) * p.a_nb3;
        const uint bbase = p.b_off + i2 * p.b_nb2 + i3 * p.b_nb3;
        const uint nj = min(8u, p.M - j0);
        float acc[8] = float[8](0, 0, 0, 0, 0, 0, 0, 0);
        if (QUANTIZED) {
            float v[32];
            for (uint c = 0u; c < p.K / 32u; ++c) {
                dequant32(WTYPE, arow, c, v);
                [[unroll]] for (uint j = 0u; j < 8u; ++j) {
                    if (j >= nj) break;
                    const uint br = bbase + (j0 + j) * p.b_nb1 + 128u * c;
                    float s = 0.0;
                    [[unroll]] for (uint u = 0u; u < 32u; ++u) s += v[u] * F32(b, br + 4u * u);
                    acc[j] += s;
                }
            }
        } else {
            for (uint k = 0u; k < p.K; ++k) {
                const float w = dequant(WTYPE, arow + k * block_bytes(WTYPE), 0u);
                [[unroll]] for (uint j = 0u; j < 8u; ++j)
                    if (j < nj) acc[j] += w * F32(b, bbase + (j0 + j) * p.b_nb1 + 4u * k);
            }
        }
        for (uint j = 0u; j < nj; ++j)
            y[(p.y_off + (j0 + j) * p.y_nb1 + i2 * p.y_nb2 + i3 * p.y_nb3 + 4u * i) >> 2] = floatBitsToUint(acc[j]);
    }
}
#endif
