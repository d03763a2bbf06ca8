// Flash attention on the GPU, two kernels by the number of query rows:
//
// - Decoding (a few rows): a block takes one query row, one KV head and every query head that
//   shares it (grouped-query attention reads each key once per group, not once per head), and a
//   range of keys. Tiles of keys are staged in shared memory; threads compute the scores of
//   (head, key) pairs, one warp per head updates the online softmax, and each thread
//   accumulates its (head, element) outputs. The keys are split across blocks until the GPU
//   has a few blocks per multiprocessor; a second kernel merges the splits' partial results.
// - Prompts (many rows): a block of 4 warps takes 64 query rows of one head; each warp's 16 rows
//   run on tensor cores (mma.sync m16n8k16, f16 inputs, f32 accumulation): S = Q K^T, the online
//   softmax in registers, then O += P V with P taken straight from S's accumulators. Tiles whose
//   every mask entry is -inf are skipped, so a causal prompt does half the work.
//
// The KV cache may be F16, F32 or Q8_0; tiles are converted to the kernel's element type while
// they are staged. Tensor cores round the queries and the probabilities to f16 (a normalized
// error near 1e-7 against exact attention), so an F32 cache, asked for exactness, always takes
// the decoding kernel's f32 arithmetic.
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "backends/cuda/common.cuh"
#include "backends/cuda/device_math.cuh"
#include "backends/cuda/ops.h"

namespace tessera::cuda {

namespace {

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
};

// The row index of (query head h, position i, sequence s): the merge kernel's order.
__device__ __forceinline__ int64_t row_of(const Args& a, int64_t h, int64_t i, int64_t s) {
    return (s * a.q.ne[1] + i) * a.q.ne[2] + h;
}

__device__ __forceinline__ float* out_row(const Args& a, int64_t h, int64_t i, int64_t s) {
    return reinterpret_cast<float*>(a.out.data + h * a.out.nb[1] + i * a.out.nb[2] + s * a.out.nb[3]);
}

// ---- decoding ----

constexpr int kDecThreads = 128;
constexpr int kDecWarps = kDecThreads / kWarp;
constexpr int kDecKeys = 32;  // keys per tile: one per lane in the softmax step
constexpr int kDecHeads = 8;  // query heads per block
constexpr int kMaxHead = 256;
constexpr int kDecOut = kDecHeads * kMaxHead / kDecThreads;  // outputs per thread

// Shared memory of the decoding kernel: the queries, one K or V tile (row pitch odd in words, so
// threads on consecutive keys hit different banks), the scores, and each head's softmax state.
size_t decode_smem(int d_max) {
    const size_t pitch = static_cast<size_t>(d_max) + 1;
    return (static_cast<size_t>(kDecHeads) * d_max + kDecKeys * pitch + kDecHeads * kDecKeys + 3 * kDecHeads) *
           sizeof(float);
}

// Staging a tile of F16 rows into shared memory as floats: every thread's 16-byte loads are
// issued together (kept in registers), then converted and stored, so a tile costs one memory
// latency, not one per load.
constexpr int kStageLoads = kDecKeys * kMaxHead / 8 / kDecThreads;  // per thread, at most

struct StagedRows {
    uint4 r[kStageLoads];
};

__device__ __forceinline__ void load_rows(StagedRows& st, const char* base, int64_t nb1, int64_t jt, int nt, int D) {
    const int per_row = D / 8, total = nt * per_row;
#pragma unroll
    for (int u = 0; u < kStageLoads; ++u) {
        const int idx = threadIdx.x + u * kDecThreads;
        if (idx < total)
            st.r[u] = __ldg(reinterpret_cast<const uint4*>(base + (jt + idx / per_row) * nb1) + idx % per_row);
    }
}

__device__ __forceinline__ void store_rows(const StagedRows& st, float* tile, int pitch, int nt, int D) {
    const int per_row = D / 8, total = nt * per_row;
#pragma unroll
    for (int u = 0; u < kStageLoads; ++u) {
        const int idx = threadIdx.x + u * kDecThreads;
        if (idx < total) {
            const __half2* h = reinterpret_cast<const __half2*>(&st.r[u]);
            float* dst = tile + (idx / per_row) * pitch + (idx % per_row) * 8;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const float2 f = __half22float2(h[i]);
                dst[2 * i] = f.x;
                dst[2 * i + 1] = f.y;
            }
        }
    }
}

// Any other rows (F32, Q8_0, unaligned F16): eight elements in flight per thread.
__device__ __forceinline__ void stage_rows(float* tile, int pitch, const char* base, int64_t nb1, DType t, int64_t jt,
                                           int nt, int D) {
    const int total = nt * D;
    for (int b = 0; b < total; b += 8 * kDecThreads) {
        float v[8];
#pragma unroll
        for (int u = 0; u < 8; ++u) {
            const int idx = b + threadIdx.x + u * kDecThreads;
            if (idx < total) v[u] = kv_at(base + (jt + idx / D) * nb1, t, idx % D);
        }
#pragma unroll
        for (int u = 0; u < 8; ++u) {
            const int idx = b + threadIdx.x + u * kDecThreads;
            if (idx < total) tile[(idx / D) * pitch + idx % D] = v[u];
        }
    }
}

// Grid: x = S * n_q * H_kv * n_hgroups, y = n_splits.
__global__ void __launch_bounds__(kDecThreads) k_attn_decode(Args a) {
    pdl_wait();  // launched by launch_dependent (common.cuh)
    pdl_trigger();
    extern __shared__ float smem[];
    const int t = threadIdx.x, lane = t % kWarp, warp = t / kWarp;
    const int D = static_cast<int>(a.q.ne[0]), Dv = static_cast<int>(a.v.ne[0]);
    const int d_max = max(D, Dv), pitch = d_max + 1;
    float* qs = smem;                          // [kDecHeads][d_max]
    float* tile = qs + kDecHeads * d_max;      // [kDecKeys][pitch]
    float* sc = tile + kDecKeys * pitch;       // [kDecHeads][kDecKeys]
    float* m_run = sc + kDecHeads * kDecKeys;  // [kDecHeads]
    float* l_run = m_run + kDecHeads;
    float* corr = l_run + kDecHeads;

    const int64_t H_kv = a.k.ne[2], n_q = a.q.ne[1];
    int64_t b = blockIdx.x;
    const int hg = static_cast<int>(b % a.n_hgroups);
    b /= a.n_hgroups;
    const int64_t hk = b % H_kv;
    b /= H_kv;
    const int64_t i = b % n_q, s = b / n_q;
    const int g0 = hg * kDecHeads;
    const int gn = min(kDecHeads, a.group - g0);
    const int64_t h0 = hk * a.group + g0;  // first query head

    for (int idx = t; idx < gn * D; idx += kDecThreads) {
        const int g = idx / D, e = idx % D;
        qs[g * d_max + e] =
            reinterpret_cast<const float*>(a.q.data + i * a.q.nb[1] + (h0 + g) * a.q.nb[2] + s * a.q.nb[3])[e];
    }
    if (t < kDecHeads) m_run[t] = -INFINITY, l_run[t] = 0.0f;

    float acc[kDecOut];
#pragma unroll
    for (int r = 0; r < kDecOut; ++r) acc[r] = 0.0f;

    const char* kbase = a.k.data + hk * a.k.nb[2] + s * a.k.nb[3];
    const char* vbase = a.v.data + hk * a.v.nb[2] + s * a.v.nb[3];
    const char* mrow = a.mask ? a.mask + i * a.mask_nb1 : nullptr;
    const int64_t n_kv = a.k.ne[1];
    const int64_t j0 = blockIdx.y * a.chunk, j1 = min(n_kv, j0 + a.chunk);

    for (int64_t jt = j0; jt < j1; jt += kDecKeys) {
        const int nt = static_cast<int>(min(static_cast<int64_t>(kDecKeys), j1 - jt));
        // Tiles the mask hides entirely cost nothing.
        bool visible = t < nt && (!mrow || mask_at(mrow, a.mask_f16, jt + t) != -INFINITY);
        if (!__syncthreads_or(visible)) continue;

        // K and V of the tile are loaded together; V waits in registers while the scores are
        // computed.
        StagedRows k_regs, v_regs;
        if (a.k_vec) {
            load_rows(k_regs, kbase, a.k.nb[1], jt, nt, D);
            if (a.v_vec) load_rows(v_regs, vbase, a.v.nb[1], jt, nt, Dv);
            store_rows(k_regs, tile, pitch, nt, D);
        } else {
            if (a.v_vec) load_rows(v_regs, vbase, a.v.nb[1], jt, nt, Dv);
            stage_rows(tile, pitch, kbase, a.k.nb[1], a.kt, jt, nt, D);
        }
        __syncthreads();

        for (int p = t; p < gn * kDecKeys; p += kDecThreads) {
            const int g = p / kDecKeys, j = p % kDecKeys;
            float x = -INFINITY;
            const float mv = j < nt && mrow ? mask_at(mrow, a.mask_f16, jt + j) : 0.0f;
            if (j < nt && mv != -INFINITY) {
                const float* qg = qs + g * d_max;
                const float* kr = tile + j * pitch;
                float d = 0.0f;
#pragma unroll 8
                for (int e = 0; e < D; ++e) d += qg[e] * kr[e];
                x = d * a.scale;
                if (a.softcap > 0.0f) x = a.softcap * tanhf(x / a.softcap);
                x += mv;
            }
            sc[g * kDecKeys + j] = x;
        }
        __syncthreads();

        // One warp per head: the tile's maximum, the probabilities and the running sum.
        for (int g = warp; g < gn; g += kDecWarps) {
            const float x = sc[g * kDecKeys + lane];
            float mx = x;
            for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            const float m_old = m_run[g];
            const float m_new = fmaxf(m_old, mx);
            const float p = m_new == -INFINITY || x == -INFINITY ? 0.0f : __expf(x - m_new);
            float sum = p;
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            sc[g * kDecKeys + lane] = p;
            __syncwarp();
            if (lane == 0) {
                const float c = m_old == -INFINITY ? (m_new == -INFINITY ? 1.0f : 0.0f) : __expf(m_old - m_new);
                corr[g] = c;
                l_run[g] = l_run[g] * c + sum;
                m_run[g] = m_new;
            }
        }
        // The V tile replaces the K tile meanwhile.
        if (a.v_vec)
            store_rows(v_regs, tile, pitch, nt, Dv);
        else
            stage_rows(tile, pitch, vbase, a.v.nb[1], a.vt, jt, nt, Dv);
        __syncthreads();

#pragma unroll
        for (int r = 0; r < kDecOut; ++r) {
            const int idx = t + kDecThreads * r;
            const int g = idx / Dv, e = idx % Dv;
            if (g >= gn) break;
            float sum = 0.0f;
            for (int j = 0; j < nt; ++j) sum += sc[g * kDecKeys + j] * tile[j * pitch + e];
            acc[r] = acc[r] * corr[g] + sum;
        }
        __syncthreads();
    }

#pragma unroll
    for (int r = 0; r < kDecOut; ++r) {
        const int idx = t + kDecThreads * r;
        const int g = idx / Dv, e = idx % Dv;
        if (g >= gn) break;
        if (a.n_splits == 1) {
            const float l = l_run[g];
            out_row(a, h0 + g, i, s)[e] = l > 0.0f ? acc[r] / l : 0.0f;
        } else {
            float* p = a.partial + (static_cast<int64_t>(blockIdx.y) * a.n_rows + row_of(a, h0 + g, i, s)) * (Dv + 2);
            if (e == 0) p[0] = m_run[g], p[1] = l_run[g];
            p[2 + e] = acc[r];
        }
    }
}

// One block per row merges the splits' partial results. Every split's maximum and sum are read
// at once (threads over splits) and give the splits' weights exp(m_s - m); then the threads
// split into parts of the row's elements (kMergeThreads / Dv parts when Dv is smaller), each
// part summing its element over every P-th split with eight loads in flight, and the parts are
// added in a fixed order: a row's merge is a handful of memory latencies, whatever the splits.
constexpr int kMergeThreads = 256;

size_t merge_smem(int n_splits) { return (2 * static_cast<size_t>(n_splits) + kMergeThreads) * sizeof(float); }

// Dynamic shared memory: merge_smem(n_splits).
__global__ void __launch_bounds__(kMergeThreads) k_attn_merge(Args a) {
    pdl_wait();  // launched by launch_dependent (common.cuh)
    pdl_trigger();
    extern __shared__ float merge_buf[];
    __shared__ float scratch[32];
    const int n = a.n_splits, t = threadIdx.x;
    float* w = merge_buf;         // [n]: each split's maximum, then its weight
    float* ls = merge_buf + n;    // [n]: each split's sum
    float* part_sums = ls + n;    // [kMergeThreads]
    const int64_t row = blockIdx.x;
    const int64_t H = a.q.ne[2], n_q = a.q.ne[1];
    const int64_t h = row % H, i = (row / H) % n_q, s = row / (H * n_q);
    const int Dv = static_cast<int>(a.v.ne[0]);
    const int64_t stride = a.n_rows * (Dv + 2);
    const float* base = a.partial + row * (Dv + 2);

    float m = -INFINITY;
    for (int sp = t; sp < n; sp += kMergeThreads) {
        const float ms = base[sp * stride], l = base[sp * stride + 1];
        w[sp] = ms;
        ls[sp] = l;
        m = fmaxf(m, ms);
    }
    m = block_reduce<true>(m, scratch);  // its barriers publish w and ls
    float l = 0.0f;
    for (int sp = t; sp < n; sp += kMergeThreads) {
        const float e = w[sp] == -INFINITY ? 0.0f : __expf(w[sp] - m);
        w[sp] = e;
        l += ls[sp] * e;
    }
    l = block_reduce<false>(l, scratch);  // and these publish the weights
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;

    const int P = Dv >= kMergeThreads ? 1 : kMergeThreads / Dv;  // parts over the splits
    const int part = t / Dv;
    float* o = out_row(a, h, i, s);
    for (int e = t % Dv; e < Dv && part < P; e += kMergeThreads) {
        const float* p = base + 2 + e;
        float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        int sp = part;
        for (; sp + 7 * P < n; sp += 8 * P) {
#pragma unroll
            for (int u = 0; u < 8; ++u) acc[u] += w[sp + u * P] * p[(sp + u * P) * stride];
        }
        for (; sp < n; sp += P) acc[0] += w[sp] * p[sp * stride];
        const float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        if (P == 1)
            o[e] = sum * inv;
        else
            part_sums[part * Dv + e] = sum;
    }
    if (P == 1) return;
    __syncthreads();
    if (t < Dv) {
        float sum = 0.0f;
        for (int q = 0; q < P; ++q) sum += part_sums[q * Dv + t];
        o[t] = sum * inv;
    }
}

// ---- prompts, on tensor cores ----

constexpr int kPromptWarps = 4;
constexpr int kPromptRows = 16 * kPromptWarps;  // query rows per block
constexpr int64_t kMinPromptRows = 9;           // query positions from which prompts take this kernel

// Keys per tile: the tiles of K and V (keys x DP each) fit in 48 KiB.
template <int DP>
constexpr int kPromptKeys = DP > 128 ? 32 : 64;

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

// F16 K and V rows of whole 16-byte chunks: every thread's loads are issued before any store.
template <int DP, int BC>
__device__ __forceinline__ void stage_tile_vec(__half* ks, __half* vs, const char* kbase, const char* vbase,
                                               int64_t k_nb1, int64_t v_nb1, int64_t jt, int64_t n_kv, int D, int Dv) {
    constexpr int kChunks = DP / 8, kPer = BC * kChunks / (kPromptWarps * kWarp);
    uint4 kr[kPer], vr[kPer];
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
        const int idx = threadIdx.x + u * kPromptWarps * kWarp;
        const int j = idx / kChunks, c = idx % kChunks;
        const bool in = jt + j < n_kv;
        kr[u] = in && 8 * c < D ? __ldg(reinterpret_cast<const uint4*>(kbase + (jt + j) * k_nb1) + c) : uint4{};
        vr[u] = in && 8 * c < Dv ? __ldg(reinterpret_cast<const uint4*>(vbase + (jt + j) * v_nb1) + c) : uint4{};
    }
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
        const int idx = threadIdx.x + u * kPromptWarps * kWarp;
        const int j = idx / kChunks, c = idx % kChunks;
        *reinterpret_cast<uint4*>(ks + j * (DP + 8) + 8 * c) = kr[u];
        *reinterpret_cast<uint4*>(vs + j * (DP + 8) + 8 * c) = vr[u];
    }
}

// Any other K and V (F32, Q8_0, unaligned F16): pairs of elements, converted.
template <int DP, int BC>
__device__ __forceinline__ void stage_tile(__half* ks, __half* vs, const Args& a, const char* kbase, const char* vbase,
                                           int64_t jt, int64_t n_kv, int D, int Dv) {
    for (int idx = threadIdx.x; idx < BC * (DP / 2); idx += kPromptWarps * kWarp) {
        const int j = idx / (DP / 2), e = 2 * (idx % (DP / 2));
        const bool in = jt + j < n_kv;
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

// vis[rb * gridDim.x + kt]: whether the mask leaves any entry of query rows
// [rb kPromptRows, (rb + 1) kPromptRows) x keys [kt bc, (kt + 1) bc) visible. Every head and
// sequence shares the mask, so this is scanned once per node, each thread's loads independent.
// Grid: (key tiles, row blocks).
__global__ void __launch_bounds__(256)
    k_attn_visible(const char* mask, int64_t mask_nb1, bool f16, int64_t n_q, int64_t n_kv, int bc, uint8_t* vis) {
    const int64_t i0 = static_cast<int64_t>(blockIdx.y) * kPromptRows, j0 = static_cast<int64_t>(blockIdx.x) * bc;
    bool visible = false;
    for (int idx = threadIdx.x; idx < kPromptRows * bc; idx += blockDim.x) {
        const int64_t r = i0 + idx / bc, j = j0 + idx % bc;
        if (r < n_q && j < n_kv) visible |= mask_at(mask + r * mask_nb1, f16, j) != -INFINITY;
    }
    visible = __syncthreads_or(visible);
    if (threadIdx.x == 0) vis[blockIdx.y * gridDim.x + blockIdx.x] = visible ? 1 : 0;
}

// Grid: (ceil(n_q / 64), H, S). DP: the head size rounded up to 64, 128 or 256 (Dv <= DP too).
template <int DP>
__global__ void __launch_bounds__(kPromptWarps* kWarp) k_attn_prompt(Args a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    constexpr int BC = kPromptKeys<DP>;
    constexpr int KP = DP + 8;  // pitch in halves: rows 4 banks apart, so fragment loads are conflict-free
    __shared__ __align__(16) __half ks[BC * KP];  // [key][element]
    __shared__ __align__(16) __half vs[BC * KP];  // [key][element]

    const int t = threadIdx.x, lane = t % kWarp, warp = t / kWarp;
    const int gq = lane / 4, tq = lane % 4;  // the fragment coordinates of this lane
    const int D = static_cast<int>(a.q.ne[0]), Dv = static_cast<int>(a.v.ne[0]);
    const int64_t n_q = a.q.ne[1], n_kv = a.k.ne[1];
    const int64_t h = blockIdx.y, s = blockIdx.z;
    const int64_t hk = h / a.group;
    const int64_t i0 = static_cast<int64_t>(blockIdx.x) * kPromptRows;
    const int64_t r0 = i0 + 16 * warp + gq, r1 = r0 + 8;  // this lane's two rows

    // Q as A fragments, scaled, rows past n_q and elements past D zero.
    uint32_t qa[DP / 16][4];
    {
        const float* q0 =
            r0 < n_q ? reinterpret_cast<const float*>(a.q.data + r0 * a.q.nb[1] + h * a.q.nb[2] + s * a.q.nb[3])
                     : nullptr;
        const float* q1 =
            r1 < n_q ? reinterpret_cast<const float*>(a.q.data + r1 * a.q.nb[1] + h * a.q.nb[2] + s * a.q.nb[3])
                     : nullptr;
        auto at = [&](const float* row, int e) { return row && e < D ? row[e] * a.scale : 0.0f; };
#pragma unroll
        for (int kk = 0; kk < DP / 16; ++kk) {
            const int e = 16 * kk + 2 * tq;
            qa[kk][0] = pack_half2(at(q0, e), at(q0, e + 1));
            qa[kk][1] = pack_half2(at(q1, e), at(q1, e + 1));
            qa[kk][2] = pack_half2(at(q0, e + 8), at(q0, e + 9));
            qa[kk][3] = pack_half2(at(q1, e + 8), at(q1, e + 9));
        }
    }
    const char* m0 = a.mask && r0 < n_q ? a.mask + r0 * a.mask_nb1 : nullptr;
    const char* m1 = a.mask && r1 < n_q ? a.mask + r1 * a.mask_nb1 : nullptr;
    const bool no_mask = a.mask == nullptr;

    float o[DP / 8][4];
#pragma unroll
    for (int d = 0; d < DP / 8; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
    float mx0 = -INFINITY, mx1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

    const char* kbase = a.k.data + hk * a.k.nb[2] + s * a.k.nb[3];
    const char* vbase = a.v.data + hk * a.v.nb[2] + s * a.v.nb[3];

    for (int64_t jt = 0; jt < n_kv; jt += BC) {
        // Skip the tile when the mask hides all of it from all of the block's rows.
        if (!no_mask && a.vis && !a.vis[blockIdx.x * a.vis_tiles + jt / BC]) continue;

        // Stage K and V as halves; keys past n_kv and elements past D are zero.
        if (a.k_vec && a.v_vec)
            stage_tile_vec<DP, BC>(ks, vs, kbase, vbase, a.k.nb[1], a.v.nb[1], jt, n_kv, D, Dv);
        else
            stage_tile<DP, BC>(ks, vs, a, kbase, vbase, jt, n_kv, D, Dv);
        __syncthreads();

        // S = Q K^T: 16 rows x BC keys per warp.
        float sacc[BC / 8][4];
#pragma unroll
        for (int n = 0; n < BC / 8; ++n) {
            sacc[n][0] = sacc[n][1] = sacc[n][2] = sacc[n][3] = 0.0f;
            const __half* kr = ks + (8 * n + gq) * KP + 2 * tq;
#pragma unroll
            for (int kk = 0; kk < DP / 16; ++kk) {
                const uint32_t b0 = *reinterpret_cast<const uint32_t*>(kr + 16 * kk);
                const uint32_t b1 = *reinterpret_cast<const uint32_t*>(kr + 16 * kk + 8);
                mma_16816(sacc[n], qa[kk], b0, b1);
            }
        }

        // Soft-cap, mask, and the online softmax of this lane's two rows (the 4 lanes of a
        // quad share a row).
        float tmax0 = -INFINITY, tmax1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int64_t j = jt + 8 * n + 2 * tq + (c & 1);
                float x = sacc[n][c];
                if (a.softcap > 0.0f) x = a.softcap * tanhf(x / a.softcap);
                const char* mr = c < 2 ? m0 : m1;
                if (j >= n_kv)
                    x = -INFINITY;
                else if (mr)
                    x += mask_at(mr, a.mask_f16, j);
                else if (!no_mask)
                    x = -INFINITY;  // a row past n_q
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
        const float c0 = mx0 == -INFINITY ? (new0 == -INFINITY ? 1.0f : 0.0f) : __expf(mx0 - new0);
        const float c1 = mx1 == -INFINITY ? (new1 == -INFINITY ? 1.0f : 0.0f) : __expf(mx1 - new1);
        mx0 = new0, mx1 = new1;
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int n = 0; n < BC / 8; ++n) {
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
#pragma unroll
        for (int d = 0; d < DP / 8; ++d) {
            o[d][0] *= c0, o[d][1] *= c0;
            o[d][2] *= c1, o[d][3] *= c1;
        }

        // O += P V, P from the score accumulators: keys 16 kk .. 16 kk + 15 are score tiles 2 kk
        // and 2 kk + 1.
#pragma unroll
        for (int kk = 0; kk < BC / 16; ++kk) {
            const uint32_t pa[4] = {pack_half2(sacc[2 * kk][0], sacc[2 * kk][1]),
                                    pack_half2(sacc[2 * kk][2], sacc[2 * kk][3]),
                                    pack_half2(sacc[2 * kk + 1][0], sacc[2 * kk + 1][1]),
                                    pack_half2(sacc[2 * kk + 1][2], sacc[2 * kk + 1][3])};
#pragma unroll
            for (int d = 0; d < DP / 8; ++d) {
                uint32_t b0, b1;
                ldmatrix_x2_trans(vs + (16 * kk + (lane & 15)) * KP + 8 * d, b0, b1);
                mma_16816(o[d], pa, b0, b1);
            }
        }
        __syncthreads();  // the tiles are read before the next ones are staged
    }

#pragma unroll
    for (int o2 = 1; o2 < 4; o2 <<= 1) {
        l0 += __shfl_xor_sync(0xffffffffu, l0, o2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, o2);
    }
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    float* y0 = r0 < n_q ? out_row(a, h, r0, s) : nullptr;
    float* y1 = r1 < n_q ? out_row(a, h, r1, s) : nullptr;
#pragma unroll
    for (int d = 0; d < DP / 8; ++d) {
        const int e = 8 * d + 2 * tq;
        if (y0 && e < Dv) y0[e] = o[d][0] * inv0;
        if (y0 && e + 1 < Dv) y0[e + 1] = o[d][1] * inv0;
        if (y1 && e < Dv) y1[e] = o[d][2] * inv1;
        if (y1 && e + 1 < Dv) y1[e + 1] = o[d][3] * inv1;
    }
#endif
}

bool prompt_kernel_runs() { return runs_sm80_code(reinterpret_cast<const void*>(k_attn_prompt<128>)); }

// ---- decoding on tensor cores ----
//
// A block takes one KV head of one sequence, 16 query rows that read it (a row is one of the
// group's query heads at one position, position by position: decoding one token with a group
// of 4 fills 4 of the 16) and a range of keys. Each staged tile holds 16 keys per warp; every
// warp runs the prompt kernel's steps on its 16 (S = Q K^T, the online softmax, O += P V) with a
// softmax state of its own, and the warps' states are merged in shared memory at the end. A
// token's attention then costs a few tensor-core instructions per 16 keys instead of a
// dot product per thread and key.
template <int DP>
constexpr int kDecMmaWarps = DP > 128 ? 2 : 4;

// Whether any entry of the mask rows of positions [i_lo, i_hi] over keys [jt, jt + BC) below
// j_end is visible, from this thread's share of them (the caller ORs across the block).
template <int BC, int NT>
__device__ __forceinline__ bool tile_visible(const Args& a, int64_t i_lo, int64_t i_hi, int64_t jt, int64_t j_end) {
    if (!a.mask) return true;
    bool visible = false;
    const int n = static_cast<int>(i_hi - i_lo + 1) * BC;
    for (int idx = threadIdx.x; idx < n; idx += NT) {
        const int64_t j = jt + idx % BC;
        if (j < j_end) visible |= mask_at(a.mask + (i_lo + idx / BC) * a.mask_nb1, a.mask_f16, j) != -INFINITY;
    }
    return visible;
}

// Grid: x = S * H_kv * ceil(n_q * group / 16), y = n_splits.
template <int DP>
__global__ void __launch_bounds__(kDecMmaWarps<DP>* kWarp) k_attn_decode_mma(Args a) {
    pdl_wait();  // launched by launch_dependent (common.cuh)
    pdl_trigger();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    constexpr int NW = kDecMmaWarps<DP>, NT = NW * kWarp, BC = 16 * NW;
    constexpr int KP = DP + 8;  // pitch in halves, as in the prompt kernel
    constexpr int kChunks = DP / 8, kPer = BC * kChunks / NT;
    // K and V tiles; at the end the warps' outputs meet in the same memory.
    __shared__ __align__(16) __half kv[2 * BC * KP];
    __shared__ __align__(16) __half qs[16 * KP];  // the block's 16 query rows, scaled
    __shared__ float wm[NW][16], wl[NW][16], row_m[16], row_l[16];
    static_assert(NW * 16 * DP * sizeof(float) <= sizeof(kv), "the warps' outputs fit in the tiles");
    __half* ks = kv;
    __half* vs = kv + BC * KP;

    const int t = threadIdx.x, lane = t % kWarp, warp = t / kWarp;
    const int gq = lane / 4, tq = lane % 4;
    const int D = static_cast<int>(a.q.ne[0]), Dv = static_cast<int>(a.v.ne[0]);
    const int64_t H_kv = a.k.ne[2], n_q = a.q.ne[1], n_kv = a.k.ne[1];
    const int64_t R = n_q * a.group;  // rows reading this KV head
    int64_t b = blockIdx.x;
    const int64_t n_rb = (R + 15) / 16;
    const int64_t rb = b % n_rb;
    b /= n_rb;
    const int64_t hk = b % H_kv, s = b / H_kv;
    const int64_t r0 = 16 * rb + gq, r1 = r0 + 8;  // this lane's two rows
    auto head_of = [&](int64_t r) { return hk * a.group + r % a.group; };

    // The block's query rows as halves in shared memory, loaded by every thread at once (the
    // first tile's barrier publishes them); rows past R and elements past D are zero.
    for (int idx = t; idx < 16 * (DP / 2); idx += NT) {
        const int rr = idx / (DP / 2), e = 2 * (idx % (DP / 2));
        const int64_t r = 16 * rb + rr;
        float2 v = make_float2(0.0f, 0.0f);
        if (r < R && e < D) {
            const float* row = reinterpret_cast<const float*>(a.q.data + (r / a.group) * a.q.nb[1] +
                                                              head_of(r) * a.q.nb[2] + s * a.q.nb[3]);
            v = a.q_pairs ? *reinterpret_cast<const float2*>(row + e)
                          : make_float2(row[e], e + 1 < D ? row[e + 1] : 0.0f);
        }
        *reinterpret_cast<__half2*>(qs + rr * KP + e) = __floats2half2_rn(v.x * a.scale, v.y * a.scale);
    }
    const char* m0 = a.mask && r0 < R ? a.mask + (r0 / a.group) * a.mask_nb1 : nullptr;
    const char* m1 = a.mask && r1 < R ? a.mask + (r1 / a.group) * a.mask_nb1 : nullptr;
    const int64_t i_lo = 16 * rb / a.group, i_hi = min(R - 1, 16 * rb + 15) / a.group;

    float o[DP / 8][4];
#pragma unroll
    for (int d = 0; d < DP / 8; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
    float mx0 = -INFINITY, mx1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

    const char* kbase = a.k.data + hk * a.k.nb[2] + s * a.k.nb[3];
    const char* vbase = a.v.data + hk * a.v.nb[2] + s * a.v.nb[3];
    const int64_t j0 = blockIdx.y * a.chunk, j1 = min(n_kv, j0 + a.chunk);

    for (int64_t jt = j0; jt < j1; jt += BC) {
        // Stage the tile unless the mask hides it from every row; keys from j1 on and elements
        // past D are zero. The barrier also keeps the last tile until every warp has read it.
        bool staged = false;
        if constexpr (kPer <= 8) {
            if (a.k_vec && a.v_vec) {
            uint4 kr[kPer], vr[kPer];  // the tile's loads and the mask's are in flight together
#pragma unroll
            for (int u = 0; u < kPer; ++u) {
                const int idx = t + u * NT, j = idx / kChunks, c = idx % kChunks;
                const bool in = jt + j < j1;
                kr[u] = in && 8 * c < D ? __ldg(reinterpret_cast<const uint4*>(kbase + (jt + j) * a.k.nb[1]) + c)
                                        : uint4{};
                vr[u] = in && 8 * c < Dv ? __ldg(reinterpret_cast<const uint4*>(vbase + (jt + j) * a.v.nb[1]) + c)
                                         : uint4{};
            }
            if (!__syncthreads_or(tile_visible<BC, NT>(a, i_lo, i_hi, jt, j1))) continue;
#pragma unroll
            for (int u = 0; u < kPer; ++u) {
                const int idx = t + u * NT, j = idx / kChunks, c = idx % kChunks;
                *reinterpret_cast<uint4*>(ks + j * KP + 8 * c) = kr[u];
                *reinterpret_cast<uint4*>(vs + j * KP + 8 * c) = vr[u];
            }
            staged = true;
            }
        }
        if (!staged) {
            if (!__syncthreads_or(tile_visible<BC, NT>(a, i_lo, i_hi, jt, j1))) continue;
            for (int idx = t; idx < BC * (DP / 2); idx += NT) {
                const int j = idx / (DP / 2), e = 2 * (idx % (DP / 2));
                const bool in = jt + j < j1;
                float2 kx = make_float2(0.0f, 0.0f), vx = make_float2(0.0f, 0.0f);
                if (in && e < D) {
                    const char* row = kbase + (jt + j) * a.k.nb[1];
                    kx = e + 1 < D ? kv_pair(row, a.kt, e, a.k_pairs) : make_float2(kv_at(row, a.kt, e), 0.0f);
                }
                if (in && e < Dv) {
                    const char* row = vbase + (jt + j) * a.v.nb[1];
                    vx = e + 1 < Dv ? kv_pair(row, a.vt, e, a.v_pairs) : make_float2(kv_at(row, a.vt, e), 0.0f);
                }
                *reinterpret_cast<__half2*>(ks + j * KP + e) = __floats2half2_rn(kx.x, kx.y);
                *reinterpret_cast<__half2*>(vs + j * KP + e) = __floats2half2_rn(vx.x, vx.y);
            }
        }
        __syncthreads();

        // S = Q K^T over this warp's 16 keys.
        float sacc[2][4];
#pragma unroll
        for (int n = 0; n < 2; ++n) {
            sacc[n][0] = sacc[n][1] = sacc[n][2] = sacc[n][3] = 0.0f;
            const __half* kr = ks + (16 * warp + 8 * n + gq) * KP + 2 * tq;
#pragma unroll
            for (int kk = 0; kk < DP / 16; ++kk) {
                uint32_t qa[4];
                ldmatrix_x4(qs + (lane & 15) * KP + 16 * kk + 8 * (lane >> 4), qa);
                const uint32_t b0 = *reinterpret_cast<const uint32_t*>(kr + 16 * kk);
                const uint32_t b1 = *reinterpret_cast<const uint32_t*>(kr + 16 * kk + 8);
                mma_16816(sacc[n], qa, b0, b1);
            }
        }
        float tmax0 = -INFINITY, tmax1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < 2; ++n) {
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int64_t j = jt + 16 * warp + 8 * n + 2 * tq + (c & 1);
                float x = sacc[n][c];
                if (a.softcap > 0.0f) x = a.softcap * tanhf(x / a.softcap);
                const char* mr = c < 2 ? m0 : m1;
                if (j >= j1)
                    x = -INFINITY;
                else if (mr)
                    x += mask_at(mr, a.mask_f16, j);
                else if (a.mask)
                    x = -INFINITY;  // a row past R
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
        const float c0 = mx0 == -INFINITY ? (new0 == -INFINITY ? 1.0f : 0.0f) : __expf(mx0 - new0);
        const float c1 = mx1 == -INFINITY ? (new1 == -INFINITY ? 1.0f : 0.0f) : __expf(mx1 - new1);
        mx0 = new0, mx1 = new1;
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int n = 0; n < 2; ++n) {
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

        // O += P V over the same 16 keys.
        const uint32_t pa[4] = {pack_half2(sacc[0][0], sacc[0][1]), pack_half2(sacc[0][2], sacc[0][3]),
                                pack_half2(sacc[1][0], sacc[1][1]), pack_half2(sacc[1][2], sacc[1][3])};
#pragma unroll
        for (int d = 0; d < DP / 8; ++d) {
            o[d][0] *= c0, o[d][1] *= c0;
            o[d][2] *= c1, o[d][3] *= c1;
            uint32_t b0, b1;
            ldmatrix_x2_trans(vs + (16 * warp + (lane & 15)) * KP + 8 * d, b0, b1);
            mma_16816(o[d], pa, b0, b1);
        }
    }

    // Merge the warps: each row's maximum and sum over the warps, then every warp's output
    // scaled to that maximum goes to shared memory, and the threads add the warps' outputs in a
    // fixed order (the same bits every run) as they write the rows out.
#pragma unroll
    for (int o2 = 1; o2 < 4; o2 <<= 1) {
        l0 += __shfl_xor_sync(0xffffffffu, l0, o2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, o2);
    }
    if (tq == 0) {
        wm[warp][gq] = mx0, wm[warp][gq + 8] = mx1;
        wl[warp][gq] = l0, wl[warp][gq + 8] = l1;
    }
    __syncthreads();  // also: every warp is done with the tiles
    float M0 = -INFINITY, M1 = -INFINITY;
#pragma unroll
    for (int w = 0; w < NW; ++w) M0 = fmaxf(M0, wm[w][gq]), M1 = fmaxf(M1, wm[w][gq + 8]);
    if (warp == 0 && tq == 0) {
        float L0 = 0.0f, L1 = 0.0f;
#pragma unroll
        for (int w = 0; w < NW; ++w) {
            L0 += wm[w][gq] == -INFINITY ? 0.0f : __expf(wm[w][gq] - M0) * wl[w][gq];
            L1 += wm[w][gq + 8] == -INFINITY ? 0.0f : __expf(wm[w][gq + 8] - M1) * wl[w][gq + 8];
        }
        row_m[gq] = M0, row_m[gq + 8] = M1;
        row_l[gq] = L0, row_l[gq + 8] = L1;
    }
    const float f0 = mx0 == -INFINITY ? 0.0f : __expf(mx0 - M0), f1 = mx1 == -INFINITY ? 0.0f : __expf(mx1 - M1);
    const int rows = static_cast<int>(min(static_cast<int64_t>(16), R - 16 * rb));
    float* slot = reinterpret_cast<float*>(kv) + warp * 16 * DP;  // [NW][16][DP]
#pragma unroll
    for (int d = 0; d < DP / 8; ++d) {
        if (gq < rows) *reinterpret_cast<float2*>(slot + gq * DP + 8 * d + 2 * tq) = make_float2(o[d][0] * f0, o[d][1] * f0);
        if (gq + 8 < rows)
            *reinterpret_cast<float2*>(slot + (gq + 8) * DP + 8 * d + 2 * tq) = make_float2(o[d][2] * f1, o[d][3] * f1);
    }
    __syncthreads();

    const float* outs = reinterpret_cast<const float*>(kv);
    const int64_t H = a.q.ne[2];
    for (int idx = t; idx < rows * Dv; idx += NT) {
        const int rr = idx / Dv, e = idx % Dv;
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < NW; ++w) sum += outs[(w * 16 + rr) * DP + e];
        const int64_t r = 16 * rb + rr, i = r / a.group, h = head_of(r);
        if (a.n_splits == 1) {
            const float l = row_l[rr];
            out_row(a, h, i, s)[e] = l > 0.0f ? sum / l : 0.0f;
        } else {
            float* p = a.partial + (static_cast<int64_t>(blockIdx.y) * a.n_rows + (s * n_q + i) * H + h) * (Dv + 2);
            if (e == 0) p[0] = row_m[rr], p[1] = row_l[rr];
            p[2 + e] = sum;
        }
    }
#endif
}

// F32 caches keep f32 arithmetic (the decoding kernel, at any number of rows): the prompt
// kernel rounds queries and probabilities to f16.
bool use_prompt_kernel(const Tensor& node) {
    const Tensor& q = *node.src[0];
    return q.ne[1] >= kMinPromptRows && node.src[1]->type != DType::F32 && node.src[2]->type != DType::F32 &&
           std::max(q.ne[0], node.src[2]->ne[0]) <= kMaxHead && prompt_kernel_runs();
}

int query_groups(const Tensor& node) {
    const int group = static_cast<int>(node.src[0]->ne[2] / node.src[1]->ne[2]);
    return (group + kDecHeads - 1) / kDecHeads;
}

// The head size a tensor-core kernel is compiled for: 64, 128 or 256.
int padded_head(const Tensor& node) {
    const int64_t d = std::max(node.src[0]->ne[0], node.src[2]->ne[0]);
    return d <= 64 ? 64 : d <= 128 ? 128 : 256;
}

// Decoding rows on tensor cores: F16 and Q8_0 caches (an F32 one keeps f32 arithmetic).
// TESSERA_CUDA_DECODE_F32=1 keeps every cache on the f32 decoding kernel, for comparison.
bool use_decode_mma(const Tensor& node) {
    static const bool f32_only = [] {
        const char* e = std::getenv("TESSERA_CUDA_DECODE_F32");
        return e && std::string(e) == "1";
    }();
    const Tensor& q = *node.src[0];
    return !f32_only && q.ne[1] < kMinPromptRows && node.src[1]->type != DType::F32 && node.src[2]->type != DType::F32 &&
           std::max(q.ne[0], node.src[2]->ne[0]) <= kMaxHead && prompt_kernel_runs();
}

int decode_mma_warps(const Tensor& node) {
    const int dp = padded_head(node);
    return dp <= 64 ? kDecMmaWarps<64> : dp <= 128 ? kDecMmaWarps<128> : kDecMmaWarps<256>;
}

// Blocks of one key split, and the keys of a tile (a split is whole tiles).
struct DecodeGrid {
    int64_t blocks;
    int tile;
};

DecodeGrid decode_grid(const Tensor& node) {
    const Tensor& q = *node.src[0];
    const Tensor& k = *node.src[1];
    if (use_decode_mma(node)) {
        const int64_t rows = q.ne[1] * (q.ne[2] / k.ne[2]);
        return {q.ne[3] * k.ne[2] * blocks_for(rows, 16), 16 * decode_mma_warps(node)};
    }
    return {q.ne[1] * q.ne[3] * k.ne[2] * query_groups(node), kDecKeys};
}

// Splits of the keys for the decoding kernels: enough blocks for a few per multiprocessor, each
// split at least a tile long.
int n_splits_for(const Tensor& node) {
    if (use_prompt_kernel(node)) return 1;
    static const int per_sm = [] {
        const char* e = std::getenv("TESSERA_CUDA_DECODE_BLOCKS");  // blocks per multiprocessor, for tuning
        return e && std::atoi(e) > 0 ? std::atoi(e) : 2;
    }();
    const DecodeGrid g = decode_grid(node);
    const int64_t want = std::max<int64_t>(1, (per_sm * multiprocessor_count() + g.blocks - 1) / g.blocks);
    const int64_t by_len = std::max<int64_t>(1, node.src[1]->ne[1] / g.tile);
    return static_cast<int>(std::min(want, by_len));
}

}  // namespace

bool flash_attn_supports(DType kv) { return kv == DType::F16 || kv == DType::F32 || kv == DType::Q8_0; }

int prompt_keys(const Tensor& node) {
    const int64_t dp = std::max(node.src[0]->ne[0], node.src[2]->ne[0]);
    return dp <= 64 ? kPromptKeys<64> : dp <= 128 ? kPromptKeys<128> : kPromptKeys<256>;
}

size_t flash_attn_work_size(const Tensor& node) {
    if (use_prompt_kernel(node))
        return node.src[3] ? static_cast<size_t>(blocks_for(node.src[0]->ne[1], kPromptRows) *
                                                 blocks_for(node.src[1]->ne[1], prompt_keys(node)))
                           : 0;
    const int splits = n_splits_for(node);
    if (splits == 1) return 0;
    const Tensor& q = *node.src[0];
    const int64_t rows = q.ne[1] * q.ne[2] * q.ne[3];
    return static_cast<size_t>(splits) * static_cast<size_t>(rows) * static_cast<size_t>(node.src[2]->ne[0] + 2) *
           sizeof(float);
}

void op_flash_attn(const Tensor& node, void* work, cudaStream_t stream) {
    Args a;
    a.q = view_of(*node.src[0]);
    a.k = view_of(*node.src[1]);
    a.v = view_of(*node.src[2]);
    a.out = view_of(node);
    a.kt = node.src[1]->type;
    a.vt = node.src[2]->type;
    auto pairs = [](const View& v, DType t) {
        return t == DType::F16 && v.nb[1] % 4 == 0 && reinterpret_cast<uintptr_t>(v.data) % 4 == 0;
    };
    a.k_pairs = pairs(a.k, a.kt);
    a.v_pairs = pairs(a.v, a.vt);
    auto vec = [](const View& v, DType t) {
        return t == DType::F16 && v.ne[0] % 8 == 0 && v.nb[1] % 16 == 0 &&
               reinterpret_cast<uintptr_t>(v.data) % 16 == 0;
    };
    a.k_vec = vec(a.k, a.kt);
    a.q_pairs = a.q.ne[0] % 2 == 0 && reinterpret_cast<uintptr_t>(a.q.data) % 8 == 0 && a.q.nb[1] % 8 == 0 &&
                a.q.nb[2] % 8 == 0 && a.q.nb[3] % 8 == 0;
    a.v_vec = vec(a.v, a.vt);
    const Tensor* mask = node.src[3];
    a.mask = mask ? static_cast<const char*>(mask->data) : nullptr;
    a.mask_nb1 = mask ? static_cast<int64_t>(mask->nb[1]) : 0;
    a.mask_f16 = mask && mask->type == DType::F16;
    a.scale = node.param_f(0);
    a.softcap = node.param_f(1);
    a.n_rows = a.q.ne[1] * a.q.ne[2] * a.q.ne[3];
    a.group = static_cast<int>(a.q.ne[2] / a.k.ne[2]);
    a.partial = static_cast<float*>(work);
    a.vis = nullptr;
    a.vis_tiles = 0;
    if (a.n_rows == 0) return;
    const int64_t n_q = a.q.ne[1], H = a.q.ne[2], S = a.q.ne[3];

    if (use_prompt_kernel(node)) {
        a.n_splits = 1;
        a.n_hgroups = 1;
        a.chunk = a.k.ne[1];
        const dim3 grid(static_cast<unsigned>(blocks_for(n_q, kPromptRows)), static_cast<unsigned>(H),
                        static_cast<unsigned>(S));
        if (a.mask && work) {  // without scratch, every tile is taken
            const int bc = prompt_keys(node);
            a.vis = static_cast<const uint8_t*>(work);
            a.vis_tiles = blocks_for(a.k.ne[1], bc);
            const dim3 vgrid(static_cast<unsigned>(a.vis_tiles), grid.x);
            k_attn_visible<<<vgrid, 256, 0, stream>>>(a.mask, a.mask_nb1, a.mask_f16, n_q, a.k.ne[1], bc,
                                                      static_cast<uint8_t*>(work));
        }
        const int64_t dp = std::max(a.q.ne[0], a.v.ne[0]);
        if (dp <= 64)
            k_attn_prompt<64><<<grid, kPromptWarps * kWarp, 0, stream>>>(a);
        else if (dp <= 128)
            k_attn_prompt<128><<<grid, kPromptWarps * kWarp, 0, stream>>>(a);
        else
            k_attn_prompt<256><<<grid, kPromptWarps * kWarp, 0, stream>>>(a);
        return;
    }

    const DecodeGrid g = decode_grid(node);
    a.n_hgroups = query_groups(node);
    a.n_splits = n_splits_for(node);
    a.chunk = blocks_for(blocks_for(a.k.ne[1], a.n_splits), g.tile) * g.tile;
    a.n_splits = static_cast<int>(blocks_for(a.k.ne[1], a.chunk));  // rounding may leave fewer
    const dim3 grid(static_cast<unsigned>(g.blocks), static_cast<unsigned>(a.n_splits));
    if (use_decode_mma(node)) {
        const int dp = padded_head(node), threads = decode_mma_warps(node) * kWarp;
        if (dp == 64)
            launch_dependent(k_attn_decode_mma<64>, grid, threads, 0, stream, a);
        else if (dp == 128)
            launch_dependent(k_attn_decode_mma<128>, grid, threads, 0, stream, a);
        else
            launch_dependent(k_attn_decode_mma<256>, grid, threads, 0, stream, a);
    } else {
        const int d_max = static_cast<int>(std::max(a.q.ne[0], a.v.ne[0]));
        launch_dependent(k_attn_decode, grid, kDecThreads, decode_smem(d_max), stream, a);
    }
    if (a.n_splits > 1)
        launch_dependent(k_attn_merge, static_cast<unsigned>(a.n_rows), kMergeThreads, merge_smem(a.n_splits), stream,
                         a);
}

}  // namespace tessera::cuda
