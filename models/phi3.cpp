// Phi-3 / Phi-3.5 (GGUF "phi3"): one fused QKV projection and one fused gate+up
// projection; pre-norm RMSNorm blocks, NeoX RoPE with LongRoPE factors (short or long,
// chosen by the context size against the original training context), SwiGLU FFN.
#include "models/blocks.h"

namespace tessera::models {
namespace {

class Phi3 : public Architecture {
public:
    std::string_view name() const override { return "phi3"; }

    void read_hparams(const gguf::File& f, HParams& hp) const override {
        read_common_hparams(f, hp, /*rms=*/true);
        MetaReader m(f, hp.arch);
        hp.rope_mode = RopeMode::NeoX;
        hp.rope_attn_factor = m.get_f32("rope.scaling.attn_factor", 1.0f);
        hp.sliding_window = m.get_i32("attention.sliding_window", 0);
        if (hp.sliding_window > 0) hp.layer_is_swa.assign(static_cast<size_t>(hp.n_layer), true);
    }

    void load_weights(WeightSource& src, const HParams& hp, Weights& w) const override {
        load_common_globals(src, hp, w);
        w.rope_long = src.optional("rope_factors_long.weight", {hp.n_rot / 2});
        w.rope_short = src.optional("rope_factors_short.weight", {hp.n_rot / 2});
        w.layers.resize(static_cast<size_t>(hp.n_layer));
        const int64_t n_qkv = static_cast<int64_t>(hp.head_dim_k) * hp.n_head + hp.n_embd_k_gqa() + hp.n_embd_v_gqa();
        for (int il = 0; il < hp.n_layer; ++il) {
            LayerWeights& l = w.layers[static_cast<size_t>(il)];
            const std::string p = "blk." + std::to_string(il) + ".";
            l.attn_norm = src.require(p + "attn_norm.weight", {hp.n_embd});
            l.wqkv = src.require(p + "attn_qkv.weight", {hp.n_embd, n_qkv});
            l.wo = src.require(p + "attn_output.weight", {static_cast<int64_t>(hp.head_dim_v) * hp.n_head, hp.n_embd});
            l.ffn_norm = src.require(p + "ffn_norm.weight", {hp.n_embd});
            l.ffn_gate_up = src.require(p + "ffn_up.weight", {hp.n_embd, 2 * static_cast<int64_t>(hp.n_ff)});
            l.ffn_down = src.require(p + "ffn_down.weight", {hp.n_ff, hp.n_embd});
        }
    }

    Tensor* build(const ForwardInputs& in) const override { return build_pre_norm_decoder(in, /*gelu=*/false); }
};

}  // namespace

const Architecture& phi3_architecture() {
    static const Phi3 arch;
    return arch;
}

}  // namespace tessera::models
