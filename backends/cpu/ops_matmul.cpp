// Matrix product, reference path: dequantize one weight row into scratch, then dot it
// with every activation row. Work is split over weight rows so all threads stream the
// weights once. (The fast integer-dot and GEMM kernels are separate.)
#include "backends/cpu/ops.h"
#include "tensor/quant/quant.h"

namespace tessera::cpu {

void op_mul_mat(const Tensor& node, const ComputeParams& p) {
    const Tensor& a = *node.src[0];  // [K, N, A2, A3] weights
    const Tensor& b = *node.src[1];  // [K, M, B2, B3] F32 activations
    const int64_t K = a.ne[0], N = a.ne[1], M = b.ne[1];
    const int64_t r2 = b.ne[2] / a.ne[2], r3 = b.ne[3] / a.ne[3];
    float* w = reinterpret_cast<float*>(p.work);

    // Items: (weight row n, batch i2, batch i3), n fastest.
    const int64_t items = N * b.ne[2] * b.ne[3];
    int64_t ib, ie;
    split_rows(items, p.ith, p.nth, &ib, &ie);
    for (int64_t it = ib; it < ie; ++it) {
        const int64_t n = it % N, i2 = (it / N) % b.ne[2], i3 = it / (N * b.ne[2]);
        const char* arow = a.row_ptr(n, i2 / r2, i3 / r3);
        const float* wrow;
        if (a.type == DType::F32) {
            wrow = reinterpret_cast<const float*>(arow);
        } else {
            quant::dequantize_row(a.type, arow, w, K);
            wrow = w;
        }
        for (int64_t m = 0; m < M; ++m) {
            const float* x = reinterpret_cast<const float*>(b.row_ptr(m, i2, i3));
            float sum = 0.0f;
            for (int64_t k = 0; k < K; ++k) sum += wrow[k] * x[k];
            *reinterpret_cast<float*>(node.row_ptr(m, i2, i3) + n * node.nb[0]) = sum;
        }
    }
}

}  // namespace tessera::cpu
