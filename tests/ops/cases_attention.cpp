// The op-parity cases of flash attention: F32, F16 and Q8_0 caches, grouped-query heads,
// causal and sliding-window masks, soft-capping, decoding and prompt shapes, cache-shaped rows
// and several sequences of one cache.
#include <algorithm>
#include <cmath>

#include "tests/ops/cases.h"

namespace tessera::test {

namespace {

using Refs = std::vector<Leaf>;
using Out = std::vector<double>;

// Plain softmax attention of q = l[0] [D, n_q, H] over K = l[1] and V = l[2] ([D, n_kv, H_kv],
// or [D * H_kv, n_kv] cache rows), with the mask l[3] [n_kv, n_q] where masked; [D, H, n_q].
Out attention_ref(const Refs& l, int64_t H, int64_t H_kv, int64_t n_q, int64_t n_kv, int64_t D, bool masked,
                  float softcap, bool cache, float scale) {
    Out o;
    for (int64_t q = 0; q < n_q; ++q)
        for (int64_t h = 0; h < H; ++h) {
            const int64_t hk = h / (H / H_kv);
            std::vector<double> s(static_cast<size_t>(n_kv));
            double mx = -INFINITY;
            for (int64_t j = 0; j < n_kv; ++j) {
                double d = 0;
                for (int64_t i = 0; i < D; ++i)
                    d += l[0].at(i, q, h) * (cache ? l[1].at(hk * D + i, j) : l[1].at(i, j, hk));
                d *= scale;
                if (softcap > 0) d = softcap * std::tanh(d / softcap);
                if (masked) d += l[3].at(j, q);
                s[static_cast<size_t>(j)] = d;
                mx = std::max(mx, d);
            }
            double sum = 0;
            for (double& x : s) sum += (x = std::exp(x - mx));
            for (int64_t i = 0; i < D; ++i) {
                double acc = 0;
                for (int64_t j = 0; j < n_kv; ++j)
                    acc += s[static_cast<size_t>(j)] * (cache ? l[2].at(hk * D + i, j) : l[2].at(i, j, hk));
                o.push_back(acc / sum);
            }
        }
    return o;
}

void add_flash_attn(std::vector<OpCase>& cases) {
    struct Variant {
        DType kv;
        int64_t H, H_kv, n_q, n_kv, D;
        int mask;  // 0 none, 1 causal, 2 sliding window
        float softcap;
        bool cache = false;  // K and V viewed out of [D * H_kv, n_kv] rows, as the KV cache's
    };
    const Variant variants[] = {
        {DType::F32, 4, 4, 7, 33, 64, 1, 0},
        {DType::F16, 4, 4, 7, 33, 64, 1, 0},
        {DType::Q8_0, 4, 2, 7, 33, 64, 1, 0},
        {DType::F16, 6, 2, 1, 40, 128, 1, 0},
        {DType::F16, 8, 2, 5, 29, 32, 2, 0},
        {DType::F32, 2, 1, 3, 17, 64, 0, 0},
        {DType::F16, 4, 1, 4, 21, 64, 1, 30.0f},
        // Prompt-sized: several query blocks and key tiles (64), partial ones too, tiles a
        // window masks out entirely, and the long-context GQA shape.
        {DType::F16, 8, 2, 37, 150, 64, 1, 0},
        {DType::F16, 4, 4, 20, 130, 128, 2, 0},
        {DType::Q8_0, 4, 1, 18, 70, 32, 1, 30.0f},
        {DType::F32, 2, 2, 16, 64, 64, 0, 0},
        {DType::F16, 8, 2, 130, 200, 128, 1, 0},
        {DType::F16, 4, 1, 70, 100, 256, 2, 0},
        {DType::F16, 4, 2, 20, 90, 80, 1, 0},
        // Enough rows that a GPU's workgroups each take several steps of keys, unsplit: a
        // head a workgroup, and four heads of a KV head.
        {DType::F16, 4, 4, 130, 600, 64, 1, 0},
        {DType::F16, 8, 2, 260, 300, 128, 1, 0},
        // Prompts over cache-shaped rows: groups of 3 heads (blocks of rows that end inside a
        // group), a Q8_0 cache of 128-wide heads, and heads of 36 whose rows are not 16-byte
        // aligned.
        {DType::F16, 9, 3, 40, 300, 64, 1, 0, true},
        {DType::Q8_0, 8, 2, 33, 150, 128, 1, 0, true},
        {DType::F16, 4, 2, 24, 100, 36, 2, 0, true},
        // Decoding over a long context: keys split into chunks whose partial softmaxes are
        // merged (a partial last chunk, chunks a window hides entirely, soft-capping).
        {DType::F16, 8, 2, 1, 600, 64, 1, 0},
        {DType::Q8_0, 4, 4, 3, 700, 32, 2, 0},
        {DType::F16, 4, 1, 2, 520, 64, 1, 30.0f},
        {DType::F32, 2, 1, 1, 513, 64, 0, 0},
        // Decoding over more than 2048 keys, where a GPU may take a KV head's query heads in
        // one workgroup: groups of 4, and of 3 with a window.
        {DType::F16, 8, 2, 1, 2200, 64, 1, 0},
        {DType::Q8_0, 6, 2, 1, 2100, 32, 2, 0},
        // Decoding from cache-shaped rows (each key's heads side by side), read a chunk at a
        // time: 256 keys, and 64 where 8 heads of 128 make a chunk's rows larger.
        {DType::F16, 8, 2, 1, 300, 64, 1, 0, true},
        {DType::F32, 16, 8, 1, 200, 128, 1, 0, true},
        {DType::Q8_0, 8, 4, 2, 130, 64, 2, 0, true},
        // Decoding rows of a KV head beyond one block of 16 (groups of 16 at two positions), a
        // head size of 256 split over the keys, a Q8_0 cache of 128-wide heads.
        {DType::F16, 32, 1, 2, 90, 128, 2, 0},
        {DType::F16, 16, 2, 1, 300, 256, 1, 0},
        {DType::Q8_0, 8, 8, 1, 200, 128, 1, 30.0f, true},
        // Decoding over few keys, which a GPU may read all at once: the 8B shape's heads from
        // cache rows, exactly 256 keys under a window with soft-capping, one key, heads of 96.
        {DType::F16, 32, 8, 1, 160, 128, 1, 0, true},
        {DType::F16, 4, 1, 1, 256, 64, 2, 30.0f},
        {DType::F16, 2, 2, 1, 1, 64, 1, 0},
        {DType::F16, 4, 2, 1, 70, 96, 1, 0, true},
    };
    for (const Variant& v : variants) {
        OpCase c;
        c.name = "flash_attn kv " + tname(v.kv) + " H " + std::to_string(v.H) + "/" + std::to_string(v.H_kv) + " q " +
                 std::to_string(v.n_q) + " kv " + std::to_string(v.n_kv) + " D " + std::to_string(v.D) +
                 (v.mask == 1   ? " causal"
                  : v.mask == 2 ? " window 8"
                                : " no mask") +
                 (v.softcap > 0 ? " softcap" : "") + (v.cache ? " cache rows" : "");
        const std::vector<int64_t> kv_shape =
            v.cache ? std::vector<int64_t>{v.D * v.H_kv, v.n_kv} : std::vector<int64_t>{v.D, v.n_kv, v.H_kv};
        c.leaves = {random_leaf(DType::F32, {v.D, v.n_q, v.H}, 81), random_leaf(v.kv, kv_shape, 82),
                    random_leaf(v.kv, kv_shape, 83)};
        if (v.mask)
            c.leaves.push_back(float_leaf(DType::F16, {v.n_kv, v.n_q},
                                          causal_mask(v.n_kv, v.n_q, v.n_kv - v.n_q, v.mask == 2 ? 8 : 0)));
        const float scale = 1.0f / std::sqrt(static_cast<float>(v.D));
        c.build = [v, scale](Graph& g, std::vector<Tensor*>& l) {
            Tensor *k = l[1], *val = l[2];
            if (v.cache) {
                const int64_t ne[] = {v.D, v.n_kv, v.H_kv};
                const size_t nb[] = {type_traits(v.kv).type_size, k->nb[1], row_size(v.kv, v.D)};
                k = g.view(k, ne, nb, 0);
                val = g.view(val, ne, nb, 0);
            }
            return g.flash_attn(l[0], k, val, v.mask ? l[3] : nullptr, scale, v.softcap);
        };
        c.reference = [v, scale](const Refs& l) {
            return attention_ref(l, v.H, v.H_kv, v.n_q, v.n_kv, v.D, v.mask != 0, v.softcap, v.cache, scale);
        };
        c.max_nmse = 1e-9;
        cases.push_back(std::move(c));
    }
}

// Several sequences of one cache in one node (kv_start): slice s of q attends over the cache
// rows from kv_start[s] with its own mask. One query each (decoding) and five (tiled).
void add_flash_attn_sequences(std::vector<OpCase>& cases) {
    const int64_t D = 64, H = 4, H_kv = 2, rows = 90, n_kv = 40, S = 3;
    const std::vector<int64_t> starts = {0, 37, 50};
    for (int64_t n_q : {1, 5}) {
        OpCase c;
        c.name = "flash_attn kv F16 sequences " + std::to_string(S) + " q " + std::to_string(n_q) + " kv " +
                 std::to_string(n_kv) + " of " + std::to_string(rows) + " rows";
        std::vector<double> mask;
        for (int64_t s = 0; s < S; ++s) {  // sequence s holds 20 + 9 s keys
            const std::vector<double> m = causal_mask(n_kv, n_q, 20 + 9 * s - n_q, 0);
            mask.insert(mask.end(), m.begin(), m.end());
        }
        c.leaves = {random_leaf(DType::F32, {D, n_q, H, S}, 84), random_leaf(DType::F16, {D * H_kv, rows}, 85),
                    random_leaf(DType::F16, {D * H_kv, rows}, 86), float_leaf(DType::F16, {n_kv, n_q, 1, S}, mask),
                    int_leaf(DType::I32, {S}, starts)};
        const float scale = 1.0f / std::sqrt(static_cast<float>(D));
        c.build = [=](Graph& g, std::vector<Tensor*>& l) {
            const int64_t ne[] = {D, rows, H_kv};
            const size_t nb[] = {type_traits(DType::F16).type_size, l[1]->nb[1], row_size(DType::F16, D)};
            return g.flash_attn(l[0], g.view(l[1], ne, nb, 0), g.view(l[2], ne, nb, 0), l[3], scale, 0.0f, l[4]);
        };
        c.reference = [=](const Refs& l) {
            Out o;  // [D, H, n_q, S]
            for (int64_t s = 0; s < S; ++s)
                for (int64_t q = 0; q < n_q; ++q)
                    for (int64_t h = 0; h < H; ++h) {
                        const int64_t hk = h / (H / H_kv), j0 = starts[static_cast<size_t>(s)];
                        std::vector<double> w(static_cast<size_t>(n_kv));
                        double mx = -INFINITY;
                        for (int64_t j = 0; j < n_kv; ++j) {
                            double d = 0;
                            for (int64_t i = 0; i < D; ++i) d += l[0].at(i, q, h, s) * l[1].at(hk * D + i, j0 + j);
                            d = d * scale + l[3].at(j, q, 0, s);
                            w[static_cast<size_t>(j)] = d;
                            mx = std::max(mx, d);
                        }
                        double sum = 0;
                        for (double& x : w) sum += (x = std::exp(x - mx));
                        for (int64_t i = 0; i < D; ++i) {
                            double acc = 0;
                            for (int64_t j = 0; j < n_kv; ++j)
                                acc += w[static_cast<size_t>(j)] * l[2].at(hk * D + i, j0 + j);
                            o.push_back(acc / sum);
                        }
                    }
            return o;
        };
        c.max_nmse = 1e-9;
        cases.push_back(std::move(c));
    }
}

// Two attentions of one graph, the second's partial results (keys split: under 512 query rows)
// larger than the first's, computed twice: a device whose scratch buffer grows between the two
// while it records the graph must not submit the recording again with the old buffer bound.
void add_flash_attn_growing_scratch(std::vector<OpCase>& cases) {
    const int64_t D = 256, n_kv = 600, n_q[2] = {100, 511};
    OpCase c;
    c.name = "flash_attn kv F16 q 100 then 511 kv 600 D 256, computed twice";
    for (int i = 0; i < 2; ++i)
        c.leaves.push_back(random_leaf(DType::F32, {D, n_q[i], 1}, 87 + static_cast<uint32_t>(i)));
    c.leaves.push_back(random_leaf(DType::F16, {D, n_kv, 1}, 89));
    c.leaves.push_back(random_leaf(DType::F16, {D, n_kv, 1}, 90));
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    c.build = [scale](Graph& g, std::vector<Tensor*>& l) {
        return g.concat(g.flash_attn(l[0], l[2], l[3], nullptr, scale, 0.0f),
                        g.flash_attn(l[1], l[2], l[3], nullptr, scale, 0.0f), 2);
    };
    c.reference = [=](const Refs& l) {
        Out o = attention_ref({l[0], l[2], l[3]}, 1, 1, n_q[0], n_kv, D, false, 0.0f, false, scale);
        const Out b = attention_ref({l[1], l[2], l[3]}, 1, 1, n_q[1], n_kv, D, false, 0.0f, false, scale);
        o.insert(o.end(), b.begin(), b.end());
        return o;
    };
    c.max_nmse = 1e-9;
    c.evaluations = 2;
    cases.push_back(std::move(c));
}

// A decoding step's attention and its output projection, which a GPU may run as one attention
// kernel that also writes the int8 activations of the product: one key split and several
// (merged), one and two query rows, head sizes 64 and 128, legacy and K-quant weights.
void add_flash_attn_products(std::vector<OpCase>& cases) {
    struct Variant {
        DType w;
        int64_t H, H_kv, n_q, n_kv, D, N;
    };
    const Variant variants[] = {
        {DType::Q4_0, 8, 2, 1, 40, 64, 96},   {DType::Q8_0, 8, 2, 1, 300, 128, 64},  {DType::Q4_K, 4, 4, 2, 90, 64, 32},
        {DType::Q6_K, 32, 4, 1, 700, 64, 48}, {DType::Q4_0, 32, 8, 1, 100, 128, 64},
    };
    for (const Variant& v : variants) {
        OpCase c;
        c.name = "mul_mat " + tname(v.w) + " after flash_attn H " + std::to_string(v.H) + "/" + std::to_string(v.H_kv) +
                 " q " + std::to_string(v.n_q) + " kv " + std::to_string(v.n_kv) + " D " + std::to_string(v.D);
        const int64_t K = v.D * v.H;
        c.leaves = {random_leaf(DType::F32, {v.D, v.n_q, v.H}, 91), random_leaf(DType::F16, {v.D, v.n_kv, v.H_kv}, 92),
                    random_leaf(DType::F16, {v.D, v.n_kv, v.H_kv}, 93),
                    float_leaf(DType::F16, {v.n_kv, v.n_q}, causal_mask(v.n_kv, v.n_q, v.n_kv - v.n_q, 0)),
                    random_leaf(v.w, {K, v.N}, 94)};
        const float scale = 1.0f / std::sqrt(static_cast<float>(v.D));
        c.build = [v, K, scale](Graph& g, std::vector<Tensor*>& l) {
            Tensor* att = g.flash_attn(l[0], l[1], l[2], l[3], scale, 0.0f);
            return g.mul_mat(l[4], g.reshape(att, {K, v.n_q}));
        };
        c.reference = [v, K, scale](const Refs& l) {
            const Out att = attention_ref(l, v.H, v.H_kv, v.n_q, v.n_kv, v.D, true, 0.0f, false, scale);
            Out o;
            for (int64_t q = 0; q < v.n_q; ++q)
                for (int64_t n = 0; n < v.N; ++n) {
                    double d = 0;
                    for (int64_t k = 0; k < K; ++k) d += l[4].at(k, n) * att[static_cast<size_t>(q * K + k)];
                    o.push_back(d);
                }
            return o;
        };
        c.max_nmse = weight_bound(v.w);
        cases.push_back(std::move(c));
    }
}

// -------------------------------------------------------------------------------------

}  // namespace

void add_attention(std::vector<OpCase>& cases) {
    add_flash_attn(cases);
    add_flash_attn_sequences(cases);
    add_flash_attn_growing_scratch(cases);
    add_flash_attn_products(cases);
}

}  // namespace tessera::test
