// Qwen 2 / 2.5 (GGUF "qwen2": biases on the Q, K and V projections) and Qwen 3 ("qwen3":
// RMS norms on each query and key head, head size from attention.key_length). Both:
// pre-norm RMSNorm blocks, NeoX RoPE, grouped-query attention, SwiGLU FFN.
#include "models/blocks.h"

namespace tessera::models {
namespace {

class Qwen : public Architecture {
public:
    explicit Qwen(bool v3) : v3_(v3) {}
    std::string_view name() const override { return v3_ ? "qwen3" : "qwen2"; }

    void read_hparams(const gguf::File& f, HParams& hp) const override {
        read_common_hparams(f, hp, /*rms=*/true);
        hp.rope_mode = RopeMode::NeoX;
        hp.sliding_window = MetaReader(f, hp.arch).get_i32("attention.sliding_window", 0);
        if (hp.sliding_window > 0) hp.layer_is_swa.assign(static_cast<size_t>(hp.n_layer), true);
    }

    void load_weights(WeightSource& src, const HParams& hp, Weights& w) const override {
        load_common_globals(src, hp, w);
        w.layers.resize(static_cast<size_t>(hp.n_layer));
        for (int il = 0; il < hp.n_layer; ++il) {
            LayerWeights& l = w.layers[static_cast<size_t>(il)];
            load_common_layer(src, hp, il, l);
            if (v3_) {
                const std::string p = "blk." + std::to_string(il) + ".";
                l.q_norm = src.require(p + "attn_q_norm.weight", {hp.head_dim_k});
                l.k_norm = src.require(p + "attn_k_norm.weight", {hp.head_dim_k});
            }
        }
    }

    Tensor* build(const ForwardInputs& in) const override { return build_pre_norm_decoder(in, /*gelu=*/false); }

private:
    bool v3_;
};

}  // namespace

const Architecture& qwen2_architecture() {
    static const Qwen arch(false);
    return arch;
}

const Architecture& qwen3_architecture() {
    static const Qwen arch(true);
    return arch;
}

}  // namespace tessera::models
