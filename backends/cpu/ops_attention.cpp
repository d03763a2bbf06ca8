// Attention with an online softmax (one pass over the keys, O(D) scratch per thread):
// scores q.k * scale (optionally soft-capped) plus the mask, accumulated into V rows.
#include <cmath>
#include <cstring>
#include <limits>

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
            const float* kf = reinterpret_cast<const float*>(kp);
            if (k.type != DType::F32) {
                quant::dequantize_row(k.type, kp, krow, D);
                kf = krow;
            }
            float score = 0.0f;
            for (int64_t i = 0; i < D; ++i) score += qr[i] * kf[i];
            score *= scale;
            if (softcap > 0.0f) score = softcap * std::tanh(score / softcap);
            score += mv;

            const char* vp = v.row_ptr(j, hk, s);
            const float* vf = reinterpret_cast<const float*>(vp);
            if (v.type != DType::F32) {
                quant::dequantize_row(v.type, vp, vrow, Dv);
                vf = vrow;
            }
            // Online softmax: rescale what was accumulated when the running max grows.
            if (score > m) {
                const float c = std::exp(m - score);
                for (int64_t i = 0; i < Dv; ++i) acc[i] *= c;
                l *= c;
                m = score;
            }
            const float w = std::exp(score - m);
            for (int64_t i = 0; i < Dv; ++i) acc[i] += w * vf[i];
            l += w;
        }
        float* out = reinterpret_cast<float*>(node.row_ptr(h, iq, s));
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int64_t i = 0; i < Dv; ++i) out[i] = acc[i] * inv;
    }
}

}  // namespace tessera::cpu
