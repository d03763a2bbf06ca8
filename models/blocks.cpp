// Shared model pieces: metadata reading, norms, attention with the KV cache, FFNs.
#include "models/blocks.h"

#include <cmath>
#include <limits>

#include "tensor/error.h"

namespace tessera::models {

// ---------------------------------------------------------------------------------------
// Metadata

bool MetaReader::has(const std::string& key) const { return f_.find(full(key)) != nullptr; }

int32_t MetaReader::get_i32(const std::string& key) const {
    if (!has(key)) throw Error(f_.path() + ": missing metadata key '" + full(key) + "'", ErrorKind::BadFile);
    return get_i32(key, 0);
}

int32_t MetaReader::get_i32(const std::string& key, int32_t fallback) const {
    int64_t v = f_.get_int(full(key), fallback);
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
        throw Error(f_.path() + ": metadata key '" + full(key) + "' value " + std::to_string(v) + " is out of range",
                    ErrorKind::BadFile);
    return static_cast<int32_t>(v);
}

float MetaReader::get_f32(const std::string& key, float fallback) const {
    return static_cast<float>(f_.get_float(full(key), fallback));
}

std::string MetaReader::get_string(const std::string& key, const std::string& fallback) const {
    return std::string(f_.get_string(full(key), fallback));
}

namespace {

[[noreturn]] void bad_hparam(const gguf::File& f, const std::string& key, const std::string& problem) {
    throw Error(f.path() + ": metadata key '" + key + "': " + problem, ErrorKind::BadFile);
}

}  // namespace

void read_common_hparams(const gguf::File& f, HParams& hp, bool rms) {
    const std::string& a = hp.arch;
    MetaReader m(f, a);
    hp.name = std::string(f.get_string("general.name", ""));
    hp.n_layer = m.get_i32("block_count");
    hp.n_ctx_train = m.get_i32("context_length", 4096);
    hp.n_embd = m.get_i32("embedding_length");
    hp.n_ff = m.get_i32("feed_forward_length");
    hp.n_head = m.get_i32("attention.head_count");
    hp.n_head_kv = m.get_i32("attention.head_count_kv", hp.n_head);
    if (hp.n_layer <= 0 || hp.n_layer > 4096) bad_hparam(f, a + ".block_count", "must be 1 to 4096");
    if (hp.n_embd <= 0) bad_hparam(f, a + ".embedding_length", "must be positive");
    if (hp.n_ff <= 0) bad_hparam(f, a + ".feed_forward_length", "must be positive");
    if (hp.n_head <= 0) bad_hparam(f, a + ".attention.head_count", "must be positive");
    if (hp.n_head_kv <= 0 || hp.n_head % hp.n_head_kv != 0)
        bad_hparam(f, a + ".attention.head_count_kv",
                   std::to_string(hp.n_head_kv) + " must divide the head count " + std::to_string(hp.n_head));
    hp.head_dim_k = m.get_i32("attention.key_length", hp.n_embd / hp.n_head);
    hp.head_dim_v = m.get_i32("attention.value_length", hp.head_dim_k);
    if (hp.head_dim_k <= 0 || hp.head_dim_v <= 0) bad_hparam(f, a + ".attention.key_length", "must be positive");
    hp.n_rot = m.get_i32("rope.dimension_count", hp.head_dim_k);
    if (hp.n_rot <= 0 || hp.n_rot % 2 != 0 || hp.n_rot > hp.head_dim_k)
        bad_hparam(
            f, a + ".rope.dimension_count",
            std::to_string(hp.n_rot) + " must be even and at most the head size " + std::to_string(hp.head_dim_k));
    hp.norm_eps = m.get_f32(rms ? "attention.layer_norm_rms_epsilon" : "attention.layer_norm_epsilon", 1e-5f);
    hp.rope_freq_base = m.get_f32("rope.freq_base", 10000.0f);
    if (!(hp.rope_freq_base > 1.0f)) bad_hparam(f, a + ".rope.freq_base", "must be greater than 1");

    // RoPE scaling: "linear" divides positions; "yarn" mixes in extrapolation.
    std::string scaling = m.get_string("rope.scaling.type", "none");
    float factor = m.get_f32("rope.scaling.factor", m.get_f32("rope.scale_linear", 1.0f));
    if (scaling == "none" && m.has("rope.scale_linear")) scaling = "linear";
    if (scaling == "linear" || scaling == "yarn") {
        if (!(factor > 0.0f)) bad_hparam(f, a + ".rope.scaling.factor", "must be positive");
        hp.rope_freq_scale = 1.0f / factor;
    } else if (scaling != "none" && scaling != "llama3" && scaling != "longrope") {
        throw Error(f.path() + ": RoPE scaling type '" + scaling + "' is not supported (linear, yarn)",
                    ErrorKind::Unsupported);
    }
    hp.rope_n_ctx_orig = m.get_i32("rope.scaling.original_context_length", hp.n_ctx_train);
    if (scaling == "yarn") {
        hp.rope_yarn_ext_factor = m.get_f32("rope.scaling.yarn_ext_factor", 1.0f);
        hp.rope_attn_factor = m.get_f32("rope.scaling.attn_factor", 1.0f);
    }

    // The vocabulary size: explicit, else the tokenizer's, else the embedding's rows.
    hp.n_vocab = m.get_i32("vocab_size", 0);
    if (hp.n_vocab == 0) {
        if (const gguf::Value* t = f.find("tokenizer.ggml.tokens"); t && t->type() == gguf::ValueType::ARRAY)
            hp.n_vocab = static_cast<int32_t>(t->size());
        else if (const gguf::TensorInfo* e = f.find_tensor("token_embd.weight"))
            hp.n_vocab = static_cast<int32_t>(e->ne[1]);
    }
    if (hp.n_vocab <= 0) bad_hparam(f, a + ".vocab_size", "missing, and no tokenizer or embedding to infer it from");
    hp.layer_is_swa.assign(static_cast<size_t>(hp.n_layer), false);
}

// ---------------------------------------------------------------------------------------
// Weights

void load_common_globals(WeightSource& src, const HParams& hp, Weights& w) {
    w.tok_embd = src.require("token_embd.weight", {hp.n_embd, hp.n_vocab});
    w.output_norm = src.require("output_norm.weight", {hp.n_embd});
    w.output = src.optional("output.weight", {hp.n_embd, hp.n_vocab});
    if (!w.output) w.output = w.tok_embd;  // tied embeddings
    w.rope_freqs = src.optional("rope_freqs.weight", {hp.n_rot / 2});
}

void load_common_layer(WeightSource& src, const HParams& hp, int il, LayerWeights& l) {
    const std::string p = "blk." + std::to_string(il) + ".";
    const int64_t q_out = static_cast<int64_t>(hp.head_dim_k) * hp.n_head;
    const int64_t o_in = static_cast<int64_t>(hp.head_dim_v) * hp.n_head;
    l.attn_norm = src.require(p + "attn_norm.weight", {hp.n_embd});
    l.wq = src.require(p + "attn_q.weight", {hp.n_embd, q_out});
    l.wk = src.require(p + "attn_k.weight", {hp.n_embd, hp.n_embd_k_gqa()});
    l.wv = src.require(p + "attn_v.weight", {hp.n_embd, hp.n_embd_v_gqa()});
    l.wo = src.require(p + "attn_output.weight", {o_in, hp.n_embd});
    l.bq = src.optional(p + "attn_q.bias", {q_out});
    l.bk = src.optional(p + "attn_k.bias", {hp.n_embd_k_gqa()});
    l.bv = src.optional(p + "attn_v.bias", {hp.n_embd_v_gqa()});
    l.bo = src.optional(p + "attn_output.bias", {hp.n_embd});
    l.ffn_norm = src.require(p + "ffn_norm.weight", {hp.n_embd});
    l.ffn_gate = src.require(p + "ffn_gate.weight", {hp.n_embd, hp.n_ff});
    l.ffn_up = src.require(p + "ffn_up.weight", {hp.n_embd, hp.n_ff});
    l.ffn_down = src.require(p + "ffn_down.weight", {hp.n_ff, hp.n_embd});
}

// ---------------------------------------------------------------------------------------
// Graph pieces

Tensor* rms_norm(Graph& g, Tensor* x, Tensor* w, float eps) {
    // A norm weight of one row is fused into the norm (one pass over the activations).
    if (!w || (w->type == DType::F32 && w->ne[0] == x->ne[0] && w->n_rows() == 1)) return g.rms_norm(x, eps, w);
    return g.mul(g.rms_norm(x, eps), w);
}

namespace {

Tensor* linear(Graph& g, Tensor* w, Tensor* b, Tensor* x) {
    Tensor* y = g.mul_mat(w, x);
    return b ? g.add(y, b) : y;
}

}  // namespace

Tensor* self_attention(const ForwardInputs& in, const LayerWeights& l, int il, Tensor* x, Tensor* mask) {
    Graph& g = *in.g;
    const HParams& hp = *in.hp;
    const int64_t n = in.n_tokens;
    const int64_t hd = hp.head_dim_k, hdv = hp.head_dim_v;

    // q: [hd, n_head, n], k: [hd, n_head_kv, n], v: [hdv * n_head_kv, n]
    Tensor *q, *k, *v;
    if (l.wqkv) {
        // One product, then the three row ranges of its output.
        Tensor* qkv = g.mul_mat(l.wqkv, x);
        const int64_t nq = hd * hp.n_head, nk = hd * hp.n_head_kv, nv = hdv * hp.n_head_kv;
        const size_t f = sizeof(float);
        auto part = [&](int64_t rows, int64_t first) {
            const int64_t ne[] = {rows, n};
            const size_t nb[] = {f, qkv->nb[1]};
            return g.cont(g.view(qkv, ne, nb, static_cast<size_t>(first) * f));
        };
        q = g.reshape(part(nq, 0), {hd, hp.n_head, n});
        k = g.reshape(part(nk, nq), {hd, hp.n_head_kv, n});
        v = part(nv, nq + nk);
    } else {
        q = g.reshape(linear(g, l.wq, l.bq, x), {hd, hp.n_head, n});
        k = g.reshape(linear(g, l.wk, l.bk, x), {hd, hp.n_head_kv, n});
        v = linear(g, l.wv, l.bv, x);
    }
    if (l.q_norm) q = rms_norm(g, q, l.q_norm, hp.norm_eps);
    if (l.k_norm) k = rms_norm(g, k, l.k_norm, hp.norm_eps);

    RopeParams rp;
    rp.n_dims = hp.n_rot;
    rp.mode = hp.rope_mode;
    const bool swa = hp.layer_is_swa[static_cast<size_t>(il)];
    rp.freq_base = swa && hp.rope_freq_base_swa > 0.0f ? hp.rope_freq_base_swa : hp.rope_freq_base;
    rp.freq_scale = hp.rope_freq_scale;
    rp.ext_factor = hp.rope_yarn_ext_factor;
    rp.attn_factor = hp.rope_attn_factor;
    rp.n_ctx_orig = hp.rope_n_ctx_orig;
    Tensor* factors = in.w->rope_freqs;
    if (in.w->rope_long && in.w->rope_short)  // LongRoPE
        factors = in.n_ctx > hp.rope_n_ctx_orig ? in.w->rope_long : in.w->rope_short;
    q = g.rope(q, in.positions, factors, rp);

    // Write this batch's keys (rotated on the way) and values into their cache rows, then
    // attend over the cache rows of the batch's sequence (the mask hides rows not yet
    // written): the first n_kv rows, or each span's own rows.
    Tensor* kc_all = (*in.k_cache)[static_cast<size_t>(il)];
    Tensor* vc_all = (*in.v_cache)[static_cast<size_t>(il)];
    const bool ring = swa && in.rows_swa;  // a sliding-window layer with a ring cache
    Tensor* rows = ring ? in.rows_swa : in.rows ? in.rows : in.positions;
    Tensor* kc = g.rope_set_rows(kc_all, k, in.positions, factors, rp, rows);
    Tensor* vc = g.set_rows(vc_all, v, rows);
    const float scale = hp.attn_scale > 0.0f ? hp.attn_scale : 1.0f / std::sqrt(static_cast<float>(hd));
    // The attention of the query rows qs over cache rows [cell0, cell0 + n_kv): [hdv * n_head, rows].
    auto attend = [&](Tensor* qs, int64_t cell0, int64_t n_kv, Tensor* m) {
        const int64_t k_ne[] = {hd, n_kv, hp.n_head_kv};
        const size_t k_nb[] = {type_traits(kc_all->type).type_size, kc_all->nb[1], row_size(kc_all->type, hd)};
        const int64_t v_ne[] = {hdv, n_kv, hp.n_head_kv};
        const size_t v_nb[] = {type_traits(vc_all->type).type_size, vc_all->nb[1], row_size(vc_all->type, hdv)};
        Tensor* kv_k = g.view(kc, k_ne, k_nb, static_cast<size_t>(cell0) * kc_all->nb[1]);
        Tensor* kv_v = g.view(vc, v_ne, v_nb, static_cast<size_t>(cell0) * vc_all->nb[1]);
        Tensor* att = g.flash_attn(g.permute(qs, 0, 2, 1, 3), kv_k, kv_v, m, scale, hp.attn_softcap);
        return g.reshape(att, {hdv * hp.n_head, qs->ne[2]});
    };
    Tensor* att = nullptr;
    if (in.spans.empty()) {
        att = attend(q, 0, ring ? in.n_kv_swa : in.n_kv, mask);
    } else {
        // One attention per sequence, over its own rows, joined in batch order; sequences
        // of one row each share one node, a slice per sequence.
        if (in.n_single > 0) {
            const int64_t ns = in.n_single, rows = kc_all->ne[1];
            const int64_t q_ne[] = {hd, hp.n_head, 1, ns};
            const size_t q_nb[] = {q->nb[0], q->nb[1], q->nb[2], q->nb[2]};
            const int64_t k_ne[] = {hd, rows, hp.n_head_kv};
            const size_t k_nb[] = {type_traits(kc_all->type).type_size, kc_all->nb[1], row_size(kc_all->type, hd)};
            const int64_t v_ne[] = {hdv, rows, hp.n_head_kv};
            const size_t v_nb[] = {type_traits(vc_all->type).type_size, vc_all->nb[1], row_size(vc_all->type, hdv)};
            Tensor* m = swa && in.mask_single_swa ? in.mask_single_swa : in.mask_single;
            Tensor* a = g.flash_attn(g.permute(g.view(q, q_ne, q_nb, 0), 0, 2, 1, 3), g.view(kc, k_ne, k_nb, 0),
                                     g.view(vc, v_ne, v_nb, 0), m, scale, hp.attn_softcap, in.kv_start);
            att = g.reshape(a, {hdv * hp.n_head, ns});
        }
        for (size_t i = static_cast<size_t>(in.n_single); i < in.spans.size(); ++i) {
            const SeqSpan& sp = in.spans[i];
            const int64_t ne[] = {hd, hp.n_head, sp.n_rows};
            const size_t nb[] = {q->nb[0], q->nb[1], q->nb[2]};
            Tensor* qs = g.view(q, ne, nb, static_cast<size_t>(sp.row0) * q->nb[2]);
            Tensor* a = attend(qs, sp.cell0, sp.n_kv, swa && sp.mask_swa ? sp.mask_swa : sp.mask);
            att = att ? g.concat(att, a, 1) : a;
        }
    }
    return linear(g, l.wo, l.bo, att);
}

Tensor* ffn_gated(Graph& g, const LayerWeights& l, Tensor* x, bool gelu) {
    Tensor *gate, *up;
    if (l.ffn_gate_up) {
        // Fused (phi3): the first half of the product's rows is the gate, the second the up.
        Tensor* gu = g.mul_mat(l.ffn_gate_up, x);
        const int64_t n_ff = gu->ne[0] / 2;
        const int64_t ne[] = {n_ff, gu->ne[1]};
        const size_t nb[] = {sizeof(float), gu->nb[1]};
        gate = g.cont(g.view(gu, ne, nb, 0));
        up = g.cont(g.view(gu, ne, nb, static_cast<size_t>(n_ff) * sizeof(float)));
    } else {
        gate = g.mul_mat(l.ffn_gate, x);
        up = g.mul_mat(l.ffn_up, x);
    }
    Tensor* act = gelu ? g.geglu(gate, up) : g.swiglu(gate, up);
    return g.mul_mat(l.ffn_down, act);
}

Tensor* build_pre_norm_decoder(const ForwardInputs& in, bool gelu) {
    Graph& g = *in.g;
    const HParams& hp = *in.hp;
    // x: [n_embd, n_tokens]
    Tensor* x = g.get_rows(in.w->tok_embd, in.tokens);
    for (int il = 0; il < hp.n_layer; ++il) {
        const LayerWeights& l = in.w->layers[static_cast<size_t>(il)];
        Tensor* mask = hp.layer_is_swa[static_cast<size_t>(il)] && in.mask_swa ? in.mask_swa : in.mask;
        Tensor* h = rms_norm(g, x, l.attn_norm, hp.norm_eps);
        x = g.add(x, self_attention(in, l, il, h, mask));
        h = rms_norm(g, x, l.ffn_norm, hp.norm_eps);
        x = g.add(x, ffn_gated(g, l, h, gelu));
    }
    return output_head(in, x);
}

Tensor* output_head(const ForwardInputs& in, Tensor* x) {
    Graph& g = *in.g;
    // Every row in batch order needs no gather; several sequences' rows are grouped by
    // sequence, so out_ids puts them back in the order they came.
    if (in.out_ids && (in.out_ids->ne[0] < in.n_tokens || !in.spans.empty())) x = g.get_rows(x, in.out_ids);
    x = rms_norm(g, x, in.w->output_norm, in.hp->norm_eps);
    Tensor* logits = g.mul_mat(in.w->output, x);
    if (in.hp->final_softcap > 0.0f)  // c * tanh(logits / c)
        logits = g.scale(g.tanh(g.scale(logits, 1.0f / in.hp->final_softcap)), in.hp->final_softcap);
    return logits;
}

}  // namespace tessera::models
