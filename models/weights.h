// The weight tensors of a decoder-only transformer. Architectures fill the fields they
// have; optional ones stay null.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace tessera::models {

struct LayerWeights {
    Tensor* attn_norm = nullptr;
    Tensor* attn_norm_b = nullptr;
    Tensor* wq = nullptr;
    Tensor* wk = nullptr;
    Tensor* wv = nullptr;
    Tensor* wqkv = nullptr;  // fused (phi3)
    Tensor* bq = nullptr;
    Tensor* bk = nullptr;
    Tensor* bv = nullptr;
    Tensor* wo = nullptr;
    Tensor* bo = nullptr;
    Tensor* q_norm = nullptr;
    Tensor* k_norm = nullptr;
    Tensor* attn_post_norm = nullptr;
    Tensor* ffn_norm = nullptr;
    Tensor* ffn_gate = nullptr;
    Tensor* ffn_up = nullptr;
    Tensor* ffn_gate_up = nullptr;  // fused (phi3)
    Tensor* ffn_down = nullptr;
    Tensor* ffn_post_norm = nullptr;
};

struct Weights {
    Tensor* tok_embd = nullptr;
    Tensor* output_norm = nullptr;
    Tensor* output = nullptr;  // may alias tok_embd (tied embeddings)
    Tensor* rope_freqs = nullptr;
    Tensor* rope_long = nullptr;   // LongRoPE (phi3): factors for contexts past the original
    Tensor* rope_short = nullptr;
    std::vector<LayerWeights> layers;
};

}  // namespace tessera::models
