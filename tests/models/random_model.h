// Random-weight Llama-family models of awkward shapes, written with our own GGUF writer.
// Weights come from a fixed-seed generator with exactly specified arithmetic, so the
// same file (same bytes) is produced on every machine; the reference logits committed
// in tests/models/reference were computed from these files by an independent NumPy
// forward pass (tests/models/llama_reference.py).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace tessera::test {

struct RandomLlamaConfig {
    std::string name;
    int32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    DType weight_type;
    bool tied_output;
    bool rope_freqs;   // Llama 3 style frequency factors (phi3: rope_factors_short)
    float rope_base;
    uint64_t seed;
    // The family: "llama" (also with a sliding window), "qwen2" (QKV biases), "qwen3"
    // (q/k head norms), "phi3" (fused QKV and gate+up), "gemma3" (scaled embeddings,
    // pre/post norms, q/k norms, GeGLU, 5:1 sliding-window layers).
    std::string arch = "llama";
    int32_t sliding_window = 0;
};

// The configurations the model tests cover: GQA ratios 1, 2, 3 and 4; head sizes 32, 64
// and 128; tied and separate output heads; F32, F16, Q8_0 and Q4_0 weights; the llama,
// qwen2, qwen3, phi3 and gemma3 families, with and without sliding windows.
std::vector<RandomLlamaConfig> random_llama_configs();

// Writes the model to `path`.
void write_random_llama(const RandomLlamaConfig& c, const std::string& path);

// The prompt the reference logits are for.
std::vector<int32_t> reference_tokens(const RandomLlamaConfig& c);

// FNV-1a 64 of a file's bytes, to tie a reference to the exact file it was made from.
uint64_t file_fingerprint(const std::string& path);

}  // namespace tessera::test
