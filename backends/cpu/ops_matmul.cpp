// Matrix product out[m][n] = sum_k W[n][k] * X[m][k], for weights W of any type and F32
// activations X. Work is split over weight rows (and the batch dims), so every thread streams
// its own part of the weights once. Each thread converts the activation rows to the format
// the weight type's kernel wants (Q8_0 or Q8_K blocks, or F32 as they are) into its own
// scratch, a chunk of rows at a time, then runs register tiles of weight rows x activation
// rows (kernels/kernels.h), so one pass over a weight tile serves a whole tile of activations.
// Weight types without a fast kernel are dequantized row by row and use the F32 kernel.
//
// Decoding (one activation row): each thread quantizes the row itself, which costs far less
// than a barrier (a 4096-wide row is 16 KiB of floats against megabytes of weights). Prompts
// (several rows): the team quantizes the rows once, each thread its share, into scratch they
// share, and waits at a barrier inside the node before the products; quantizing every row in
// every thread would cost each of 16 threads as much as the whole prompt's quantization.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

#ifdef TESSERA_HAVE_OPENBLAS
#include <cblas.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backends/cpu/kernels/kernels.h"
#include "backends/cpu/kernels/matmul.h"
#include "backends/cpu/onednn.h"
#include "backends/cpu/ops.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace tessera::cpu {

namespace {

// Prompts on float weights (F32, F16, BF16) where the CPU has no r16 float kernel (no
// AVX-512) go to OpenBLAS's sgemm when it is compiled in: on the 2-core Zen 4 machine here,
// forced to the AVX2 code path, the plain tiles reach 64 (F32) and 124 (F16) GFLOP/s on 64
// rows, OpenBLAS's Haswell kernels 127-179. Each thread multiplies its own range of weight
// rows (converted to F32 a slice at a time), with OpenBLAS held to one thread of its own.
constexpr int64_t kBlasMinRows = 32;
constexpr int64_t kBlasSlice = 64;  // weight rows converted per sgemm

// oneDNN's matmul (onednn.h) where it measured fastest: pp512 t/s, `tessera bench -p 512`,
// TESSERA_GEMM=own / openblas / onednn side by side, medians of 2-4 rounds:
//   Sapphire Rapids (the device's CPU, AMX), 16 threads, TinyLlama shape:
//     BF16: own r16 (vdpbf16ps) 398-439, oneDNN on AMX BF16 tiles 1163-1396 (llama.cpp 415);
//     F16:  own r16 450-504, oneDNN on F32 slices 389 (llama.cpp 326): own kept;
//     decoding is unchanged (BF16 tg32 46-51 in the file's layout, 49 in r16).
//   An AVX-512 machine forced to the AVX2 path (TESSERA_CPU_TARGET=avx2, which holds oneDNN
//   to AVX2 too; OpenBLAS with OPENBLAS_CORETYPE=HASWELL), 2 threads, SmolLM2 shape:
//     F32 own 405-417, OpenBLAS 704-725, oneDNN 789-805; F16 own 476-485, OpenBLAS 684-688,
//     oneDNN 731-734; earlier, BF16 own 274, OpenBLAS 419, oneDNN 498 (oneDNN on F32
//     slices: no BF16/F16 kernels without AVX-512).
// So BF16 goes to oneDNN where it has AMX tiles for it, and every float type where the code
// path has no r16 kernel for it; OpenBLAS is the fallback where oneDNN is not compiled in.
// Each thread multiplies its own range of weight rows, as with OpenBLAS.

// Activation rows quantized per step: bounds the scratch (64 rows of 4096 are 272 KiB of
// Q8_0 blocks, which stay in L2 while the weight tiles stream past).
constexpr int64_t kActChunk = 64;

}  // namespace

namespace {

size_t round_up64(size_t n) { return (n + 63) / 64 * 64; }

// The activation format the weight's kernels take, for the r16 layout or the plain one.
kernels::ActFormat act_format(const Tensor& a) {
    if (a.flags & kFlagRepacked)
        return kernels::r16_uses_f32(a.type)     ? kernels::ActFormat::F32
               : kernels::r16_uses_q8_K(a.type) ? kernels::ActFormat::Q8_K
               : kernels::r16_uses_bf16(a.type) ? kernels::ActFormat::BF16
                                                 : kernels::ActFormat::Q8_0;
    const kernels::KernelTable& kt = kernels::active();
    return kt.dot[static_cast<uint32_t>(a.type)] ? kt.act[static_cast<uint32_t>(a.type)] : kernels::ActFormat::F32;
}

// Whether the team quantizes the activation rows once into shared scratch (prompts: several
// rows of one 2-D activation matrix, in a quantized format).
bool shares_activations(const Tensor& node) {
    const Tensor& b = *node.src[1];
    return b.ne[1] > 1 && b.ne[2] == 1 && b.ne[3] == 1 && act_format(*node.src[0]) != kernels::ActFormat::F32;
}

// r16 Q8_0 weights also take each activation block's quant sum.
bool wants_block_sums(const Tensor& a) {
    return (a.flags & kFlagRepacked) && act_format(a) == kernels::ActFormat::Q8_0;
}

// Quantizes the n activation rows of b from row m0 (of batch i2, i3) into x, row i at
// x + i * row_bytes, and, where wanted, their block sums (row i's at sums + i * (K / 32)).
void quantize_rows(const Tensor& b, kernels::ActFormat fmt, int64_t m0, int64_t n, int64_t i2, int64_t i3, char* x,
                   size_t row_bytes, int32_t* sums) {
    const kernels::KernelTable& kt = kernels::active();
    const int64_t K = b.ne[0];
    for (int64_t i = 0; i < n; ++i) {
        const float* row = reinterpret_cast<const float*>(b.row_ptr(m0 + i, i2, i3));
        char* dst = x + i * row_bytes;
        if (fmt == kernels::ActFormat::Q8_K) {
            kt.quantize_q8_K(row, dst, K);
        } else if (fmt == kernels::ActFormat::BF16) {
            kernels::round_row_bf16(row, reinterpret_cast<uint16_t*>(dst), K);
        } else {
            kt.quantize_q8_0(row, dst, K);
            if (sums) kernels::act_block_sums(dst, sums + i * (K / quant::kQK), K);
        }
    }
}

// Whether a prompt product goes to oneDNN: a 2-D one of enough rows, on float weights in the
// file's layout of a type onednn::chosen() takes.
bool uses_onednn(const Tensor& node) {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    return !(a.flags & kFlagRepacked) && !(node.flags & kFlagBatchInvariant) && onednn::chosen(a.type) &&
           b.ne[1] >= kBlasMinRows && a.ne[2] == 1 && a.ne[3] == 1 && b.ne[2] == 1 && b.ne[3] == 1 &&
           b.nb[0] == sizeof(float) && node.nb[0] == sizeof(float) && a.nb[0] == type_traits(a.type).type_size;
}

}  // namespace

size_t mul_mat_work_shared(const Tensor& node) {
    if (uses_onednn(node)) {
        const DType at = onednn::act_type(node.src[0]->type);
        return at == DType::F32 ? 0
                                : round_up64(static_cast<size_t>(node.src[1]->ne[1] * node.src[1]->ne[0]) *
                                             type_traits(at).type_size);
    }
    if (!shares_activations(node)) return 0;
    const Tensor& a = *node.src[0];
    const int64_t K = a.ne[0], M = node.src[1]->ne[1];
    size_t bytes = round_up64(static_cast<size_t>(M) * kernels::act_row_size(act_format(a), K));
    if (wants_block_sums(a)) bytes += static_cast<size_t>(M) * static_cast<size_t>(K / quant::kQK) * sizeof(int32_t);
    return bytes;
}

namespace {

bool uses_blas(const Tensor& node) {
#ifdef TESSERA_HAVE_OPENBLAS
    // TESSERA_GEMM=own keeps every product on Tessera's kernels (onednn.h has the others).
    static const bool own = onednn::gemm_mode() == "own";
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    return !own && !(a.flags & kFlagRepacked) && !(node.flags & kFlagBatchInvariant) && (a.type == DType::F32 || a.type == DType::F16 || a.type == DType::BF16) &&
           b.ne[1] >= kBlasMinRows && a.ne[2] == 1 && a.ne[3] == 1 && b.ne[2] == 1 && b.ne[3] == 1 &&
           b.nb[0] == sizeof(float) && node.nb[0] == sizeof(float);
#else
    (void)node;
    return false;
#endif
}

#ifdef TESSERA_HAVE_OPENBLAS
void mul_mat_blas(const Tensor& node, const ComputeParams& p) {
    static std::once_flag once;
    std::call_once(once, [] { openblas_set_num_threads(1); });
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    const int64_t K = a.ne[0], N = a.ne[1], M = b.ne[1];
    float* slice = reinterpret_cast<float*>(p.work);
    int64_t nb, ne;
    split_rows(N, p.ith, p.nth, &nb, &ne);
    for (int64_t n0 = nb; n0 < ne; n0 += kBlasSlice) {
        const int64_t rows = std::min(kBlasSlice, ne - n0);
        const float* w = slice;
        if (a.type == DType::F32 && a.rows_contiguous()) {
            w = reinterpret_cast<const float*>(a.row_ptr(n0));
        } else {
            for (int64_t r = 0; r < rows; ++r) quant::dequantize_row(a.type, a.row_ptr(n0 + r), slice + r * K, K);
        }
        const size_t ldw = a.type == DType::F32 && a.rows_contiguous() ? a.nb[1] / sizeof(float) : static_cast<size_t>(K);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(M), static_cast<blasint>(rows),
                    static_cast<blasint>(K), 1.0f, reinterpret_cast<const float*>(b.data),
                    static_cast<blasint>(b.nb[1] / sizeof(float)), w, static_cast<blasint>(ldw), 0.0f,
                    reinterpret_cast<float*>(node.data) + n0, static_cast<blasint>(node.nb[1] / sizeof(float)));
    }
}
#endif

// Types oneDNN takes natively: the team converts the activations to the weights' type once
// (BF16, F16) into the shared scratch, then each thread multiplies its range of weight rows
// (a multiple of 16). Other float types: each thread converts its weight rows to F32 a slice
// at a time into its scratch, as for OpenBLAS, and multiplies the F32 activations by them.
void mul_mat_onednn(const Tensor& node, const ComputeParams& p) {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    const int64_t K = a.ne[0], N = a.ne[1], M = b.ne[1];
    const bool native = onednn::native(a.type);
    const DType at = onednn::act_type(a.type);
    const void* x = b.data;
    size_t ldx = b.nb[1] / sizeof(float);
    if (at != DType::F32) {
        int64_t rb, re;
        split_rows(M, p.ith, p.nth, &rb, &re);
        auto* xs = reinterpret_cast<uint16_t*>(p.shared);
        for (int64_t r = rb; r < re; ++r) {
            const auto* row = reinterpret_cast<const float*>(b.row_ptr(r));
            uint16_t* out = xs + r * K;
            if (at == DType::BF16) kernels::round_row_bf16(row, out, K);
            else
                for (int64_t i = 0; i < K; ++i) out[i] = fp32_to_fp16(row[i]);
        }
#ifdef _OPENMP
#pragma omp barrier
#endif
        x = xs;
        ldx = static_cast<size_t>(K);
    }
    const int64_t per = ((N + p.nth - 1) / p.nth + 15) / 16 * 16;
    const int64_t nb = std::min(N, per * p.ith), ne = std::min(N, nb + per);
    auto run = [&] {
        float* y = reinterpret_cast<float*>(node.data);
        const size_t ldy = node.nb[1] / sizeof(float);
        if (native) {
            onednn::matmul(a.type, x, ldx, a.row_ptr(nb), a.nb[1] / type_traits(a.type).type_size, y + nb, ldy, M, K,
                           ne - nb);
            return;
        }
        auto* slice = reinterpret_cast<float*>(p.work);
        for (int64_t n0 = nb; n0 < ne; n0 += kBlasSlice) {
            const int64_t rows = std::min(kBlasSlice, ne - n0);
            for (int64_t r = 0; r < rows; ++r) quant::dequantize_row(a.type, a.row_ptr(n0 + r), slice + r * K, K);
            onednn::matmul(DType::F32, x, ldx, slice, static_cast<size_t>(K), y + n0, ldy, M, K, rows);
        }
    };
    if (nb >= ne) return;
#ifdef _OPENMP
    if (!omp_in_parallel()) {  // a team of one outside OpenMP: keep oneDNN on this thread too
#pragma omp parallel num_threads(1)
        run();
        return;
    }
#endif
    run();
}

}  // namespace

size_t mul_mat_work_per_thread(const Tensor& node) {
    const Tensor& a = *node.src[0];
    const int64_t K = a.ne[0], M = node.src[1]->ne[1];
    if (uses_onednn(node))
        return onednn::native(a.type) ? 64 : static_cast<size_t>(kBlasSlice * K) * sizeof(float);
    if (uses_blas(node)) return static_cast<size_t>(kBlasSlice * K) * sizeof(float);
    if ((a.flags & kFlagRepacked) && kernels::r16_uses_f32(a.type)) return 64;  // rows read in place
    if (a.flags & kFlagRepacked)  // Q8_0 activation rows and their block sums, or Q8_K or bf16 rows
        return round_up64(static_cast<size_t>(std::min(M, kActChunk)) * kernels::act_row_size(act_format(a), K)) +
               (wants_block_sums(a) ? static_cast<size_t>(std::min(M, kActChunk) * (K / quant::kQK)) * sizeof(int32_t)
                                    : 0);
    // A chunk of quantized activation rows (a weight type's activation format is the same on
    // every code path), or one dequantized weight row for types without a fast kernel.
    const kernels::ActFormat fmt = kernels::active().act[static_cast<uint32_t>(a.type)];
    const size_t act = fmt == kernels::ActFormat::F32
                           ? 0
                           : static_cast<size_t>(std::min(M, kActChunk)) * kernels::act_row_size(fmt, K);
    return std::max(act, static_cast<size_t>(K) * sizeof(float));
}

namespace {

// The chunk of activation rows (from m0, of batch i2, i3) a thread last quantized into its
// scratch: the runs it claims next reuse it while they need the same chunk.
struct QuantizedChunk {
    int64_t m0 = -1, i2 = -1, i3 = -1;
    // Whether (m, j2, j3) must be quantized now; records it as done.
    bool stale(int64_t m, int64_t j2, int64_t j3) {
        if (m == m0 && j2 == i2 && j3 == i3) return false;
        m0 = m, i2 = j2, i3 = j3;
        return true;
    }
};

// mul_mat for a weight in the r16 layout (2-D, rows a multiple of 16): work split over
// groups of 16 weight rows; each thread quantizes a chunk of activation rows (and sums each
// block's quants) and runs every group of its range over the chunk.
void mul_mat_r16(const Tensor& node, const ComputeParams& p) {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    const kernels::KernelTable& kt = kernels::active();
    kernels::DotR16Fn dot = kt.dot_r16[static_cast<uint32_t>(a.type)];
    if (!dot) dot = kernels::dot_r16_ref_fn(a.type);
    const int64_t K = a.ne[0], N = a.ne[1], M = b.ne[1], nb = K / quant::kQK;
    const int64_t groups = N / kernels::kR16Rows;
    const kernels::ActFormat fmt = act_format(a);
    const bool f32 = fmt == kernels::ActFormat::F32;
    const size_t act_bytes = kernels::act_row_size(fmt, K);
    const size_t out_stride = node.nb[1] / sizeof(float);
    char* x = p.work;
    // Block sums follow the activation chunk, 64-byte aligned (34-byte Q8_0 blocks leave the
    // chunk's end at any offset); r16 Q8_0 weights only, F16 reads rows in place.
    int32_t* sums =
        wants_block_sums(a)
            ? reinterpret_cast<int32_t*>(p.work + round_up64(static_cast<size_t>(std::min(M, kActChunk)) * act_bytes))
            : nullptr;
    const size_t group_bytes = kernels::r16_bytes(a.type, K, kernels::kR16Rows);
    const bool share = shares_activations(node);
    if (share) {  // every row once, by the team; then all wait for the whole matrix
        x = p.shared;
        sums = sums ? reinterpret_cast<int32_t*>(p.shared + round_up64(static_cast<size_t>(M) * act_bytes)) : nullptr;
        int64_t rb, re;
        split_rows(M, p.ith, p.nth, &rb, &re);
        quantize_rows(b, fmt, rb, re - rb, 0, 0, x + rb * act_bytes, act_bytes, sums ? sums + rb * nb : nullptr);
#ifdef _OPENMP
#pragma omp barrier
#endif
    }

    // Groups in runs claimed by the threads. Activations quantized per thread are done once per
    // chunk of rows and batch, and kept across runs while those stay the same.
    QuantizedChunk quantized;
    const int64_t total = groups * b.ne[2] * b.ne[3];
    for_each_run(p, total, run_length(total, p.nth), [&](int64_t ib, int64_t ie) {
        for (int64_t it = ib; it < ie;) {
            const int64_t g0 = it % groups, i2 = (it / groups) % b.ne[2], i3 = it / (groups * b.ne[2]);
            const int64_t g1 = std::min(groups, g0 + (ie - it));
            it += g1 - g0;
            for (int64_t m0 = 0; m0 < M; m0 += kActChunk) {
                const int64_t mc = std::min(kActChunk, M - m0);
                const char* xc = share ? x + m0 * act_bytes : x;
                const int32_t* sc = share && sums ? sums + m0 * nb : sums;
                size_t xs = act_bytes;
                if (f32) {  // float activations, read in place (rows contiguous)
                    xc = b.row_ptr(m0, i2, i3);
                    xs = b.nb[1];
                }
                if (!f32 && !share && quantized.stale(m0, i2, i3))
                    quantize_rows(b, fmt, m0, mc, i2, i3, x, act_bytes, sums);
                float* out = reinterpret_cast<float*>(node.row_ptr(m0, i2, i3));
                for (int64_t g = g0; g < g1; ++g) {
                    const char* w = static_cast<const char*>(a.data) + static_cast<size_t>(g) * group_bytes;
                    for (int64_t c = 0; c < mc; c += kernels::kR16MaxCols) {
                        const int nc = static_cast<int>(std::min<int64_t>(kernels::kR16MaxCols, mc - c));
                        dot(K, w, xc + c * xs, xs, sc ? sc + c * nb : nullptr, static_cast<size_t>(nb), nc,
                            out + c * out_stride + g * kernels::kR16Rows, out_stride);
                    }
                }
            }
        }
    });
}

}  // namespace

void op_mul_mat(const Tensor& node, const ComputeParams& p) {
    const Tensor& a = *node.src[0];  // [K, N, A2, A3] weights
    const Tensor& b = *node.src[1];  // [K, M, B2, B3] F32 activations, rows contiguous
    if (a.flags & kFlagRepacked) return mul_mat_r16(node, p);
    if (uses_onednn(node)) return mul_mat_onednn(node, p);
#ifdef TESSERA_HAVE_OPENBLAS
    if (uses_blas(node)) return mul_mat_blas(node, p);
#endif
    const kernels::KernelTable& kt = kernels::active();
    const int64_t K = a.ne[0], N = a.ne[1], M = b.ne[1];
    const int64_t r2 = b.ne[2] / a.ne[2], r3 = b.ne[3] / a.ne[3];

    kernels::DotTileFn dot = kt.dot[static_cast<uint32_t>(a.type)];
    kernels::ActFormat fmt = kt.act[static_cast<uint32_t>(a.type)];
    const bool dequantize = dot == nullptr;
    if (dequantize) {
        dot = kt.dot[static_cast<uint32_t>(DType::F32)];
        fmt = kernels::ActFormat::F32;
    }
    const bool quantize = fmt != kernels::ActFormat::F32;
    const size_t act_bytes = kernels::act_row_size(fmt, K);
    const int64_t chunk = quantize ? kActChunk : M;
    const int tr = dequantize ? 1 : std::min(kt.tile_rows, kernels::kMaxTile);
    const int tc = std::min(kt.tile_cols, kernels::kMaxTile);
    const size_t out_stride = node.nb[1] / sizeof(float);
    char* scratch = p.work;
    const bool share = quantize && shares_activations(node);
    if (share) {
        int64_t rb, re;
        split_rows(M, p.ith, p.nth, &rb, &re);
        quantize_rows(b, fmt, rb, re - rb, 0, 0, p.shared + rb * act_bytes, act_bytes, nullptr);
#ifdef _OPENMP
#pragma omp barrier
#endif
    }

    // Items: (weight row n, batch i2, batch i3), n fastest, in runs claimed by the threads (a
    // multiple of 16 rows, so tiles stay whole); a run covers consecutive rows within one batch
    // at a time. Activations quantized per thread are kept across runs, as in mul_mat_r16.
    QuantizedChunk quantized;
    const int64_t total = N * b.ne[2] * b.ne[3];
    const int64_t run = (run_length(total, p.nth) + 15) / 16 * 16;
    for_each_run(p, total, run, [&](int64_t ib, int64_t ie) {
        for (int64_t it = ib; it < ie;) {
            const int64_t n0 = it % N, i2 = (it / N) % b.ne[2], i3 = it / (N * b.ne[2]);
            const int64_t n1 = std::min(N, n0 + (ie - it));
            it += n1 - n0;
            const char* w = a.row_ptr(n0, i2 / r2, i3 / r3);
            for (int64_t m0 = 0; m0 < M; m0 += chunk) {
                const int64_t mc = std::min(chunk, M - m0);
                const char* x = b.row_ptr(m0, i2, i3);
                size_t x_stride = b.nb[1];
                if (share) {
                    x = p.shared + m0 * act_bytes;
                    x_stride = act_bytes;
                } else if (quantize) {
                    if (quantized.stale(m0, i2, i3))
                        quantize_rows(b, fmt, m0, mc, i2, i3, scratch, act_bytes, nullptr);
                    x = scratch;
                    x_stride = act_bytes;
                }
                float* out = reinterpret_cast<float*>(node.row_ptr(m0, i2, i3)) + n0;
                for (int64_t n = n0; n < n1; n += tr) {
                    const int nr = static_cast<int>(std::min<int64_t>(tr, n1 - n));
                    const char* wn = w + (n - n0) * a.nb[1];
                    size_t w_stride = a.nb[1];
                    if (dequantize) {  // nr == 1
                        quant::dequantize_row(a.type, wn, reinterpret_cast<float*>(scratch), K);
                        wn = scratch;
                        w_stride = 0;
                    }
                    for (int64_t c = 0; c < mc; c += tc) {
                        const int nc = static_cast<int>(std::min<int64_t>(tc, mc - c));
                        dot(K, wn, w_stride, nr, x + c * x_stride, x_stride, nc, out + c * out_stride + (n - n0),
                            out_stride);
                    }
                }
            }
        }
    });
}

}  // namespace tessera::cpu
