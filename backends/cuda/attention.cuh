// What the flash-attention kernels share (attention.cu: prompts and the dispatch;
// attention_decode.cu: the decoding kernels and the merge of their key splits): the kernels'
// arguments, element and mask reads, and the tensor-core fragments.
#pragma once

#include <cuda_fp16.h>

#include "backends/cuda/common.cuh"
#include "backends/cuda/device_math.cuh"

namespace tessera::cuda::attn {

constexpr int kWarp = 32;

struct BlockQ8_0 {
    __half d;
    int8_t qs[32];
};

// Element e of a K or V row.
__device__ __forceinline__ float kv_at(const char* row, DType t, int e) {
    if (t == DType::F16) return __half2float(reinterpret_cast<const __half*>(row)[e]);
    if (t == DType::F32) return reinterpret_cast<const float*>(row)[e];
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(row) + e / 32;
    return __half2float(b->d) * static_cast<float>(b->qs[e % 32]);
}

// Elements e and e + 1 of a row (e even); `pair_loads`: F16 rows whose pairs are 4-byte aligned.
__device__ __forceinline__ float2 kv_pair(const char* row, DType t, int e, bool pair_loads) {
    if (pair_loads) return __half22float2(reinterpret_cast<const __half2*>(row)[e / 2]);
    return make_float2(kv_at(row, t, e), kv_at(row, t, e + 1));
}

__device__ __forceinline__ float mask_at(const char* row, bool f16, int64_t j) {
    return f16 ? __half2float(reinterpret_cast<const __half*>(row)[j]) : reinterpret_cast<const float*>(row)[j];
}

struct Args {
    View q, k, v, out;
    DType kt, vt;
    bool k_pairs, v_pairs;  // 4-byte pair loads allowed
    bool k_vec, v_vec;      // F16 rows of whole 16-byte chunks, 16-byte aligned
    bool q_pairs;           // Q rows of an even length, 8-byte aligned: element pairs load as one
    const char* mask;
    int64_t mask_nb1;
    bool mask_f16;
    float scale, softcap;
    int64_t n_rows;  // n_q * H * S: a row is one query head of one query position
    int64_t chunk;   // keys per split (decoding)
    int n_splits;
    int group;       // query heads per KV head
    int n_hgroups;   // blocks per KV head along the query heads (decoding)
    float* partial;  // n_splits x n_rows x (Dv + 2) floats, when n_splits > 1
    // Prompts with a mask: per (block of kPromptRows query rows, key tile), whether the mask
    // leaves any entry of it visible (k_attn_visible); vis_tiles key tiles per row block. Null:
    // every tile is visited (hidden entries still weigh nothing).
    const uint8_t* vis;
    int64_t vis_tiles;
    // Decoding with its output also written as the int8 activations of the product after it
    // (mulmat.h's DecodeActs over the contiguous output, element f in act_qs[f], block f / 32 in
    // act_ds); null otherwise.
    int8_t* act_qs;
    float2* act_ds;
};

// Writes y, element f of a contiguous output, and, where a.act_qs is set, quantizes it with the
// 31 other elements of its 32-block, which the other lanes of the warp hold (lane = f % 32): a
// whole warp calls this, or none of it.
__device__ __forceinline__ void store_out(const Args& a, float* dst, float y) {
    *dst = y;
    if (a.act_qs) {
        const int64_t f = dst - reinterpret_cast<float*>(a.out.data);
        quantize_block32(y, a.act_qs + (f - f % 32), a.act_ds + f / 32);
    }
}

// The row index of (query head h, position i, sequence s): the merge kernel's order.
__device__ __forceinline__ int64_t row_of(const Args& a, int64_t h, int64_t i, int64_t s) {
    return (s * a.q.ne[1] + i) * a.q.ne[2] + h;
}

__device__ __forceinline__ float* out_row(const Args& a, int64_t h, int64_t i, int64_t s) {
    return reinterpret_cast<float*>(a.out.data + h * a.out.nb[1] + i * a.out.nb[2] + s * a.out.nb[3]);
}

constexpr int kMaxHead = 256;  // the largest head size of the kernels
constexpr int kDecKeys = 32;   // keys per tile of the f32 decoding kernel: one per lane
constexpr int kDecHeads = 8;   // query heads per block of the f32 decoding kernel

// Warps per block of the tensor-core decoding kernel, by the head size it is compiled for
// (64, 128 or 256); a staged tile holds 16 keys per warp.
constexpr int decode_mma_warps(int dp) { return dp > 128 ? 2 : 4; }

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
}

// D += A B for one 16x8x16 tile: A 16x16 (row-major, 4 registers), B 16x8 (column-major, 2
// registers), f16 inputs, f32 accumulators.
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// The B fragments of a 16x8 tile of V (keys x elements) from its row-major copy in shared
// memory: lanes 0-15 point at the tile's 16 key rows.
__device__ __forceinline__ void ldmatrix_x2_trans(const __half* row, uint32_t& b0, uint32_t& b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(b0), "=r"(b1) : "r"(addr));
#endif
}

// The A fragments of a 16x16 tile (row-major in shared memory): lanes 0-15 point at its rows'
// first 8 elements, lanes 16-31 at their last 8.
__device__ __forceinline__ void ldmatrix_x4(const __half* row, uint32_t (&a)[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
                 : "r"(addr));
#endif
}

// A tile of BC keys of any K and V (F32, Q8_0, unaligned F16) into shared memory as halves
// (row pitch DP + 8), by NT threads, pairs of elements converted; keys from j_end on and
// elements past D (Dv) are zero.
template <int DP, int BC, int NT>
__device__ __forceinline__ void stage_tile(__half* ks, __half* vs, const Args& a, const char* kbase, const char* vbase,
                                           int64_t jt, int64_t j_end, int D, int Dv) {
    for (int idx = threadIdx.x; idx < BC * (DP / 2); idx += NT) {
        const int j = idx / (DP / 2), e = 2 * (idx % (DP / 2));
        const bool in = jt + j < j_end;
        float2 kv = make_float2(0.0f, 0.0f), vv = make_float2(0.0f, 0.0f);
        if (in && e < D) {
            const char* kr = kbase + (jt + j) * a.k.nb[1];
            kv = e + 1 < D ? kv_pair(kr, a.kt, e, a.k_pairs) : make_float2(kv_at(kr, a.kt, e), 0.0f);
        }
        if (in && e < Dv) {
            const char* vr = vbase + (jt + j) * a.v.nb[1];
            vv = e + 1 < Dv ? kv_pair(vr, a.vt, e, a.v_pairs) : make_float2(kv_at(vr, a.vt, e), 0.0f);
        }
        *reinterpret_cast<__half2*>(ks + j * (DP + 8) + e) = __floats2half2_rn(kv.x, kv.y);
        *reinterpret_cast<__half2*>(vs + j * (DP + 8) + e) = __floats2half2_rn(vv.x, vv.y);
    }
}

// One step of the online softmax over a warp's score tiles (N tiles of 16 rows x 8 keys, as
// mma_16816 leaves them): soft-cap, mask, the tile's maximum of this lane's two rows (the 4
// lanes of a quad share a row), the scores turned into probabilities in place, and the running
// maxima and sums updated. Key j of tile n, column c is j0 + 8 n + 2 (lane % 4) + (c & 1); keys
// from j_end on weigh nothing, and so does every key of a row without a mask row (m0, m1 null)
// when the node has a mask (a row past the queries). Returns the factors the outputs of the two
// rows are scaled by, in c0 and c1.
template <int N>
__device__ __forceinline__ void online_softmax(float (&sacc)[N][4], const Args& a, int64_t j0, int64_t j_end,
                                               const char* m0, const char* m1, float& mx0, float& mx1, float& l0,
                                               float& l1, float& c0, float& c1) {
    const int tq = threadIdx.x % 4;
    float tmax0 = -INFINITY, tmax1 = -INFINITY;
#pragma unroll
    for (int n = 0; n < N; ++n) {
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            const int64_t j = j0 + 8 * n + 2 * tq + (c & 1);
            float x = sacc[n][c];
            if (a.softcap > 0.0f) x = a.softcap * tanhf(x / a.softcap);
            const char* mr = c < 2 ? m0 : m1;
            if (j >= j_end)
                x = -INFINITY;
            else if (mr)
                x += mask_at(mr, a.mask_f16, j);
            else if (a.mask)
                x = -INFINITY;
            sacc[n][c] = x;
            if (c < 2)
                tmax0 = fmaxf(tmax0, x);
            else
                tmax1 = fmaxf(tmax1, x);
        }
    }
#pragma unroll
    for (int o2 = 1; o2 < 4; o2 <<= 1) {
        tmax0 = fmaxf(tmax0, __shfl_xor_sync(0xffffffffu, tmax0, o2));
        tmax1 = fmaxf(tmax1, __shfl_xor_sync(0xffffffffu, tmax1, o2));
    }
    const float new0 = fmaxf(mx0, tmax0), new1 = fmaxf(mx1, tmax1);
    c0 = mx0 == -INFINITY ? (new0 == -INFINITY ? 1.0f : 0.0f) : __expf(mx0 - new0);
    c1 = mx1 == -INFINITY ? (new1 == -INFINITY ? 1.0f : 0.0f) : __expf(mx1 - new1);
    mx0 = new0, mx1 = new1;
    float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
    for (int n = 0; n < N; ++n) {
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            const float m = c < 2 ? new0 : new1;
            const float p = m == -INFINITY || sacc[n][c] == -INFINITY ? 0.0f : __expf(sacc[n][c] - m);
            sacc[n][c] = p;
            if (c < 2)
                sum0 += p;
            else
                sum1 += p;
        }
    }
    l0 = l0 * c0 + sum0;
    l1 = l1 * c1 + sum1;
}

// attention_decode.cu. Grids: the f32 kernel x = S * n_q * H_kv * n_hgroups, the tensor-core
// one x = S * H_kv * ceil(n_q * group / 16); y = n_splits for both. With n_splits > 1 they
// write a.partial, and launch_merge combines it into the output.
void launch_decode_f32(const Args& a, dim3 grid, cudaStream_t stream);
void launch_decode_mma(const Args& a, int dp, dim3 grid, cudaStream_t stream);
void launch_merge(const Args& a, cudaStream_t stream);

}  // namespace tessera::cuda::attn
