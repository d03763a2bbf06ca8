// Flash attention on the GPU, two kernels by the number of query rows:
//
// - Decoding (a few rows, attention_decode.cu): a block takes one KV head, the query rows that
//   read it (grouped-query attention reads each key once per group, not once per head) and a
//   range of keys; on tensor cores for F16 and Q8_0 caches, in f32 for F32 ones. The keys are
//   split across blocks until the GPU has a few blocks per multiprocessor; a second kernel
//   merges the splits' partial results.
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

#include "backends/cuda/attention.cuh"
#include "backends/cuda/device_math.cuh"
#include "backends/cuda/ops.h"
#include "tensor/error.h"

namespace tessera::cuda {

using namespace attn;

namespace {

// ---- prompts, on tensor cores ----

constexpr int kPromptWarps = 4;
constexpr int kPromptRows = 16 * kPromptWarps;  // query rows per block
constexpr int64_t kMinPromptRows = 9;           // query positions from which prompts take this kernel

// Keys per tile: the tiles of K and V (keys x DP each) fit in 48 KiB.
template <int DP>
constexpr int kPromptKeys = DP > 128 ? 32 : 64;

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
            stage_tile<DP, BC, kPromptWarps * kWarp>(ks, vs, a, kbase, vbase, jt, n_kv, D, Dv);
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

        float c0, c1;
        online_softmax(sacc, a, jt, n_kv, m0, m1, mx0, mx1, l0, l1, c0, c1);
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

// The head size a tensor-core kernel is compiled for: 64, 128 or 256.
int padded_head(const Tensor& node) {
    const int64_t d = std::max(node.src[0]->ne[0], node.src[2]->ne[0]);
    return d <= 64 ? 64 : d <= 128 ? 128 : 256;
}

// Whether the tensor-core kernels (f16 queries and probabilities) may take the node: an F16 or
// Q8_0 cache (an F32 one, asked for exactness, keeps the f32 decoding kernel at any number of
// rows), a head of at most kMaxHead, sm_80 code on the device.
bool half_kernels_take(const Tensor& node) {
    return node.src[1]->type != DType::F32 && node.src[2]->type != DType::F32 &&
           std::max(node.src[0]->ne[0], node.src[2]->ne[0]) <= kMaxHead && prompt_kernel_runs();
}

bool use_prompt_kernel(const Tensor& node) { return node.src[0]->ne[1] >= kMinPromptRows && half_kernels_take(node); }

// Decoding rows on tensor cores. TESSERA_CUDA_DECODE_F32=1 keeps every cache on the f32
// decoding kernel, for comparison.
bool use_decode_mma(const Tensor& node) {
    static const bool f32_only = [] {
        const char* e = std::getenv("TESSERA_CUDA_DECODE_F32");
        return e && std::string(e) == "1";
    }();
    return !f32_only && node.src[0]->ne[1] < kMinPromptRows && half_kernels_take(node);
}

int query_groups(const Tensor& node) {
    const int group = static_cast<int>(node.src[0]->ne[2] / node.src[1]->ne[2]);
    return (group + kDecHeads - 1) / kDecHeads;
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
        return {q.ne[3] * k.ne[2] * blocks_for(rows, 16), 16 * decode_mma_warps(padded_head(node))};
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
    const int dp = padded_head(node);
    return dp == 64 ? kPromptKeys<64> : dp == 128 ? kPromptKeys<128> : kPromptKeys<256>;
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

bool flash_attn_writes_acts(const Tensor& node) {
    return use_decode_mma(node) && node.is_contiguous() && node.ne[0] % 32 == 0;
}

void op_flash_attn(const Tensor& node, void* work, cudaStream_t stream, DecodeActs acts) {
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
    if (acts.qs && !flash_attn_writes_acts(node))
        throw Error("CUDA backend: flash attention asked to quantize an output it cannot", ErrorKind::Internal);
    a.act_qs = acts.qs;
    a.act_ds = acts.ds;
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
        const int dp = padded_head(node);
        if (dp == 64)
            k_attn_prompt<64><<<grid, kPromptWarps * kWarp, 0, stream>>>(a);
        else if (dp == 128)
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
    if (use_decode_mma(node))
        launch_decode_mma(a, padded_head(node), grid, stream);
    else
        launch_decode_f32(a, grid, stream);
    if (a.n_splits > 1) launch_merge(a, stream);
}

}  // namespace tessera::cuda
