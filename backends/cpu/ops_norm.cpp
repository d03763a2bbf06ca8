// Row-wise ops: RMS/layer norm, softmax with mask, rotary position embedding.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/cpu/ops.h"
#include "tensor/fp16.h"
#include "tensor/graph.h"
#include "tensor/quant/quant.h"

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

namespace {

// RoPE with one node's parameters (params[0..8]) and optional frequency factors: rotates
// rows of one head, token by token. The angles of a token are computed once (in double: at
// positions in the thousands, float products lose whole hundredths of a radian) and serve
// all its heads, up to kCached pairs; wider rotations compute them per row.
class Rotation {
public:
    Rotation(const Tensor& node, const Tensor* ff)
        : ff_(ff ? static_cast<const float*>(ff->data) : nullptr),
          n_dims_(node.params[0]),
          neox_(node.params[1] == static_cast<int32_t>(RopeMode::NeoX)),
          base_(node.param_f(3)),
          freq_scale_(node.param_f(4)),
          ext_factor_(node.param_f(5)),
          attn_factor_(node.param_f(6)) {
        const int n_ctx_orig = node.params[2];
        if (ext_factor_ != 0.0f && n_ctx_orig > 0) {
            corr_[0] = std::max(0.0f, std::floor(yarn_corr_dim(n_dims_, n_ctx_orig, node.param_f(7), base_)));
            corr_[1] = std::min(static_cast<float>(n_dims_ - 1),
                                std::ceil(yarn_corr_dim(n_dims_, n_ctx_orig, node.param_f(8), base_)));
        }
    }

    // out = in (one head of `head` values) rotated for token `token` at position `pos`.
    void rotate(const float* in, float* out, int64_t head, int64_t token, int32_t pos) {
        const int half = n_dims_ / 2;
        const bool cached = half <= kCached;
        if (cached && token != cached_token_) {
            for (int i0 = 0; i0 < n_dims_; i0 += 2) angle(pos, i0, &cos_[i0 / 2], &sin_[i0 / 2]);
            cached_token_ = token;
        }
        for (int i0 = 0; i0 < n_dims_; i0 += 2) {
            float c, s;
            if (cached) {
                c = cos_[i0 / 2];
                s = sin_[i0 / 2];
            } else {
                angle(pos, i0, &c, &s);
            }
            const int a = neox_ ? i0 / 2 : i0;
            const int b = neox_ ? i0 / 2 + half : i0 + 1;
            const float x0 = in[a], x1 = in[b];
            out[a] = x0 * c - x1 * s;
            out[b] = x0 * s + x1 * c;
        }
        for (int64_t i = n_dims_; i < head; ++i) out[i] = in[i];
    }

private:
    static constexpr int kCached = 256;

    void angle(double p_t, int i0, float* c, float* s) const {
        const double factor = ff_ ? ff_[i0 / 2] : 1.0;
        const double te_d = p_t * std::pow(static_cast<double>(base_), -static_cast<double>(i0) / n_dims_) / factor;
        double theta = freq_scale_ * te_d;
        float mscale = attn_factor_;
        if (ext_factor_ != 0.0f) {
            const double mix = yarn_ramp(corr_[0], corr_[1], i0) * ext_factor_;
            theta = theta * (1.0 - mix) + te_d * mix;
            mscale *= 1.0f + 0.1f * std::log(1.0f / freq_scale_);
        }
        *c = static_cast<float>(std::cos(theta)) * mscale;
        *s = static_cast<float>(std::sin(theta)) * mscale;
    }

    const float* ff_;
    int n_dims_;
    bool neox_;
    float base_, freq_scale_, ext_factor_, attn_factor_;
    float corr_[2] = {0.0f, 0.0f};
    float cos_[kCached], sin_[kCached];
    int64_t cached_token_ = -1;
};

int64_t row_index(const Tensor& idx, int64_t i) {
    const char* ip = static_cast<const char*>(idx.data) + i * idx.nb[0];
    return idx.type == DType::I32 ? *reinterpret_cast<const int32_t*>(ip) : *reinterpret_cast<const int64_t*>(ip);
}

}  // namespace

void op_rope(const Tensor& node, const ComputeParams& p) {
    const Tensor& x = *node.src[0];
    const int32_t* pos = static_cast<const int32_t*>(node.src[1]->data);
    Rotation rot(node, node.src[2]);
    int64_t rb, re;
    split_rows(x.ne[1] * x.ne[2], p.ith, p.nth, &rb, &re);  // rows = (head, token), heads fastest
    for (int64_t r = rb; r < re; ++r) {
        const int64_t ih = r % x.ne[1], it = r / x.ne[1];
        rot.rotate(reinterpret_cast<const float*>(x.row_ptr(ih, it)), reinterpret_cast<float*>(node.row_ptr(ih, it)),
                   x.ne[0], it, pos[it]);
    }
}

// rope_set_rows: per token, its heads rotated into scratch, then converted into the row of
// the destination (set_rows). The same float operations as rope, then set_rows.
void op_rope_set_rows(const Tensor& node, const ComputeParams& p) {
    const Tensor& x = *node.src[1];  // [head, n_head, n]
    const Tensor& idx = *node.src[2];
    const int32_t* pos = static_cast<const int32_t*>(node.src[3]->data);
    Rotation rot(node, node.src[4]);
    float* rotated = reinterpret_cast<float*>(p.work);
    int64_t tb, te;
    split_rows(x.ne[2], p.ith, p.nth, &tb, &te);
    for (int64_t it = tb; it < te; ++it) {
        const int64_t row = row_index(idx, it);
        if (row < 0 || row >= node.ne[1]) continue;  // the runtime validates positions
        for (int64_t ih = 0; ih < x.ne[1]; ++ih)
            rot.rotate(reinterpret_cast<const float*>(x.row_ptr(ih, it)), rotated + ih * x.ne[0], x.ne[0], it, pos[it]);
        quant::quantize_row(node.type, rotated, node.row_ptr(row), x.ne[0] * x.ne[1]);
    }
}

}  // namespace tessera::cpu
