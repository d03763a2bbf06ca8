// Row-wise ops: RMS/layer norm, softmax with mask, rotary position embedding.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/cpu/ops.h"
#include "tensor/fp16.h"
#include "tensor/graph.h"

namespace tessera::cpu {

namespace {
inline const char* row_at(const Tensor& t, int64_t r) {
    return t.row_ptr(r % t.ne[1], (r / t.ne[1]) % t.ne[2], r / (t.ne[1] * t.ne[2]));
}
}  // namespace

void op_norm(const Tensor& node, const ComputeParams& p) {
    const Tensor& a = *node.src[0];
    const float eps = node.param_f(0);
    const int64_t n = a.ne[0];
    int64_t rb, re;
    split_rows(a.n_rows(), p.ith, p.nth, &rb, &re);
    for (int64_t r = rb; r < re; ++r) {
        const float* x = reinterpret_cast<const float*>(row_at(a, r));
        float* y = reinterpret_cast<float*>(const_cast<char*>(row_at(node, r)));
        if (node.op == Op::RmsNorm) {
            double ss = 0;
            for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
            const float s = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
            if (const Tensor* w = node.src[1]) {  // fused weight: (x * s) * w, as mul would
                const float* wr = reinterpret_cast<const float*>(w->data);
                for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s * wr[i];
            } else {
                for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s;
            }
        } else {
            double sum = 0;
            for (int64_t i = 0; i < n; ++i) sum += x[i];
            const double mean = sum / static_cast<double>(n);
            double var = 0;
            for (int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
            const double s = 1.0 / std::sqrt(var / static_cast<double>(n) + eps);
            for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>((x[i] - mean) * s);
        }
    }
}

void op_soft_max(const Tensor& node, const ComputeParams& p) {
    const Tensor& a = *node.src[0];
    const Tensor* mask = node.src[1];
    const float scale = node.param_f(0);
    const int64_t n = a.ne[0];
    int64_t rb, re;
    split_rows(a.n_rows(), p.ith, p.nth, &rb, &re);
    for (int64_t r = rb; r < re; ++r) {
        const float* x = reinterpret_cast<const float*>(row_at(a, r));
        float* y = reinterpret_cast<float*>(const_cast<char*>(row_at(node, r)));
        const char* m = mask ? mask->row_ptr(r % a.ne[1]) : nullptr;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t i = 0; i < n; ++i) {
            float mv = 0.0f;
            if (m) mv = mask->type == DType::F16 ? fp16_to_fp32(reinterpret_cast<const uint16_t*>(m)[i])
                                                 : reinterpret_cast<const float*>(m)[i];
            y[i] = x[i] * scale + mv;
            mx = std::max(mx, y[i]);
        }
        if (mx == -std::numeric_limits<float>::infinity()) {  // a fully masked row
            std::fill(y, y + n, 0.0f);
            continue;
        }
        double sum = 0;
        for (int64_t i = 0; i < n; ++i) {
            y[i] = std::exp(y[i] - mx);
            sum += y[i];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t i = 0; i < n; ++i) y[i] *= inv;
    }
}

namespace {

// YaRN: the dimensions below which RoPE extrapolates and above which it interpolates.
float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return n_dims * std::log(n_ctx_orig / (n_rot * 2.0f * 3.14159265358979f)) / (2.0f * std::log(base));
}

float yarn_ramp(float low, float high, int i0) {
    float y = (i0 / 2 - low) / std::max(0.001f, high - low);
    return 1.0f - std::min(1.0f, std::max(0.0f, y));
}

}  // namespace

void op_rope(const Tensor& node, const ComputeParams& p) {
    const Tensor& x = *node.src[0];
    const int32_t* pos = static_cast<const int32_t*>(node.src[1]->data);
    const Tensor* ff = node.src[2];
    const int n_dims = node.params[0];
    const bool neox = node.params[1] == static_cast<int32_t>(RopeMode::NeoX);
    const int n_ctx_orig = node.params[2];
    const float base = node.param_f(3), freq_scale = node.param_f(4), ext_factor = node.param_f(5);
    const float attn_factor = node.param_f(6), beta_fast = node.param_f(7), beta_slow = node.param_f(8);

    float corr[2] = {0.0f, 0.0f};
    if (ext_factor != 0.0f && n_ctx_orig > 0) {
        corr[0] = std::max(0.0f, std::floor(yarn_corr_dim(n_dims, n_ctx_orig, beta_fast, base)));
        corr[1] = std::min(static_cast<float>(n_dims - 1), std::ceil(yarn_corr_dim(n_dims, n_ctx_orig, beta_slow, base)));
    }
    const int64_t head = x.ne[0];
    const int half = n_dims / 2;
    // The rotation of pair i0 / 2 at position p.
    const auto angle = [&](double p_t, int i0, float* c, float* s) {
        // The angle in double: at positions in the thousands, float products lose whole
        // hundredths of a radian.
        const double factor = ff ? static_cast<const float*>(ff->data)[i0 / 2] : 1.0;
        const double te_d = p_t * std::pow(static_cast<double>(base), -static_cast<double>(i0) / n_dims) / factor;
        double theta = freq_scale * te_d;
        float mscale = attn_factor;
        if (ext_factor != 0.0f) {
            const double mix = yarn_ramp(corr[0], corr[1], i0) * ext_factor;
            theta = theta * (1.0 - mix) + te_d * mix;
            mscale *= 1.0f + 0.1f * std::log(1.0f / freq_scale);
        }
        *c = static_cast<float>(std::cos(theta)) * mscale;
        *s = static_cast<float>(std::sin(theta)) * mscale;
    };
    // Rows are (head, token), heads fastest: the angles of a token are computed once and
    // serve all its heads (up to kCached pairs; wider rotations compute them per row).
    constexpr int kCached = 256;
    float cos_t[kCached], sin_t[kCached];
    int64_t cached_token = -1;

    int64_t rb, re;
    split_rows(x.ne[1] * x.ne[2], p.ith, p.nth, &rb, &re);  // rows = (head, token)
    for (int64_t r = rb; r < re; ++r) {
        const int64_t ih = r % x.ne[1], it = r / x.ne[1];
        const float* in = reinterpret_cast<const float*>(x.row_ptr(ih, it));
        float* out = reinterpret_cast<float*>(node.row_ptr(ih, it));
        const double p_t = pos[it];
        const bool cached = half <= kCached;
        if (cached && it != cached_token) {
            for (int i0 = 0; i0 < n_dims; i0 += 2) angle(p_t, i0, &cos_t[i0 / 2], &sin_t[i0 / 2]);
            cached_token = it;
        }
        for (int i0 = 0; i0 < n_dims; i0 += 2) {
            float c, s;
            if (cached) {
                c = cos_t[i0 / 2];
                s = sin_t[i0 / 2];
            } else {
                angle(p_t, i0, &c, &s);
            }
            const int a = neox ? i0 / 2 : i0;
            const int b = neox ? i0 / 2 + half : i0 + 1;
            const float x0 = in[a], x1 = in[b];
            out[a] = x0 * c - x1 * s;
            out[b] = x0 * s + x1 * c;
        }
        for (int64_t i = n_dims; i < head; ++i) out[i] = in[i];
    }
}

}  // namespace tessera::cpu
