// Gemma 2 and Gemma 3 (GGUF "gemma2", "gemma3"): embeddings scaled by sqrt(n_embd); per
// layer an RMS pre-norm and post-norm around both attention and the GeGLU FFN; NeoX RoPE;
// sliding-window layers interleaved with global ones; tied output head.
// Gemma 2: every other layer slides (window from metadata), attention scores and logits
// are soft-capped (c * tanh(x / c)). Gemma 3: RMS norms on each query and key head, five
// sliding-window layers (RoPE base 10000) to every global one (the file's RoPE base).
#include <cmath>

#include "models/blocks.h"
#include "tensor/error.h"

namespace tessera::models {
namespace {

class Gemma : public Architecture {
public:
    explicit Gemma(int version) : v_(version) {}
    std::string_view name() const override { return v_ == 3 ? "gemma3" : "gemma2"; }

    void read_hparams(const gguf::File& f, HParams& hp) const override {
        read_common_hparams(f, hp, /*rms=*/true);
        MetaReader m(f, hp.arch);
        hp.rope_mode = RopeMode::NeoX;
        hp.embd_scale = std::sqrt(static_cast<float>(hp.n_embd));
        hp.sliding_window = m.get_i32("attention.sliding_window", 0);
        if (hp.sliding_window < 0)
            throw Error(f.path() + ": " + hp.arch + ".attention.sliding_window is negative", ErrorKind::BadFile);
        // Which layers slide: gemma3 5 of every 6, gemma2 every other (the even ones).
        const int pattern = v_ == 3 ? 6 : 2;
        for (int il = 0; il < hp.n_layer; ++il)
            hp.layer_is_swa[static_cast<size_t>(il)] = hp.sliding_window > 0 && il % pattern < pattern - 1;
        if (v_ == 3) hp.rope_freq_base_swa = m.get_f32("rope.freq_base_swa", 10000.0f);
        if (v_ == 2) {
            hp.attn_softcap = m.get_f32("attn_logit_softcapping", 0.0f);
            hp.final_softcap = m.get_f32("final_logit_softcapping", 0.0f);
        }
        hp.attn_scale = 1.0f / std::sqrt(static_cast<float>(hp.head_dim_k));
    }

    void load_weights(WeightSource& src, const HParams& hp, Weights& w) const override {
        load_common_globals(src, hp, w);
        w.layers.resize(static_cast<size_t>(hp.n_layer));
        for (int il = 0; il < hp.n_layer; ++il) {
            LayerWeights& l = w.layers[static_cast<size_t>(il)];
            load_common_layer(src, hp, il, l);
            const std::string p = "blk." + std::to_string(il) + ".";
            if (v_ == 3) {
                l.q_norm = src.require(p + "attn_q_norm.weight", {hp.head_dim_k});
                l.k_norm = src.require(p + "attn_k_norm.weight", {hp.head_dim_k});
            }
            l.attn_post_norm = src.require(p + "post_attention_norm.weight", {hp.n_embd});
            l.ffn_post_norm = src.require(p + "post_ffw_norm.weight", {hp.n_embd});
        }
    }

    Tensor* build(const ForwardInputs& in) const override {
        Graph& g = *in.g;
        const HParams& hp = *in.hp;
        // x: [n_embd, n_tokens]
        Tensor* x = g.scale(g.get_rows(in.w->tok_embd, in.tokens), hp.embd_scale);
        for (int il = 0; il < hp.n_layer; ++il) {
            const LayerWeights& l = in.w->layers[static_cast<size_t>(il)];
            Tensor* mask = hp.layer_is_swa[static_cast<size_t>(il)] && in.mask_swa ? in.mask_swa : in.mask;
            Tensor* h = rms_norm(g, x, l.attn_norm, hp.norm_eps);
            h = self_attention(in, l, il, h, mask);
            x = g.add(x, rms_norm(g, h, l.attn_post_norm, hp.norm_eps));
            h = rms_norm(g, x, l.ffn_norm, hp.norm_eps);
            h = ffn_gated(g, l, h, /*gelu=*/true);
            x = g.add(x, rms_norm(g, h, l.ffn_post_norm, hp.norm_eps));
        }
        return output_head(in, x);
    }

private:
    int v_;
};

}  // namespace

const Architecture& gemma2_architecture() {
    static const Gemma arch(2);
    return arch;
}

const Architecture& gemma3_architecture() {
    static const Gemma arch(3);
    return arch;
}

}  // namespace tessera::models
