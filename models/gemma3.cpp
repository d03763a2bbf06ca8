// Gemma 3 (GGUF architecture "gemma3"): embeddings scaled by sqrt(n_embd); per layer an
// RMS pre-norm and post-norm around both attention and the GeGLU FFN; RMS norms on
// each query and key head; NeoX RoPE; five sliding-window layers (RoPE base 10000,
// window from metadata) to every global one (the file's RoPE base); tied output head.
#include <cmath>

#include "models/blocks.h"
#include "tensor/error.h"

namespace tessera::models {
namespace {

constexpr int kSwaPattern = 6;  // layers il with il % 6 == 5 attend globally

class Gemma3 : public Architecture {
public:
    std::string_view name() const override { return "gemma3"; }

    void read_hparams(const gguf::File& f, HParams& hp) const override {
        read_common_hparams(f, hp, /*rms=*/true);
        MetaReader m(f, hp.arch);
        hp.rope_mode = RopeMode::NeoX;
        hp.embd_scale = std::sqrt(static_cast<float>(hp.n_embd));
        hp.sliding_window = m.get_i32("attention.sliding_window", 0);
        if (hp.sliding_window < 0) throw Error(f.path() + ": gemma3.attention.sliding_window is negative", ErrorKind::BadFile);
        hp.rope_freq_base_swa = m.get_f32("rope.freq_base_swa", 10000.0f);
        for (int il = 0; il < hp.n_layer; ++il)
            hp.layer_is_swa[static_cast<size_t>(il)] = hp.sliding_window > 0 && il % kSwaPattern < kSwaPattern - 1;
        hp.attn_scale = 1.0f / std::sqrt(static_cast<float>(hp.head_dim_k));
    }

    void load_weights(WeightSource& src, const HParams& hp, Weights& w) const override {
        load_common_globals(src, hp, w);
        w.layers.resize(static_cast<size_t>(hp.n_layer));
        for (int il = 0; il < hp.n_layer; ++il) {
            LayerWeights& l = w.layers[static_cast<size_t>(il)];
            load_common_layer(src, hp, il, l);
            const std::string p = "blk." + std::to_string(il) + ".";
            l.q_norm = src.require(p + "attn_q_norm.weight", {hp.head_dim_k});
            l.k_norm = src.require(p + "attn_k_norm.weight", {hp.head_dim_k});
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
};

}  // namespace

const Architecture& gemma3_architecture() {
    static const Gemma3 arch;
    return arch;
}

}  // namespace tessera::models
