// The half x half -> f32 prompt GEMM on tensor cores (sm_80+): mma.sync m16n8k16, ldmatrix
// fragment loads and a cp.async pipeline of kStages K steps in shared memory.
//
// Block tile: 128 activation rows x 128 weight rows, 8 warps as 2 along m x 4 along n, each
// 64 x 32 (two blocks per SM). Both operands are k-contiguous ("row.col" for the mma:
// activations are the A rows, weights the B columns), so each thread's accumulator pair holds
// two neighbouring weight rows of one activation row, stored as one float2 into y.
// A product with too few tiles for the SMs is also split along k (grid z), each slice past the
// first writing its partial sums to scratch, added into y by reduce_partials_kernel.
//
// Weights come as half rows (GemmWeights::Half, staged by cp.async and read with ldmatrix) or
// as Q4_0/Q8_0 split rows (quant.cuh), staged as they are: each K step of 64 is two blocks' quants
// and scales per row, and every warp builds its B fragments from them in registers. A fragment
// register holds elements 2q, 2q + 1 (and 2q + 8, 2q + 9) of a 16-element step: in a Q4_0 block
// those are the low nibbles of bytes 2q, 2q + 1, 2q + 8, 2q + 9 for the block's first 16
// elements and their high nibbles for the other 16. A nibble or byte becomes a half exactly
// (0x6400 | b is 1024 + b), and d * q rounds once in either precision, so the products equal
// those of the weights converted to half beforehand.
#include "backends/cuda/gemm_f16.h"

#include "backends/cuda/common.cuh"

#include <algorithm>

namespace tessera::cuda {

namespace {

constexpr int kBm = 128;       // activation rows per block
constexpr int kBn = 128;       // weight rows per block
constexpr int kThreads = 256;  // 8 warps
constexpr int kMaxSplits = 4;
constexpr int kMinStepsPerSplit = 4;

// K step per pipeline stage and stages in flight. kBk 32 keeps 4 stages; kBk 64 (3 stages) loads
// whole 128-byte lines per row and halves the barriers.
template <GemmF16Tile Tile>
struct TileShape;
template <>
struct TileShape<GemmF16Tile::k128x128> {
    static constexpr int kBk = 32, kStages = 4;
};
template <>
struct TileShape<GemmF16Tile::k128x128_k64> {
    static constexpr int kBk = 64, kStages = 3;
};

// Shared row pitch (halves): kBk + 8, so the 8 rows of an ldmatrix hit distinct banks.
template <GemmF16Tile Tile>
constexpr int kLdOf = TileShape<Tile>::kBk + 8;

// Split-row weights in shared memory, per K step of 64 (two blocks): each row's quants at a pitch
// that puts the 8 rows of a fragment load in distinct banks, then each row's two scales.
template <GemmWeights W>
struct QuantStage {
    static constexpr int kBlockBytes = W == GemmWeights::Q4_0 ? 16 : 32;  // quants of one block
    static constexpr int kBytes = 2 * kBlockBytes;                        // a row's quants per step
    static constexpr int kPitch = kBytes + 16;                            // 48 or 80: 16-byte aligned for cp.async
    static constexpr size_t kStageBytes = static_cast<size_t>(kBn) * (kPitch + sizeof(uint32_t));
};

template <GemmF16Tile Tile, GemmWeights W>
constexpr size_t smem_bytes() {
    constexpr size_t stages = TileShape<Tile>::kStages;
    if constexpr (W == GemmWeights::Half)
        return stages * (kBm + kBn) * kLdOf<Tile> * sizeof(__half);
    else
        return stages * (kBm * kLdOf<Tile> * sizeof(__half) + QuantStage<W>::kStageBytes);
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, asynchronously; zeros where !valid (src must still be mapped).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
    const int bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}

// 4 bytes global -> shared (both 4-byte aligned), asynchronously; zeros where !valid.
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, bool valid) {
    const int bytes = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}

__device__ __forceinline__ uint16_t lds_u16(uint32_t addr) {
    uint16_t v;
    asm volatile("ld.shared.u16 %0, [%1];\n" : "=h"(v) : "r"(addr));
    return v;
}

__device__ __forceinline__ uint32_t lds_u32(uint32_t addr) {
    uint32_t v;
    asm volatile("ld.shared.u32 %0, [%1];\n" : "=r"(v) : "r"(addr));
    return v;
}

// Bytes 0 and 1 (lo) or 2 and 3 (hi) of x, each b, as the half pair (b - bias) * d.
template <bool kHi>
__device__ __forceinline__ uint32_t bytes_to_half2(uint32_t x, __half2 bias, __half2 d) {
    const uint32_t h = __byte_perm(x, 0x64646464u, kHi ? 0x7362u : 0x5140u);
    const __half2 v = __hmul2(__hsub2(*reinterpret_cast<const __half2*>(&h), bias), d);
    return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

// c += a (16x16, row) * b (16x8, col).
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif

// Grid: (ceil(m / kBm), ceil(n / kBn), splits); consecutive blocks share a weight tile, so it is
// read from memory about once. Slice z takes K steps [z steps / splits, (z + 1) steps / splits):
// slice 0 writes (or adds to) y, slice z > 0 writes partial + (z - 1) m n (rows of n floats).
// vec2: y and y_stride allow float2 stores.
// W: ldw is in halves for Half weights, in bytes for split rows, whose rows hold w_blocks blocks.
template <GemmF16Tile Tile, GemmWeights W>
__global__ void __launch_bounds__(kThreads, 2)
    gemm_f16_kernel(const __half* __restrict__ a, int64_t lda, const void* __restrict__ w, int64_t ldw,
                    int64_t w_blocks, float* __restrict__ y, size_t y_stride, int64_t k, int64_t n, int64_t m,
                    bool accumulate, bool vec2, float* __restrict__ partial) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    constexpr int kBk = TileShape<Tile>::kBk, kStages = TileShape<Tile>::kStages, kLd = kLdOf<Tile>;
    constexpr int kWarpsM = 2;  // warps along m (4 along n)
    constexpr int kWarpsN = kThreads / 32 / kWarpsM;
    constexpr int kWarpRowsM = kBm / kWarpsM;  // activation rows per warp
    constexpr int kWarpRowsN = kBn / kWarpsN;  // weight rows per warp
    constexpr int kFragsM = kWarpRowsM / 16;   // m16 tiles per warp
    constexpr int kFragsN = kWarpRowsN / 8;    // n8 tiles per warp
    using QS = QuantStage<W == GemmWeights::Half ? GemmWeights::Q4_0 : W>;
    constexpr bool kQuant = W != GemmWeights::Half;
    extern __shared__ uint4 gemm_smem[];
    __half* const sa = reinterpret_cast<__half*>(gemm_smem);  // [kStages][kBm][kLd]
    __half* const sw = sa + kStages * kBm * kLd;              // Half: [kStages][kBn][kLd]
    // Split rows: [kStages] x ([kBn][QS::kPitch] quant bytes, then [kBn] scale pairs).
    const uint32_t sa_addr = smem_addr(sa), sw_addr = smem_addr(sw);

    const int t = threadIdx.x;
    const int warp = t / 32, lane = t % 32;
    const int wm = warp / kWarpsN, wn = warp % kWarpsN;
    const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kBm;
    const int64_t n0 = static_cast<int64_t>(blockIdx.y) * kBn;
    const int64_t steps = k / kBk;
    const int64_t step0 = steps * blockIdx.z / gridDim.z, step1 = steps * (blockIdx.z + 1) / gridDim.z;

    // Loader roles: 16-byte piece t % kPieces of tile rows t / kPieces + kRowsPerPass i. Rows past
    // the edge are zero-filled from the matrix's first row (nothing is read); their results are
    // never stored.
    constexpr int kPieces = kBk / 8, kRowsPerPass = kThreads / kPieces;
    constexpr int kLoadsA = kBm / kRowsPerPass, kLoadsW = kBn / kRowsPerPass;
    const int lr = t / kPieces, lq = t % kPieces;
    const int64_t a_rows = m - m0 - lr, w_rows = n - n0 - lr;  // rows from this thread's first to the edge
    const __half* const a_thr = a + (m0 + lr) * lda + 8 * lq;
    const __half* const wh = static_cast<const __half*>(w);
    const __half* const w_thr = wh + (n0 + lr) * ldw + 8 * lq;
    const uint32_t st_off = static_cast<uint32_t>((lr * kLd + 8 * lq) * sizeof(__half));
    const uint8_t* const wq = static_cast<const uint8_t*>(w);
    auto load_stage = [&](int stage, int64_t k0) {
        const uint32_t da = sa_addr + static_cast<uint32_t>(stage * kBm * kLd * sizeof(__half)) + st_off;
#pragma unroll
        for (int i = 0; i < kLoadsA; ++i) {
            const bool ok = kRowsPerPass * i < a_rows;
            cp_async16(da + static_cast<uint32_t>(kRowsPerPass * i * kLd * sizeof(__half)),
                       ok ? a_thr + kRowsPerPass * i * lda + k0 : a, ok);
        }
        if constexpr (kQuant) {
            // Row r's quants for this step: 16-byte pieces; its two scales: one 4-byte copy.
            const uint32_t dq = sw_addr + static_cast<uint32_t>(stage * QS::kStageBytes);
            const uint32_t ds = dq + static_cast<uint32_t>(kBn * QS::kPitch);
            const int64_t blk = k0 / 32;
            constexpr int kPieces = QS::kBytes / 16;
#pragma unroll
            for (int i = 0; i < kBn * kPieces / kThreads; ++i) {
                const int idx = t + kThreads * i, r = idx / kPieces, pc = idx % kPieces;
                const bool ok = n0 + r < n;
                const uint8_t* src = wq + (n0 + r) * ldw + blk * QS::kBlockBytes + 16 * pc;
                cp_async16(dq + static_cast<uint32_t>(r * QS::kPitch + 16 * pc), ok ? src : wq, ok);
            }
            if (t < kBn) {
                const bool ok = n0 + t < n;
                const uint8_t* src = wq + (n0 + t) * ldw + w_blocks * QS::kBlockBytes + blk * 2;
                cp_async4(ds + static_cast<uint32_t>(4 * t), ok ? src : wq, ok);
            }
        } else {
            const uint32_t dw = sw_addr + static_cast<uint32_t>(stage * kBn * kLd * sizeof(__half)) + st_off;
#pragma unroll
            for (int i = 0; i < kLoadsW; ++i) {
                const bool ok = kRowsPerPass * i < w_rows;
                cp_async16(dw + static_cast<uint32_t>(kRowsPerPass * i * kLd * sizeof(__half)),
                           ok ? w_thr + kRowsPerPass * i * ldw + k0 : wh, ok);
            }
        }
    };

    // ldmatrix lane addresses (bytes within a stage). A x4: rows lane % 16, k half lane / 16.
    // W x4 over two n8 tiles: rows lane % 8 + 8 (lane / 16), k half (lane / 8) % 2.
    const uint32_t a_lane =
        static_cast<uint32_t>(((wm * kWarpRowsM + lane % 16) * kLd + 8 * (lane / 16)) * sizeof(__half));
    const uint32_t w_lane = static_cast<uint32_t>(
        ((wn * kWarpRowsN + lane % 8 + 8 * (lane / 16)) * kLd + 8 * ((lane / 8) % 2)) * sizeof(__half));

    float acc[kFragsM][kFragsN][4];
#pragma unroll
    for (int i = 0; i < kFragsM; ++i)
#pragma unroll
        for (int j = 0; j < kFragsN; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

    // The warp's A fragments at K offset kk of the stage at ta, times the B fragments bf.
    auto mma_step = [&](uint32_t ta, int kk, const uint32_t(&bf)[kFragsN][2]) {
        uint32_t af[kFragsM][4];
#pragma unroll
        for (int i = 0; i < kFragsM; ++i)
            ldmatrix_x4(af[i], ta + static_cast<uint32_t>((16 * i * kLd + kk) * sizeof(__half)));
#pragma unroll
        for (int i = 0; i < kFragsM; ++i)
#pragma unroll
            for (int j = 0; j < kFragsN; ++j) mma_16816(acc[i][j], af[i], bf[j][0], bf[j][1]);
    };

#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
        if (step0 + s < step1) load_stage(s, (step0 + s) * kBk);
        cp_async_commit();
    }
    for (int64_t step = step0; step < step1; ++step) {
        cp_async_wait<kStages - 2>();
        __syncthreads();  // step's tiles are visible; everyone is done with step - 1's stage
        const int64_t next = step + kStages - 1;
        if (next < step1) load_stage(static_cast<int>((next - step0) % kStages), next * kBk);
        cp_async_commit();

        const int stage = static_cast<int>((step - step0) % kStages);
        const uint32_t ta = sa_addr + static_cast<uint32_t>(stage * kBm * kLd * sizeof(__half)) + a_lane;
        if constexpr (kQuant) {
            // Fragment rows wn * kWarpRowsN + 8 j + g of the stage; bytes 2q, 2q + 1 and 2q + 8,
            // 2q + 9 of a block's quants (Q8_0: of its half for the 16-element step).
            const int g = lane / 4, q = lane % 4;
            const uint32_t dq = sw_addr + static_cast<uint32_t>(stage * QS::kStageBytes);
            const uint32_t row_q = dq + static_cast<uint32_t>((wn * kWarpRowsN + g) * QS::kPitch + 2 * q);
            const uint32_t row_s = dq + static_cast<uint32_t>(kBn * QS::kPitch + 4 * (wn * kWarpRowsN + g));
            const __half2 bias = __float2half2_rn(W == GemmWeights::Q4_0 ? 1032.0f : 1152.0f);
#pragma unroll
            for (int b = 0; b < 2; ++b) {
                uint32_t x[kFragsN];
                __half2 d[kFragsN];
#pragma unroll
                for (int j = 0; j < kFragsN; ++j) {
                    const uint32_t s2 = lds_u32(row_s + static_cast<uint32_t>(4 * 8 * j));
                    const __half2 pair = *reinterpret_cast<const __half2*>(&s2);
                    d[j] = b == 0 ? __low2half2(pair) : __high2half2(pair);
                    if constexpr (W == GemmWeights::Q4_0) {
                        const uint32_t base = row_q + static_cast<uint32_t>(8 * j * QS::kPitch + 16 * b);
                        x[j] = lds_u16(base) | static_cast<uint32_t>(lds_u16(base + 8)) << 16;
                    }
                }
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    uint32_t bf[kFragsN][2];
#pragma unroll
                    for (int j = 0; j < kFragsN; ++j) {
                        uint32_t v;
                        if constexpr (W == GemmWeights::Q4_0) {
                            v = (h == 0 ? x[j] : x[j] >> 4) & 0x0f0f0f0fu;
                        } else {
                            const uint32_t base = row_q + static_cast<uint32_t>(8 * j * QS::kPitch + 32 * b + 16 * h);
                            v = (lds_u16(base) | static_cast<uint32_t>(lds_u16(base + 8)) << 16) ^ 0x80808080u;
                        }
                        bf[j][0] = bytes_to_half2<false>(v, bias, d[j]);
                        bf[j][1] = bytes_to_half2<true>(v, bias, d[j]);
                    }
                    mma_step(ta, 32 * b + 16 * h, bf);
                }
            }
        } else {
            const uint32_t tw = sw_addr + static_cast<uint32_t>(stage * kBn * kLd * sizeof(__half)) + w_lane;
#pragma unroll
            for (int kk = 0; kk < kBk; kk += 16) {
                uint32_t bf[kFragsN][2];
#pragma unroll
                for (int j = 0; j < kFragsN / 2; ++j) {
                    uint32_t r[4];
                    ldmatrix_x4(r, tw + static_cast<uint32_t>((16 * j * kLd + kk) * sizeof(__half)));
                    bf[2 * j][0] = r[0];
                    bf[2 * j][1] = r[1];
                    bf[2 * j + 1][0] = r[2];
                    bf[2 * j + 1][1] = r[3];
                }
                mma_step(ta, kk, bf);
            }
        }
    }
    cp_async_wait<0>();

    float* out = y;
    size_t out_stride = y_stride;
    if (blockIdx.z > 0) {
        out = partial + (blockIdx.z - 1) * m * n;
        out_stride = static_cast<size_t>(n);
        accumulate = false;
        vec2 = n % 2 == 0;
    }
    // Accumulator (i, j): c[0..1] at activation row g, weight rows 2 q, 2 q + 1; c[2..3] at g + 8.
    const int g = lane / 4, q = lane % 4;
#pragma unroll
    for (int i = 0; i < kFragsM; ++i) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int64_t row = m0 + wm * kWarpRowsM + 16 * i + g + 8 * h;
            if (row >= m) continue;
            float* yr = out + row * out_stride;
#pragma unroll
            for (int j = 0; j < kFragsN; ++j) {
                const int64_t col = n0 + wn * kWarpRowsN + 8 * j + 2 * q;
                float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
                if (vec2 && col + 1 < n) {
                    float2* p = reinterpret_cast<float2*>(yr + col);
                    if (accumulate) {
                        const float2 old = *p;
                        v0 += old.x;
                        v1 += old.y;
                    }
                    *p = make_float2(v0, v1);
                } else {
                    if (col < n) yr[col] = accumulate ? yr[col] + v0 : v0;
                    if (col + 1 < n) yr[col + 1] = accumulate ? yr[col + 1] + v1 : v1;
                }
            }
        }
    }
#endif
}

// y[j][i] += partial[0][j][i] + ... + partial[slices - 1][j][i], in that order.
// Grid: (ceil(n / 256), min(m, 65535)), rows j = blockIdx.y + gridDim.y r.
__global__ void __launch_bounds__(256)
    reduce_partials_kernel(const float* __restrict__ partial, int slices, float* __restrict__ y, size_t y_stride,
                           int64_t n, int64_t m) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    for (int64_t j = blockIdx.y; j < m; j += gridDim.y) {
        float v = y[j * y_stride + i];
        for (int s = 0; s < slices; ++s) v += partial[(s * m + j) * n + i];
        y[j * y_stride + i] = v;
    }
}

struct DeviceInfo {
    bool available = false;
    int sms = 0;
};

template <GemmF16Tile Tile, GemmWeights W>
bool allow_smem() {
    return cudaFuncSetAttribute(gemm_f16_kernel<Tile, W>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                static_cast<int>(smem_bytes<Tile, W>())) == cudaSuccess;
}

// Per device, once: whether the kernels have sm_80 code here, their shared memory limit raised.
const DeviceInfo& device_info() {
    static DeviceInfo cached[64];
    static bool known[64];
    static DeviceInfo none;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) return none;
    if (!known[dev]) {
        DeviceInfo info;
        info.sms = multiprocessor_count();
        constexpr GemmF16Tile k32 = GemmF16Tile::k128x128, k64 = GemmF16Tile::k128x128_k64;
        info.available = runs_sm80_code(reinterpret_cast<const void*>(gemm_f16_kernel<k32, GemmWeights::Half>)) &&
                         allow_smem<k32, GemmWeights::Half>() && allow_smem<k64, GemmWeights::Half>() &&
                         allow_smem<k64, GemmWeights::Q4_0>() && allow_smem<k64, GemmWeights::Q8_0>();
        cached[dev] = info;
        known[dev] = true;
    }
    return cached[dev];
}

template <GemmF16Tile Tile, GemmWeights W>
void launch(int splits, const __half* a, int64_t lda, const void* w, int64_t ldw, int64_t w_blocks, float* y,
            size_t y_stride, int64_t k, int64_t n, int64_t m, bool accumulate, float* partial, cudaStream_t stream) {
    const bool vec2 = reinterpret_cast<uintptr_t>(y) % 8 == 0 && y_stride % 2 == 0;
    const dim3 grid(static_cast<unsigned>((m + kBm - 1) / kBm), static_cast<unsigned>((n + kBn - 1) / kBn),
                    static_cast<unsigned>(splits));
    gemm_f16_kernel<Tile, W><<<grid, kThreads, smem_bytes<Tile, W>(), stream>>>(a, lda, w, ldw, w_blocks, y, y_stride,
                                                                                k, n, m, accumulate, vec2, partial);
}

void reduce_partials(int splits, float* y, size_t y_stride, int64_t n, int64_t m, const float* partial,
                     cudaStream_t stream) {
    if (splits <= 1) return;
    const dim3 grid(static_cast<unsigned>((n + 255) / 256), static_cast<unsigned>(std::min<int64_t>(m, 65535)));
    reduce_partials_kernel<<<grid, 256, 0, stream>>>(partial, splits - 1, y, y_stride, n, m);
}

}  // namespace

bool gemm_f16_available() { return device_info().available; }

GemmF16Plan gemm_f16_plan(int64_t k, int64_t n, int64_t m, size_t partial_floats) {
    // Two blocks fit an SM: split k while the blocks still fit one wave (measured on an H200
    // at 512 activation rows: 4096 weight rows take 2 slices, 1024 take 4, 14336 one).
    const int64_t slots = 2 * static_cast<int64_t>(std::max(device_info().sms, 1));
    const int64_t tiles = ((m + kBm - 1) / kBm) * ((n + kBn - 1) / kBn);
    const int64_t steps = k / TileShape<GemmF16Tile::k128x128_k64>::kBk;
    GemmF16Plan plan;
    plan.tile = GemmF16Tile::k128x128_k64;
    while (plan.splits < kMaxSplits && tiles * (plan.splits + 1) <= slots &&
           steps / (plan.splits + 1) >= kMinStepsPerSplit &&
           static_cast<size_t>(plan.splits) * static_cast<size_t>(m * n) <= partial_floats)
        ++plan.splits;
    return plan;
}

void gemm_f16(const GemmF16Plan& plan, const __half* a, int64_t lda, const __half* w, int64_t ldw, float* y,
              size_t y_stride, int64_t k, int64_t n, int64_t m, bool accumulate, float* partial, cudaStream_t stream) {
    if (n <= 0 || m <= 0 || k <= 0) return;
    if (!device_info().available) return;
    const int splits = partial != nullptr ? std::max(1, std::min(plan.splits, kMaxSplits)) : 1;
    if (plan.tile == GemmF16Tile::k128x128_k64 && k % TileShape<GemmF16Tile::k128x128_k64>::kBk == 0)
        launch<GemmF16Tile::k128x128_k64, GemmWeights::Half>(splits, a, lda, w, ldw, 0, y, y_stride, k, n, m,
                                                             accumulate, partial, stream);
    else
        launch<GemmF16Tile::k128x128, GemmWeights::Half>(splits, a, lda, w, ldw, 0, y, y_stride, k, n, m, accumulate,
                                                         partial, stream);
    reduce_partials(splits, y, y_stride, n, m, partial, stream);
}

bool gemm_f16_split_rows(const GemmF16Plan& plan, GemmWeights weights, const __half* a, int64_t lda, const uint8_t* w,
                         size_t w_stride, float* y, size_t y_stride, int64_t k, int64_t n, int64_t m, float* partial,
                         cudaStream_t stream) {
    if (weights == GemmWeights::Half || k % kGemmSplitRowsK != 0 || reinterpret_cast<uintptr_t>(w) % 16 != 0 ||
        w_stride % 16 != 0 || !device_info().available)
        return false;
    if (n <= 0 || m <= 0 || k <= 0) return true;
    const int splits = partial != nullptr ? std::max(1, std::min(plan.splits, kMaxSplits)) : 1;
    constexpr GemmF16Tile k64 = GemmF16Tile::k128x128_k64;
    const int64_t ldw = static_cast<int64_t>(w_stride), blocks = k / 32;
    if (weights == GemmWeights::Q4_0)
        launch<k64, GemmWeights::Q4_0>(splits, a, lda, w, ldw, blocks, y, y_stride, k, n, m, false, partial, stream);
    else
        launch<k64, GemmWeights::Q8_0>(splits, a, lda, w, ldw, blocks, y, y_stride, k, n, m, false, partial, stream);
    reduce_partials(splits, y, y_stride, n, m, partial, stream);
    return true;
}

}  // namespace tessera::cuda
