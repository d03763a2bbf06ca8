// The op-parity cases of a decoding step's nodes that a GPU runs fused: an add and the RMS
// norm of its result before products of it, a gated activation before its product, and a whole
// gated feed-forward block (the gate and up products, their gated activation and the down
// product), each with a plain scalar reference; and products of two large sources.
#include <algorithm>
#include <cmath>

#include "tests/ops/cases.h"

namespace tessera::test {

namespace {

using Refs = std::vector<Leaf>;
using Out = std::vector<double>;

// A decoding step's row-wise nodes around its products, which a GPU may fuse: x = a + b,
// h = rms_norm(x) * w, then two products of h added to x (the add, the norm and the
// activations' quantization in one kernel); or h = swiglu(g, u) and its product.
// `computed`: a and b are results (a 2 and b / 2), whose memory h may take once x is made.
OpCase norm_products_case(DType t, int64_t K, int64_t M, uint32_t seed, bool computed = false) {
    OpCase c;
    c.name = "mul_mat after add + rms_norm " + tname(t) + " " + dims({K, M}) + (computed ? " of results" : "");
    c.leaves = {random_leaf(DType::F32, {K, M}, seed, 2.0), random_leaf(DType::F32, {K, M}, seed + 1, 2.0),
                random_leaf(DType::F32, {K}, seed + 2), random_leaf(t, {K, K}, seed + 3),
                random_leaf(t, {K, K}, seed + 4)};
    c.build = [=](Graph& g, std::vector<Tensor*>& l) {
        Tensor* x = computed ? g.add(g.scale(l[0], 2.0f), g.scale(l[1], 0.5f)) : g.add(l[0], l[1]);
        Tensor* h = g.rms_norm(x, 1e-5f, l[2]);
        return g.add(g.add(g.mul_mat(l[3], h), g.mul_mat(l[4], h)), x);
    };
    c.reference = [=](const Refs& l) {
        Out o;
        std::vector<double> x(static_cast<size_t>(K)), h(static_cast<size_t>(K));
        for (int64_t m = 0; m < M; ++m) {
            double sq = 0;
            for (int64_t k = 0; k < K; ++k) {
                x[static_cast<size_t>(k)] =
                    computed ? 2.0 * l[0].at(k, m) + 0.5 * l[1].at(k, m) : l[0].at(k, m) + l[1].at(k, m);
                sq += x[static_cast<size_t>(k)] * x[static_cast<size_t>(k)];
            }
            const double s = 1.0 / std::sqrt(sq / static_cast<double>(K) + 1e-5);
            for (int64_t k = 0; k < K; ++k) h[static_cast<size_t>(k)] = x[static_cast<size_t>(k)] * s * l[2].at(k);
            for (int64_t n = 0; n < K; ++n) {
                double d = 0;
                for (int64_t k = 0; k < K; ++k) d += (l[3].at(k, n) + l[4].at(k, n)) * h[static_cast<size_t>(k)];
                o.push_back(d + x[static_cast<size_t>(n)]);
            }
        }
        return o;
    };
    c.max_nmse = weight_bound(t);
    return c;
}

OpCase swiglu_product_case(DType t, int64_t K, int64_t N, int64_t M, uint32_t seed) {
    OpCase c;
    c.name = "mul_mat after swiglu " + tname(t) + " " + dims({K, N, M});
    c.leaves = {random_leaf(DType::F32, {K, M}, seed, 2.0), random_leaf(DType::F32, {K, M}, seed + 1, 2.0),
                random_leaf(t, {K, N}, seed + 2)};
    c.build = [](Graph& g, std::vector<Tensor*>& l) { return g.mul_mat(l[2], g.swiglu(l[0], l[1])); };
    c.reference = [=](const Refs& l) {
        Out o;
        for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
                double d = 0;
                for (int64_t k = 0; k < K; ++k) {
                    const double gv = l[0].at(k, m);
                    d += l[2].at(k, n) * (gv / (1.0 + std::exp(-gv))) * l[1].at(k, m);
                }
                o.push_back(d);
            }
        return o;
    };
    c.max_nmse = weight_bound(t);
    return c;
}

// A decoding step's gated feed-forward block: h = rms_norm(x) * w (or h = x where !norm),
// g = W_gate h, u = W_up h, a = act(g) * u (SiLU, or GELU's tanh form where gelu), y = W_down a.
// A GPU may quantize h once for both products and run them in one launch, and write a in the
// int8 form the down product reads; F gate and up rows; td: the down weight's type.
// up_first: the up product comes first in the graph.
OpCase gated_ffn_case(DType t, DType td, int64_t K, int64_t F, int64_t M, bool gelu, bool norm, bool up_first,
                      uint32_t seed) {
    OpCase c;
    c.name = std::string(gelu ? "geglu" : "swiglu") + " feed-forward " + tname(t) +
             (td != t ? ", down " + tname(td) : "") + " " + dims({K, F, M}) + (norm ? " after rms_norm" : "") +
             (up_first ? " (up first)" : "");
    c.leaves = {random_leaf(DType::F32, {K, M}, seed, 2.0), random_leaf(DType::F32, {K}, seed + 1),
                random_leaf(t, {K, F}, seed + 2), random_leaf(t, {K, F}, seed + 3), random_leaf(td, {F, K}, seed + 4)};
    c.build = [=](Graph& g, std::vector<Tensor*>& l) {
        Tensor* h = norm ? g.rms_norm(l[0], 1e-5f, l[1]) : l[0];
        Tensor *gate, *up;
        if (up_first) {
            up = g.mul_mat(l[3], h);
            gate = g.mul_mat(l[2], h);
        } else {
            gate = g.mul_mat(l[2], h);
            up = g.mul_mat(l[3], h);
        }
        return g.mul_mat(l[4], gelu ? g.geglu(gate, up) : g.swiglu(gate, up));
    };
    c.reference = [=](const Refs& l) {
        Out o;
        std::vector<double> h(static_cast<size_t>(K)), a(static_cast<size_t>(F));
        for (int64_t m = 0; m < M; ++m) {
            double sq = 0;
            for (int64_t k = 0; k < K; ++k) sq += l[0].at(k, m) * l[0].at(k, m);
            const double s = norm ? 1.0 / std::sqrt(sq / static_cast<double>(K) + 1e-5) : 1.0;
            for (int64_t k = 0; k < K; ++k) h[static_cast<size_t>(k)] = l[0].at(k, m) * s * (norm ? l[1].at(k) : 1.0);
            for (int64_t f = 0; f < F; ++f) {
                double gv = 0, uv = 0;
                for (int64_t k = 0; k < K; ++k) {
                    gv += l[2].at(k, f) * h[static_cast<size_t>(k)];
                    uv += l[3].at(k, f) * h[static_cast<size_t>(k)];
                }
                const double act =
                    gelu ? 0.5 * gv * (1.0 + std::tanh(0.7978845608028654 * (gv + 0.044715 * gv * gv * gv)))
                         : gv / (1.0 + std::exp(-gv));
                a[static_cast<size_t>(f)] = act * uv;
            }
            for (int64_t n = 0; n < K; ++n) {
                double d = 0;
                for (int64_t f = 0; f < F; ++f) d += l[4].at(f, n) * a[static_cast<size_t>(f)];
                o.push_back(d);
            }
        }
        return o;
    };
    c.max_nmse = std::max(weight_bound(t), weight_bound(td));
    // Twice: a device that records the graph once must give the same result when it runs again.
    c.evaluations = 2;
    return c;
}

// Two products of 8 long activation rows each, their sum: a GPU that quantizes each source
// into a buffer of its own per graph grows that buffer for the second while recording the
// graph, so the first run binds two buffers and the second (computed twice) one.
OpCase two_sources_case(DType t, int64_t K, int64_t N, int64_t M, uint32_t seed) {
    OpCase c;
    c.name = "mul_mat " + tname(t) + " of two sources " + dims({K, N, M}) + ", computed twice";
    c.leaves = {random_leaf(DType::F32, {K, M}, seed), random_leaf(DType::F32, {K, M}, seed + 1),
                random_leaf(t, {K, N}, seed + 2), random_leaf(t, {K, N}, seed + 3)};
    c.build = [](Graph& g, std::vector<Tensor*>& l) { return g.add(g.mul_mat(l[2], l[0]), g.mul_mat(l[3], l[1])); };
    c.reference = [=](const Refs& l) {
        Out o;
        for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
                double d = 0;
                for (int64_t k = 0; k < K; ++k) d += l[2].at(k, n) * l[0].at(k, m) + l[3].at(k, n) * l[1].at(k, m);
                o.push_back(d);
            }
        return o;
    };
    c.max_nmse = weight_bound(t);
    c.evaluations = 2;
    return c;
}

}  // namespace

void add_decode_steps(std::vector<OpCase>& cases) {
    uint32_t seed = 7000;
    for (DType t : {DType::Q4_0, DType::Q4_K, DType::F16}) {
        cases.push_back(norm_products_case(t, 256, 1, seed));
        cases.push_back(norm_products_case(t, 512, 3, seed + 5));
        cases.push_back(swiglu_product_case(t, 512, 24, 2, seed + 10));
        seed += 13;
    }
    // Q4_0 split rows (512 long) and the file's layout, one to three activation rows, either
    // product first, a down weight of another type.
    using D = DType;
    cases.push_back(gated_ffn_case(D::Q4_0, D::Q4_0, 512, 256, 1, false, true, false, seed));
    cases.push_back(gated_ffn_case(D::Q4_0, D::Q4_0, 96, 160, 3, true, false, true, seed + 5));
    cases.push_back(gated_ffn_case(D::Q4_K, D::Q6_K, 256, 512, 1, false, true, true, seed + 10));
    cases.push_back(gated_ffn_case(D::Q8_0, D::Q8_0, 256, 96, 2, false, true, false, seed + 15));
    cases.push_back(gated_ffn_case(D::Q8_0, D::Q4_0, 128, 96, 1, true, true, true, seed + 17));
    cases.push_back(gated_ffn_case(D::Q5_1, D::Q8_0, 64, 1024, 1, false, true, false, seed + 19));
    cases.push_back(gated_ffn_case(D::Q6_K, D::Q6_K, 256, 256, 1, true, true, false, seed + 20));
    // A float down weight after quantized gate and up products; float weights throughout.
    cases.push_back(gated_ffn_case(D::Q8_0, D::F16, 64, 40, 1, false, true, false, seed + 25));
    cases.push_back(gated_ffn_case(D::F16, D::F16, 64, 96, 1, false, true, false, seed + 30));
    cases.push_back(two_sources_case(D::Q8_0, 90112, 4, 8, seed + 35));
    // Rows longer than a GPU's 1024-element step of the norm's int8 copy, the last partial.
    cases.push_back(norm_products_case(D::Q4_0, 1280, 2, seed + 40));
    // One activation row over rows of 136 blocks: a GPU's int8 products take two blocks a
    // step for the first 128 of 64 invocations, then one.
    cases.push_back(norm_products_case(D::Q4_0, 4352, 1, seed + 45));
    cases.push_back(norm_products_case(D::Q4_K, 4352, 1, seed + 50));
    // The add's operands made in the graph: the norm's output may overlap them, so a GPU
    // fuses the add into the norm only where one workgroup does all the rows.
    cases.push_back(norm_products_case(D::Q4_0, 1024, 1, seed + 55, true));
    cases.push_back(norm_products_case(D::Q4_0, 1024, 5, seed + 60, true));
}

}  // namespace tessera::test
