#version 450
// Prompt products on cooperative matrices (tensor cores through GL_KHR_cooperative_matrix):
// y[j][i] = dot(row i of a, row j of b), for devices with 16x16x16 f16 x f16 -> f32 matrices at
// subgroup scope (chosen at run time; mul_mat.comp's mode 3 is the f32 counterpart).
// A workgroup of 2 x SGN subgroups computes a tile of BM weight rows x BN activation rows, BK
// elements of K a step. A step: its invocations store the step's weights (dequantized from
// their groups of 8; F16 weights 8 halves a 16-byte load) and activations (rounded to f16)
// from registers to shared memory (rows of BK + 8 halves: the padding spreads a matrix
// load's rows over the banks); then they load the next step's activations into registers,
// each subgroup multiplies its TM x TN matrices of 16 x 16 over the step's K (summing in
// f32), and they load the next step's weights. Full 16 x 16 results are stored to y straight
// from the matrices; those on the tile's edges go through shared memory with the bounds
// checked. Needs K a multiple of BK and subgroups of at least 32.
// Measured on the H100 (8B Q4_0 pp512, t/s; Tessera's figures of one device call side by
// side): the activations' loads behind a bounds check instead of clamped 3405 against 5453
// (each load a branch of its own); all of a step's loads after its barrier and before the
// products, not the next step's around them, 5453 against 6166; BK 32 against 64 6166 against
// 7403; the weights' raw words loaded before the products and dequantized when stored (Q4_0
// only) 6887, 7673 with the activations' unaligned path removed too (not kept: one type).
// Two shared buffers with one barrier a step (BK 32) 6171 against 6166; 4 subgroups of 64 x 64
// (TM = TN = 4) 6233 (and 2 of 121 product cases failing). Earlier, on the H200 (branched
// loads, BK 32): 128 x 64 tiles 2811, 128 x 128 2513, 64 x 64 2348; weights dequantized to f16
// by a pass of their own before the product, 1975.
#extension GL_GOOGLE_include_directive : enable
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#include "common.glsl"
// 2 x SGN subgroups: 2 along the weight rows by SGN (2 or 4, a specialization constant)
// along the activation rows.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint SGN = 4u;
layout(binding = 0) buffer YF { float yf[]; };
layout(binding = 1) readonly buffer AW { uint A[]; };
layout(binding = 1) readonly buffer AW4 { uvec4 A4[]; };  // the same weights, 16 bytes at a time
layout(binding = 2) readonly buffer B { uint b[]; };
layout(binding = 2) readonly buffer B4 { vec4 b4[]; };
#include "dequant.glsl"
#ifndef WTYPE
#define WTYPE T_F16
#endif
layout(push_constant) uniform P {
    uint a_off, a_nb1, a_nb2, a_nb3, split;  // split: dequant.glsl's split_nb
    uint b_off, b_nb1, b_nb2, b_nb3;
    uint y_off, y_nb1, y_nb2, y_nb3;
    uint K, N, M, B2, r2, r3, mode, i_base, B3;
} p;

#ifndef TM
#define TM 4u  // 16 x 16 matrices per subgroup along the weight rows
#endif
#ifndef TN
#define TN 2u  // and along the activation rows
#endif
#ifndef BK
#define BK 64u  // the step along K (kCmStep in vulkan_device.h)
#endif
const uint BM = 32u * TM, BN = 16u * TN * SGN;  // the workgroup's tile
const uint LD = BK / 4u + 2u;             // shared rows, in 4-half vectors
shared f16vec4 tile_a[BM * LD];           // [weight row][k / 4]
shared f16vec4 tile_b[BN * LD];           // [activation row][k / 4]
shared float stage[2u * SGN * 256u];      // a subgroup's 16 x 16 edge result

// A step's loads per invocation, for subgroups of 32 (wider ones leave some unused): groups
// of 8 weights (held as f16) and quads of 4 activations (held as loaded).
const uint NA = BM * (BK / 8u) / (64u * SGN), NB = BN * (BK / 4u) / (64u * SGN);
#define WREG f16vec4
#include "tile_loads.glsl"

f16vec4 halves(vec4 x) { return f16vec4(clamp(x, vec4(-65504.0), vec4(65504.0))); }

// The registers into the shared tiles, the activations rounded to f16.
void store_tiles(uint t, uint wg, uint j0) {
    [[unroll]] for (uint u = 0u; u < NA; ++u) {
        const uint q = t + u * wg;
        if (q < BM * (BK / 8u)) {
            const uint r = q / (BK / 8u), g = q % (BK / 8u);
            tile_a[r * LD + 2u * g] = ra[u][0];
            tile_a[r * LD + 2u * g + 1u] = ra[u][1];
        }
    }
    [[unroll]] for (uint u = 0u; u < NB; ++u) {
        const uint q = t + u * wg;
        if (q < BN * (BK / 4u)) {
            const uint r = q / (BK / 4u);
            tile_b[r * LD + q % (BK / 4u)] = j0 + r < p.M ? halves(rb[u]) : f16vec4(0.0);
        }
    }
}

void main() {
    split_nb = p.split;
    const uint t = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    const uint sg = gl_SubgroupID, sm = sg % 2u, sn = sg / 2u;
    const uint i0 = gl_WorkGroupID.x * BM, j0 = gl_WorkGroupID.y * BN;
    const uint i2 = gl_WorkGroupID.z % p.B2, i3 = gl_WorkGroupID.z / p.B2;
    const uint abase = p.a_off + (i2 / p.r2) * p.a_nb2 + (i3 / p.r3) * p.a_nb3;
    const uint bbase = p.b_off + i2 * p.b_nb2 + i3 * p.b_nb3;
    const bool vec = ((bbase | p.b_nb1) & 15u) == 0u;
    const bool avec = WTYPE == T_F16 && ((abase | p.a_nb1) & 15u) == 0u;  // f16 rows: 8 halves a load

    coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> acc[TM][TN];
    [[unroll]] for (uint i = 0u; i < TM; ++i)
        [[unroll]] for (uint j = 0u; j < TN; ++j)
            acc[i][j] = coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0);

    load_weights(0u, t, wg, abase, i0, avec);
    load_acts(0u, t, wg, bbase, j0, vec);
    for (uint k0 = 0u; k0 < p.K; k0 += BK) {
        barrier();  // the previous step's tiles are read
        store_tiles(t, wg, j0);
        barrier();
        // The next step's activations load while this step's products run, its weights
        // after them (dequantized as they come, they would hold the products back); the
        // last step loads its own again, unused.
        const uint kn = min(k0 + BK, p.K - BK);
        load_acts(kn, t, wg, bbase, j0, vec);
        [[unroll]] for (uint kk = 0u; kk < BK / 4u; kk += 4u) {
            coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> ma[TM];
            coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> mb[TN];
            [[unroll]] for (uint i = 0u; i < TM; ++i)
                coopMatLoad(ma[i], tile_a, (16u * (TM * sm + i)) * LD + kk, LD, gl_CooperativeMatrixLayoutRowMajor);
            [[unroll]] for (uint j = 0u; j < TN; ++j)
                coopMatLoad(mb[j], tile_b, (16u * (TN * sn + j)) * LD + kk, LD, gl_CooperativeMatrixLayoutColumnMajor);
            [[unroll]] for (uint i = 0u; i < TM; ++i)
                [[unroll]] for (uint j = 0u; j < TN; ++j) acc[i][j] = coopMatMulAdd(ma[i], mb[j], acc[i][j]);
        }
        load_weights(kn, t, wg, abase, i0, avec);
    }

    // Result (weight row i, activation row j) is y's element j * y_nb1 / 4 + i: column-major.
    const uint ybase = (p.y_off + i2 * p.y_nb2 + i3 * p.y_nb3) >> 2, ystride = p.y_nb1 >> 2;
    [[unroll]] for (uint i = 0u; i < TM; ++i)
        [[unroll]] for (uint j = 0u; j < TN; ++j) {
            const uint ri = i0 + 16u * (TM * sm + i), cj = j0 + 16u * (TN * sn + j);
            if (ri >= p.N || cj >= p.M) continue;
            if (ri + 16u <= p.N && cj + 16u <= p.M) {
                coopMatStore(acc[i][j], yf, ybase + cj * ystride + ri, ystride, gl_CooperativeMatrixLayoutColumnMajor);
                continue;
            }
            coopMatStore(acc[i][j], stage, 256u * sg, 16u, gl_CooperativeMatrixLayoutColumnMajor);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint e = gl_SubgroupInvocationID; e < 256u; e += gl_SubgroupSize) {
                const uint c = e / 16u, r = e % 16u;
                if (ri + r < p.N && cj + c < p.M) yf[ybase + (cj + c) * ystride + ri + r] = stage[256u * sg + e];
            }
            subgroupBarrier();
        }
}
