// Llama family (GGUF architecture "llama": Llama 2/3/3.1/3.2, SmolLM2, TinyLlama,
// Mistral): pre-norm RMSNorm blocks, RoPE on adjacent pairs (the converter permutes
// Q/K for it), grouped-query attention, SwiGLU FFN, tied or separate output head,
// Llama 3 frequency factors from rope_freqs.weight.
#include "models/blocks.h"

namespace tessera::models {
namespace {

class Llama : public Architecture {
public:
    std::string_view name() const override { return "llama"; }

    void read_hparams(const gguf::File& f, HParams& hp) const override {
        read_common_hparams(f, hp, /*rms=*/true);
        hp.rope_mode = RopeMode::Normal;
        // Mistral-style sliding window, when the file carries one, applies to every layer.
        hp.sliding_window = MetaReader(f, hp.arch).get_i32("attention.sliding_window", 0);
        if (hp.sliding_window > 0) hp.layer_is_swa.assign(static_cast<size_t>(hp.n_layer), true);
    }

    void load_weights(WeightSource& src, const HParams& hp, Weights& w) const override {
        load_common_globals(src, hp, w);
        w.layers.resize(static_cast<size_t>(hp.n_layer));
        for (int il = 0; il < hp.n_layer; ++il) load_common_layer(src, hp, il, w.layers[static_cast<size_t>(il)]);
    }

    Tensor* build(const ForwardInputs& in) const override { return build_pre_norm_decoder(in, /*gelu=*/false); }
};

}  // namespace

const Architecture& llama_architecture() {
    static const Llama arch;
    return arch;
}

}  // namespace tessera::models
