// Attention with an online softmax (one pass over the keys, O(D) scratch per thread):
// scores q.k * scale (optionally soft-capped) plus the mask, accumulated into V rows. The
// row dots and accumulations run on the SIMD kernels (F32 and F16 K/V read in place; other
// types are dequantized a row at a time).
#include <cmath>
#include <cstring>
#include <limits>

#include "backends/cpu/kernels/kernels.h"
#include "backends/cpu/ops.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace tessera::cpu {

void op_flash_attn(const Tensor& node, const ComputeParams& p) {
    const Tensor& q = *node.src[0];  // [D, n_q, H, S]
    const Tensor& k = *node.src[1];  // [D, n_kv, H_kv, S]
    const Tensor& v = *node.src[2];  // [Dv, n_kv, H_kv, S]
    const Tensor* mask = node.src[3];
    const float scale = node.param_f(0), softcap = node.param_f(1);
    const int64_t D = q.ne[0], Dv = v.ne[0], n_q = q.ne[1], H = q.ne[2], n_kv = k.ne[1];
    const int64_t group = H / k.ne[2];
    const kernels::KernelTable& kt = kernels::active();

    float* krow = reinterpret_cast<float*>(p.work);
    float* vrow = krow + D;
    float* acc = vrow + Dv;

    int64_t rb, re;
    split_rows(n_q * H * q.ne[3], p.ith, p.nth, &rb, &re);  // rows: (head, query, seq)
    for (int64_t r = rb; r < re; ++r) {
        const int64_t h = r % H, iq = (r / H) % n_q, s = r / (H * n_q);
        const int64_t hk = h / group;
        const float* qr = reinterpret_cast<const float*>(q.row_ptr(iq, h, s));
        const char* mr = mask ? mask->row_ptr(iq) : nullptr;
        float m = -std::numeric_limits<float>::infinity(), l = 0.0f;
        std::memset(acc, 0, static_cast<size_t>(Dv) * sizeof(float));
        for (int64_t j = 0; j < n_kv; ++j) {
            float mv = 0.0f;
            if (mr) {
                mv = mask->type == DType::F16 ? fp16_to_fp32(reinterpret_cast<const uint16_t*>(mr)[j])
                                              : reinterpret_cast<const float*>(mr)[j];
                if (mv == -std::numeric_limits<float>::infinity()) continue;
            }
            const char* kp = k.row_ptr(j, hk, s);
            float score;
            if (k.type == DType::F32) {
                score = kt.dot_f32(qr, reinterpret_cast<const float*>(kp), D);
            } else if (k.type == DType::F16) {
                score = kt.dot_f32_f16(qr, reinterpret_cast<const uint16_t*>(kp), D);
            } else {
                quant::dequantize_row(k.type, kp, krow, D);
                score = kt.dot_f32(qr, krow, D);
            }
            score *= scale;
            if (softcap > 0.0f) score = softcap * std::tanh(score / softcap);
            score += mv;

            // Online softmax: rescale what was accumulated when the running max grows.
            if (score > m) {
                const float c = std::exp(m - score);
                kt.scale_f32(acc, c, Dv);
                l *= c;
                m = score;
            }
            const float w = std::exp(score - m);
            const char* vp = v.row_ptr(j, hk, s);
            if (v.type == DType::F32) {
                kt.axpy_f32(acc, w, reinterpret_cast<const float*>(vp), Dv);
            } else if (v.type == DType::F16) {
                kt.axpy_f16(acc, w, reinterpret_cast<const uint16_t*>(vp), Dv);
            } else {
                quant::dequantize_row(v.type, vp, vrow, Dv);
                kt.axpy_f32(acc, w, vrow, Dv);
            }
            l += w;
        }
        float* out = reinterpret_cast<float*>(node.row_ptr(h, iq, s));
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int64_t i = 0; i < Dv; ++i) out[i] = acc[i] * inv;
    }
}

}  // namespace tessera::cpu
