// Hyper-parameters every architecture fills from GGUF metadata. Fields an architecture
// does not use keep their defaults.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/graph.h"

namespace tessera::models {

struct HParams {
    std::string arch;  // general.architecture
    std::string name;  // general.name, for messages
    int32_t n_vocab = 0;
    int32_t n_ctx_train = 0;
    int32_t n_embd = 0;
    int32_t n_layer = 0;
    int32_t n_head = 0;
    int32_t n_head_kv = 0;
    int32_t n_ff = 0;
    int32_t head_dim_k = 0;  // attention.key_length (default n_embd / n_head)
    int32_t head_dim_v = 0;  // attention.value_length
    int32_t n_rot = 0;       // rope.dimension_count
    float norm_eps = 1e-5f;
    RopeMode rope_mode = RopeMode::Normal;
    float rope_freq_base = 10000.0f;
    float rope_freq_base_swa = 0.0f;  // sliding-window layers' base, when it differs (gemma 3)
    float rope_freq_scale = 1.0f;  // 1 / rope.scaling.factor for linear scaling
    float rope_yarn_ext_factor = 0.0f;
    float rope_attn_factor = 1.0f;
    int32_t rope_n_ctx_orig = 0;
    float attn_scale = 0.0f;      // 0: 1/sqrt(head_dim_k)
    float attn_softcap = 0.0f;    // gemma 2
    float final_softcap = 0.0f;   // gemma 2: softcap on logits
    float embd_scale = 1.0f;      // gemma: sqrt(n_embd)
    int32_t sliding_window = 0;   // 0: none
    std::vector<bool> layer_is_swa;  // per layer: sliding-window attention

    int32_t n_embd_k_gqa() const { return head_dim_k * n_head_kv; }
    int32_t n_embd_v_gqa() const { return head_dim_v * n_head_kv; }
};

}  // namespace tessera::models
