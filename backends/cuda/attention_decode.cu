// The decoding kernels of flash attention (a few query rows): an f32 kernel for F32 caches,
// a tensor-core kernel for F16 and Q8_0 ones, and the merge of their key splits. attention.cu
// picks between them and sizes the splits.
#include <cuda_fp16.h>

#include <algorithm>

#include "backends/cuda/attention.cuh"
#include "backends/cuda/device_math.cuh"

namespace tessera::cuda::attn {

namespace {

// ---- decoding ----

constexpr int kDecThreads = 128;
constexpr int kDecWarps = kDecThreads / kWarp;
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
    float* w = merge_buf;       // [n]: each split's maximum, then its weight
    float* ls = merge_buf + n;  // [n]: each split's sum
    float* part_sums = ls + n;  // [kMergeThreads]
    const int64_t row = blockIdx.x;
    const int H = static_cast<int>(a.q.ne[2]), n_q = static_cast<int>(a.q.ne[1]);  // 32-bit divisions
    const int h = static_cast<int>(blockIdx.x) % H, i = static_cast<int>(blockIdx.x) / H % n_q,
              s = static_cast<int>(blockIdx.x) / H / n_q;
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
            store_out(a, o + e, sum * inv);  // whole warps: Dv % 32 == 0 where quantized
        else
            part_sums[part * Dv + e] = sum;
    }
    if (P == 1) return;
    __syncthreads();
    if (t < Dv) {
        float sum = 0.0f;
        for (int q = 0; q < P; ++q) sum += part_sums[q * Dv + t];
        store_out(a, o + t, sum * inv);
    }
}

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
constexpr int kDecMmaWarps = decode_mma_warps(DP);

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

// Bytes of a K or V row of n elements, for prefetching.
__device__ __forceinline__ int row_bytes(DType t, int n) {
    return t == DType::F16 ? 2 * n : t == DType::F32 ? 4 * n : n / 32 * static_cast<int>(sizeof(BlockQ8_0));
}

// The K and V rows of keys [jt, jt + n) into L2 (as common.cuh's prefetch_l2, for rows with
// a stride), the block's threads sharing their 128-byte lines.
template <int NT>
__device__ __forceinline__ void prefetch_rows(const char* base, int64_t nb1, int bytes, int64_t jt, int n) {
    const int lines = (bytes + 127) / 128;
    for (int idx = threadIdx.x; idx < n * lines; idx += NT) {
        const char* p = base + (jt + idx / lines) * nb1 + 128 * (idx % lines);
        asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
    }
}

// Grid: x = S * H_kv * ceil(n_q * group / 16), y = n_splits.
template <int DP>
__global__ void __launch_bounds__(kDecMmaWarps<DP>* kWarp) k_attn_decode_mma(Args a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    constexpr int NW = kDecMmaWarps<DP>, NT = NW * kWarp, BC = 16 * NW;
    constexpr int KP = DP + 8;  // pitch in halves, as in the prompt kernel
    constexpr int kChunks = DP / 8, kPer = BC * kChunks / NT;
    // K and V tiles; at the end the warps' outputs meet in the same memory.
    __shared__ __align__(16) __half kv[2 * BC * KP];
    __shared__ __align__(16) __half qs[16 * KP];  // the block's 16 query rows, scaled
    __shared__ float wm[NW][16], wl[NW][16], row_m[16], row_l[16];
    // Each of the 16 rows' query and where its output goes (the output row, or the elements of
    // its partial result); null for rows past R.
    __shared__ const float* q_rows[16];
    __shared__ float* dst_rows[16];
    static_assert(NW * 16 * DP * sizeof(float) <= sizeof(kv), "the warps' outputs fit in the tiles");
    __half* ks = kv;
    __half* vs = kv + BC * KP;

    // Index arithmetic in 32 bits: a 64-bit division is a call of ~100 instructions, and this
    // kernel is a chain of latencies at short contexts.
    const int t = threadIdx.x, lane = t % kWarp, warp = t / kWarp;
    const int gq = lane / 4, tq = lane % 4;
    const int D = static_cast<int>(a.q.ne[0]), Dv = static_cast<int>(a.v.ne[0]);
    const int H_kv = static_cast<int>(a.k.ne[2]), n_q = static_cast<int>(a.q.ne[1]);
    const int64_t n_kv = a.k.ne[1];
    const int R = n_q * a.group;  // rows reading this KV head
    const int n_rb = (R + 15) / 16;
    const int rb = static_cast<int>(blockIdx.x % n_rb);
    const int hk = static_cast<int>(blockIdx.x / n_rb) % H_kv, s = static_cast<int>(blockIdx.x / n_rb) / H_kv;
    const int r0 = 16 * rb + gq, r1 = r0 + 8;  // this lane's two rows
    const char* kbase = a.k.data + hk * a.k.nb[2] + s * a.k.nb[3];
    const char* vbase = a.v.data + hk * a.v.nb[2] + s * a.v.nb[3];
    const int64_t j0 = blockIdx.y * a.chunk, j1 = min(n_kv, j0 + a.chunk);

    // Before waiting for the kernels before this one (they write the queries and the newest
    // K and V rows): the rows' pointers, and the first two tiles' K and V fetched into L2 from
    // memory, so that their loads below find them there. L2 is where writes become visible,
    // so a line fetched before a row is written is still read as written.
    if (t < 16) {
        const int r = 16 * rb + t;
        const float* q = nullptr;
        float* dst = nullptr;
        if (r < R) {
            const int i = r / a.group, h = hk * a.group + r % a.group;
            q = reinterpret_cast<const float*>(a.q.data + i * a.q.nb[1] + h * a.q.nb[2] + s * a.q.nb[3]);
            dst = a.n_splits == 1 ? out_row(a, h, i, s)
                                  : a.partial + (blockIdx.y * a.n_rows + row_of(a, h, i, s)) * (Dv + 2) + 2;
        }
        q_rows[t] = q;
        dst_rows[t] = dst;
    }
    const int n_pre = static_cast<int>(min(static_cast<int64_t>(2 * BC), j1 - j0));
    prefetch_rows<NT>(kbase, a.k.nb[1], row_bytes(a.kt, D), j0, n_pre);
    prefetch_rows<NT>(vbase, a.v.nb[1], row_bytes(a.vt, Dv), j0, n_pre);
    pdl_wait();  // launched by launch_dependent (common.cuh)
    pdl_trigger();
    __syncthreads();  // q_rows, dst_rows

    // The block's query rows as halves in shared memory, every thread's loads in flight at
    // once (the first tile's barrier publishes them); rows past R and elements past D are zero.
    constexpr int kQPer = 16 * (DP / 2) / NT;
    float2 qv[kQPer];
#pragma unroll
    for (int u = 0; u < kQPer; ++u) {
        const int idx = t + u * NT, e = 2 * (idx % (DP / 2));
        const float* row = q_rows[idx / (DP / 2)];
        qv[u] = make_float2(0.0f, 0.0f);
        if (row && e < D)
            qv[u] = a.q_pairs ? *reinterpret_cast<const float2*>(row + e)
                              : make_float2(row[e], e + 1 < D ? row[e + 1] : 0.0f);
    }
#pragma unroll
    for (int u = 0; u < kQPer; ++u) {
        const int idx = t + u * NT;
        *reinterpret_cast<__half2*>(qs + (idx / (DP / 2)) * KP + 2 * (idx % (DP / 2))) =
            __floats2half2_rn(qv[u].x * a.scale, qv[u].y * a.scale);
    }
    const char* m0 = a.mask && r0 < R ? a.mask + (r0 / a.group) * a.mask_nb1 : nullptr;
    const char* m1 = a.mask && r1 < R ? a.mask + (r1 / a.group) * a.mask_nb1 : nullptr;
    const int64_t i_lo = 16 * rb / a.group, i_hi = min(R - 1, 16 * rb + 15) / a.group;

    float o[DP / 8][4];
#pragma unroll
    for (int d = 0; d < DP / 8; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
    float mx0 = -INFINITY, mx1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

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
            stage_tile<DP, BC, NT>(ks, vs, a, kbase, vbase, jt, j1, D, Dv);
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
        float c0, c1;
        online_softmax(sacc, a, jt + 16 * warp, j1, m0, m1, mx0, mx1, l0, l1, c0, c1);

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
    const int rows = min(16, R - 16 * rb);
    float* slot = reinterpret_cast<float*>(kv) + warp * 16 * DP;  // [NW][16][DP]
#pragma unroll
    for (int d = 0; d < DP / 8; ++d) {
        if (gq < rows)
            *reinterpret_cast<float2*>(slot + gq * DP + 8 * d + 2 * tq) = make_float2(o[d][0] * f0, o[d][1] * f0);
        if (gq + 8 < rows)
            *reinterpret_cast<float2*>(slot + (gq + 8) * DP + 8 * d + 2 * tq) = make_float2(o[d][2] * f1, o[d][3] * f1);
    }
    __syncthreads();

    const float* outs = reinterpret_cast<const float*>(kv);
    for (int idx = t; idx < rows * Dv; idx += NT) {
        const int rr = idx / Dv, e = idx - rr * Dv;
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < NW; ++w) sum += outs[(w * 16 + rr) * DP + e];
        float* dst = dst_rows[rr];
        if (a.n_splits == 1) {
            const float l = row_l[rr];
            store_out(a, dst + e, l > 0.0f ? sum / l : 0.0f);  // whole warps: Dv % 32 == 0 where quantized
        } else {
            if (e == 0) dst[-2] = row_m[rr], dst[-1] = row_l[rr];
            dst[e] = sum;
        }
    }
#endif
}

}  // namespace

void launch_decode_f32(const Args& a, dim3 grid, cudaStream_t stream) {
    const int d_max = static_cast<int>(std::max(a.q.ne[0], a.v.ne[0]));
    launch_dependent(k_attn_decode, grid, kDecThreads, decode_smem(d_max), stream, a);
}

void launch_decode_mma(const Args& a, int dp, dim3 grid, cudaStream_t stream) {
    const int threads = decode_mma_warps(dp) * kWarp;
    if (dp == 64)
        launch_dependent(k_attn_decode_mma<64>, grid, threads, 0, stream, a);
    else if (dp == 128)
        launch_dependent(k_attn_decode_mma<128>, grid, threads, 0, stream, a);
    else
        launch_dependent(k_attn_decode_mma<256>, grid, threads, 0, stream, a);
}

void launch_merge(const Args& a, cudaStream_t stream) {
    launch_dependent(k_attn_merge, static_cast<unsigned>(a.n_rows), kMergeThreads, merge_smem(a.n_splits), stream, a);
}

}  // namespace tessera::cuda::attn
