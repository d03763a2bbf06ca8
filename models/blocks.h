// Pieces shared by the architectures: metadata reading, norms, attention over the KV
// cache, feed-forward variants. A loop that two families share belongs here.
#pragma once

#include <string>

#include "models/arch.h"

namespace tessera::models {

// Reads "<arch>.<key>" typed metadata, naming the full key in errors.
class MetaReader {
public:
    MetaReader(const gguf::File& f, std::string arch) : f_(f), arch_(std::move(arch)) {}
    int32_t get_i32(const std::string& key) const;  // required
    int32_t get_i32(const std::string& key, int32_t fallback) const;
    float get_f32(const std::string& key, float fallback) const;
    std::string get_string(const std::string& key, const std::string& fallback) const;
    bool has(const std::string& key) const;

private:
    std::string full(const std::string& key) const { return arch_ + "." + key; }
    const gguf::File& f_;
    std::string arch_;
};

// The hyper-parameters most decoder-only families share (block_count, embedding_length,
// head counts, rope, norm epsilon, vocabulary size, ...). `rms` selects which epsilon key.
void read_common_hparams(const gguf::File& f, HParams& hp, bool rms);

// Loads the per-layer attention and FFN weights of the common layout
// (blk.N.attn_q/k/v/output, ffn_gate/up/down, attn_norm, ffn_norm; optional biases).
void load_common_layer(WeightSource& src, const HParams& hp, int il, LayerWeights& l);
// token_embd, output_norm, output (tied to token_embd when absent), rope_freqs.
void load_common_globals(WeightSource& src, const HParams& hp, Weights& w);

// x * rsqrt(mean(x^2) + eps) * w
Tensor* rms_norm(Graph& g, Tensor* x, Tensor* w, float eps);

// Self-attention of layer `il` for the batch: projections, optional q/k norms, RoPE,
// KV-cache write at the batch positions, grouped-query attention over the cache's
// first n_kv rows, output projection. x: [n_embd, n_tokens] -> [n_embd, n_tokens].
Tensor* self_attention(const ForwardInputs& in, const LayerWeights& l, int il, Tensor* x, Tensor* mask);

// down(act(gate(x)) * up(x)) with act silu (SwiGLU) or gelu (GeGLU).
Tensor* ffn_gated(Graph& g, const LayerWeights& l, Tensor* x, bool gelu);

// Final norm and output head for the rows in in.out_ids: [n_vocab, n_out].
Tensor* output_head(const ForwardInputs& in, Tensor* x);

// The plain pre-norm decoder most families share: embeddings, then per layer
// x += attention(rms_norm(x)); x += ffn(rms_norm(x)); then the output head.
Tensor* build_pre_norm_decoder(const ForwardInputs& in, bool gelu);

}  // namespace tessera::models
