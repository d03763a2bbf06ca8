// One transformer layer built by hand as a graph (RMSNorm, Q/K/V projections, RoPE, KV
// cache write, grouped-query flash attention, output projection, SwiGLU FFN, residuals),
// evaluated for a 5-token prompt and then one more token through the cache, against a
// straightforward scalar computation in double precision.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"
#include "tensor/scheduler.h"

using namespace tessera;

namespace {

constexpr int64_t kEmbd = 64, kHead = 16, kNHead = 4, kNHeadKv = 2, kFf = 96, kCtx = 16;
constexpr int64_t kEmbdKv = kHead * kNHeadKv;
constexpr float kEps = 1e-5f, kBase = 10000.0f;

using Mat = std::vector<double>;  // row-major [rows][cols]

struct Weight {
    Tensor* t;
    Mat values;  // [ne1][ne0] as the kernels see them (after quantization)
};

struct Layer {
    Graph weights_graph;
    Weight attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
    Tensor *k_cache, *v_cache;
    std::unique_ptr<Buffer> buffer;
};

Weight make_weight(Graph& g, DType type, int64_t ne0, int64_t ne1, const char* name) {
    Weight w;
    w.t = ne1 == 1 ? g.new_tensor(type, {ne0}, name) : g.new_tensor(type, {ne0, ne1}, name);
    return w;
}

void fill_weight(Weight& w, std::mt19937& rng, float scale, float offset = 0.0f) {
    std::uniform_real_distribution<float> u(-scale, scale);
    const int64_t ne0 = w.t->ne[0], ne1 = w.t->ne[1];
    std::vector<float> row(static_cast<size_t>(ne0)), back(static_cast<size_t>(ne0));
    w.values.resize(static_cast<size_t>(ne0 * ne1));
    for (int64_t r = 0; r < ne1; ++r) {
        for (float& v : row) v = offset + u(rng);
        char* dst = static_cast<char*>(w.t->data) + r * w.t->nb[1];
        quant::quantize_row(w.t->type, row.data(), dst, ne0);
        quant::dequantize_row(w.t->type, dst, back.data(), ne0);
        for (int64_t i = 0; i < ne0; ++i) w.values[static_cast<size_t>(r * ne0 + i)] = back[static_cast<size_t>(i)];
    }
}

void init_layer(Layer& L, Backend& cpu) {
    std::mt19937 rng(42);
    Graph& g = L.weights_graph;
    L.attn_norm = make_weight(g, DType::F32, kEmbd, 1, "attn_norm");
    L.wq = make_weight(g, DType::Q8_0, kEmbd, kEmbd, "wq");
    L.wk = make_weight(g, DType::F16, kEmbd, kEmbdKv, "wk");
    L.wv = make_weight(g, DType::F32, kEmbd, kEmbdKv, "wv");
    L.wo = make_weight(g, DType::Q4_0, kEmbd, kEmbd, "wo");
    L.ffn_norm = make_weight(g, DType::F32, kEmbd, 1, "ffn_norm");
    L.w_gate = make_weight(g, DType::Q5_1, kEmbd, kFf, "w_gate");
    L.w_up = make_weight(g, DType::Q8_0, kEmbd, kFf, "w_up");
    L.w_down = make_weight(g, DType::F16, kFf, kEmbd, "w_down");
    L.k_cache = g.new_tensor(DType::F16, {kEmbdKv, kCtx}, "k_cache");
    L.v_cache = g.new_tensor(DType::F16, {kEmbdKv, kCtx}, "v_cache");
    Tensor* all[] = {L.attn_norm.t, L.wq.t, L.wk.t, L.wv.t, L.wo.t, L.ffn_norm.t,
                     L.w_gate.t, L.w_up.t, L.w_down.t, L.k_cache, L.v_cache};
    L.buffer = allocate_tensors(cpu, all, BufferUsage::Weights);
    fill_weight(L.attn_norm, rng, 0.2f, 1.0f);
    fill_weight(L.ffn_norm, rng, 0.2f, 1.0f);
    for (Weight* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) fill_weight(*w, rng, 0.25f);
    std::memset(L.k_cache->data, 0, L.k_cache->n_bytes());
    std::memset(L.v_cache->data, 0, L.v_cache->n_bytes());
}

// The graph for `n` tokens at positions p0.., attending to the cache's first p0 + n rows.
Tensor* build_layer(Graph& g, Layer& L, int64_t n, int64_t p0, Tensor** x_out, Tensor** pos_out, Tensor** mask_out) {
    const int64_t n_kv = p0 + n;
    Tensor* x = g.input(DType::F32, {kEmbd, n}, "x");
    Tensor* pos = g.input(DType::I32, {n}, "pos");
    Tensor* mask = g.input(DType::F16, {n_kv, n}, "mask");
    RopeParams rp;
    rp.n_dims = kHead;
    rp.freq_base = kBase;

    Tensor* h = g.mul(g.rms_norm(x, kEps), L.attn_norm.t);
    Tensor* q = g.rope(g.reshape(g.mul_mat(L.wq.t, h), {kHead, kNHead, n}), pos, nullptr, rp);
    Tensor* k = g.rope(g.reshape(g.mul_mat(L.wk.t, h), {kHead, kNHeadKv, n}), pos, nullptr, rp);
    Tensor* v = g.mul_mat(L.wv.t, h);
    Tensor* kc = g.set_rows(L.k_cache, g.reshape(k, {kEmbdKv, n}), pos);
    Tensor* vc = g.set_rows(L.v_cache, v, pos);
    const int64_t ne[] = {kHead, n_kv, kNHeadKv};
    const size_t nb[] = {2, L.k_cache->nb[1], kHead * 2};
    Tensor* kv_k = g.view(kc, ne, nb, 0);
    Tensor* kv_v = g.view(vc, ne, nb, 0);
    Tensor* att = g.flash_attn(g.permute(q, 0, 2, 1, 3), kv_k, kv_v, mask, 1.0f / std::sqrt(float(kHead)));
    Tensor* x2 = g.add(g.mul_mat(L.wo.t, g.reshape(att, {kEmbd, n})), x);
    Tensor* h2 = g.mul(g.rms_norm(x2, kEps), L.ffn_norm.t);
    Tensor* ffn = g.mul_mat(L.w_down.t, g.swiglu(g.mul_mat(L.w_gate.t, h2), g.mul_mat(L.w_up.t, h2)));
    Tensor* out = g.add(ffn, x2);
    g.mark_output(out);
    *x_out = x;
    *pos_out = pos;
    *mask_out = mask;
    return out;
}

// ---- the scalar reference ----

std::vector<double> matvec(const Mat& w, int64_t rows, int64_t cols, const std::vector<double>& x) {
    std::vector<double> y(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
        double s = 0;
        for (int64_t c = 0; c < cols; ++c) s += w[static_cast<size_t>(r * cols + c)] * x[static_cast<size_t>(c)];
        y[static_cast<size_t>(r)] = s;
    }
    return y;
}

std::vector<double> rmsnorm(const std::vector<double>& x, const Mat& w) {
    double ss = 0;
    for (double v : x) ss += v * v;
    double s = 1 / std::sqrt(ss / static_cast<double>(x.size()) + kEps);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * s * w[i];
    return y;
}

void rope_inplace(std::vector<double>& v, int64_t heads, int64_t pos) {
    for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < kHead / 2; ++i) {
            double theta = static_cast<double>(pos) * std::pow(double(kBase), -2.0 * static_cast<double>(i) / kHead);
            double& a = v[static_cast<size_t>(h * kHead + 2 * i)];
            double& b = v[static_cast<size_t>(h * kHead + 2 * i + 1)];
            double x0 = a, x1 = b;
            a = x0 * std::cos(theta) - x1 * std::sin(theta);
            b = x0 * std::sin(theta) + x1 * std::cos(theta);
        }
}

double f16_round(double v) { return fp16_to_fp32(fp32_to_fp16(static_cast<float>(v))); }

struct RefCache {
    std::vector<std::vector<double>> k, v;  // per position, [kEmbdKv], F16-rounded
};

std::vector<double> reference_token(const Layer& L, RefCache& cache, const std::vector<double>& x, int64_t pos) {
    std::vector<double> h = rmsnorm(x, L.attn_norm.values);
    std::vector<double> q = matvec(L.wq.values, kEmbd, kEmbd, h);
    std::vector<double> k = matvec(L.wk.values, kEmbdKv, kEmbd, h);
    std::vector<double> v = matvec(L.wv.values, kEmbdKv, kEmbd, h);
    rope_inplace(q, kNHead, pos);
    rope_inplace(k, kNHeadKv, pos);
    for (double& e : k) e = f16_round(e);
    for (double& e : v) e = f16_round(e);
    cache.k.push_back(k);
    cache.v.push_back(v);
    std::vector<double> att(static_cast<size_t>(kEmbd));
    for (int64_t hh = 0; hh < kNHead; ++hh) {
        const int64_t hk = hh / (kNHead / kNHeadKv);
        std::vector<double> s;
        double mx = -INFINITY;
        for (size_t j = 0; j <= static_cast<size_t>(pos); ++j) {
            double d = 0;
            for (int64_t i = 0; i < kHead; ++i)
                d += q[static_cast<size_t>(hh * kHead + i)] * cache.k[j][static_cast<size_t>(hk * kHead + i)];
            s.push_back(d / std::sqrt(double(kHead)));
            mx = std::max(mx, s.back());
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t i = 0; i < kHead; ++i) {
            double acc = 0;
            for (size_t j = 0; j < s.size(); ++j) acc += s[j] * cache.v[j][static_cast<size_t>(hk * kHead + i)];
            att[static_cast<size_t>(hh * kHead + i)] = acc / sum;
        }
    }
    std::vector<double> o = matvec(L.wo.values, kEmbd, kEmbd, att);
    std::vector<double> x2(x.size());
    for (size_t i = 0; i < x.size(); ++i) x2[i] = x[i] + o[i];
    std::vector<double> h2 = rmsnorm(x2, L.ffn_norm.values);
    std::vector<double> gt = matvec(L.w_gate.values, kFf, kEmbd, h2), up = matvec(L.w_up.values, kFf, kEmbd, h2);
    for (int64_t i = 0; i < kFf; ++i) {
        double gv = gt[static_cast<size_t>(i)];
        gt[static_cast<size_t>(i)] = gv / (1 + std::exp(-gv)) * up[static_cast<size_t>(i)];
    }
    std::vector<double> d = matvec(L.w_down.values, kEmbd, kFf, gt);
    for (size_t i = 0; i < x.size(); ++i) x2[i] += d[i];
    return x2;
}

}  // namespace

TEST_CASE("a hand-built transformer layer matches a scalar computation, prompt then cached decode") {
    cpu::CpuBackend cpu("CPU");
    cpu.set_threads(3);
    Layer L;
    init_layer(L, cpu);
    Scheduler sched({&cpu});
    RefCache ref_cache;
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(-1, 1);

    int64_t p0 = 0;
    for (int64_t n : {5, 1, 2}) {
        CAPTURE(p0);
        Graph g;
        Tensor *x, *pos, *mask;
        Tensor* out = build_layer(g, L, n, p0, &x, &pos, &mask);
        sched.plan(g);
        std::vector<std::vector<double>> xs(static_cast<size_t>(n));
        for (int64_t t = 0; t < n; ++t) {
            static_cast<int32_t*>(pos->data)[t] = static_cast<int32_t>(p0 + t);
            for (int64_t i = 0; i < kEmbd; ++i) {
                float v = u(rng);
                static_cast<float*>(x->data)[t * kEmbd + i] = v;
                xs[static_cast<size_t>(t)].push_back(v);
            }
            for (int64_t j = 0; j < p0 + n; ++j)
                static_cast<uint16_t*>(mask->data)[t * (p0 + n) + j] = fp32_to_fp16(j <= p0 + t ? 0.0f : -INFINITY);
        }
        sched.compute(g);

        double err = 0, norm = 0;
        for (int64_t t = 0; t < n; ++t) {
            std::vector<double> want = reference_token(L, ref_cache, xs[static_cast<size_t>(t)], p0 + t);
            const float* got = static_cast<const float*>(out->data) + t * kEmbd;
            for (int64_t i = 0; i < kEmbd; ++i) {
                err += (got[i] - want[static_cast<size_t>(i)]) * (got[i] - want[static_cast<size_t>(i)]);
                norm += want[static_cast<size_t>(i)] * want[static_cast<size_t>(i)];
            }
        }
        CAPTURE(err / norm);
        MESSAGE("layer step of ", n, " tokens at ", p0, ": nmse ", err / norm);
        // The weights are quantized (Q8_0, Q4_0, Q5_1), and the fast kernels round the
        // activations to 8-bit blocks for those: the op-parity bound for quantized types.
        CHECK(err / norm < 5e-4);
        p0 += n;
    }
}
