// GGUF -> an architecture's hyper-parameters and weights placed on a backend.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/arch.h"
#include "tensor/backend.h"
#include "tensor/gguf.h"

namespace tessera::runtime {

struct LoadOptions {
    // Weights stay in the memory-mapped file (no copy) when true; else they are read
    // into allocated memory.
    bool use_mmap = true;
    // Rearranges the weights whose type has an interleaved (r16) kernel on this CPU into
    // that layout, for faster prompt processing; their pages of the file mapping are
    // released, so resident memory stays near the file size.
    bool repack = true;
    // Layers whose weights (and KV cache) live on the GPU, counted from the last layer; the
    // output head goes with the last layer. -1: all of them when there is a GPU; 0: none.
    // Larger than the layer count: all.
    int32_t n_gpu_layers = -1;
    // The GPU backend to use by name ("CUDA0"); empty: the first one found.
    std::string device;
    // (pattern, device) pairs: a weight whose name contains a match of the pattern (ECMAScript
    // regular expression) goes to that device ("CPU", or the GPU in use), whatever the layer
    // count says; the first matching pair decides. Keeps the FFN of some layers on the CPU,
    // say, or moves one tensor to the GPU.
    std::vector<std::pair<std::string, std::string>> tensor_overrides;
    // Bytes of the GPU the automatic layer count may fill (its weights, and an eighth of the
    // budget kept for the KV cache and compute buffers); 0: the device's free memory, less
    // 1 GiB.
    size_t gpu_mem = 0;
    // Called with progress in [0, 1]; returning false cancels the load.
    std::function<bool(float)> progress;
};

// A loaded model: immutable after load, shareable by contexts on several threads.
class Model {
public:
    std::unique_ptr<gguf::File> file;
    const models::Architecture* arch = nullptr;
    models::HParams hp;
    models::Weights weights;
    std::vector<std::unique_ptr<Backend>> backends;  // the CPU last
    Graph weights_graph;                             // the weight leaves
    std::vector<std::unique_ptr<Buffer>> buffers;
    size_t weight_bytes = 0;
    size_t repacked_bytes = 0;  // weights held in the r16 layout
    uint64_t n_params = 0;
    double load_ms = 0;
    Backend* gpu = nullptr;               // the GPU holding layers, if any
    int32_t n_gpu_layers = 0;             // layers on it (the last ones)
    size_t gpu_weight_bytes = 0;          // weights uploaded to it
    std::vector<Backend*> layer_backend;  // where each layer's weights and KV cache live

    Backend& cpu() const { return *backends.back(); }
};

// Opens `path` (or takes an open file) and loads the architecture its metadata names.
// Errors name the file and what is wrong: an unsupported architecture lists the
// supported ones; every missing or misshapen tensor is listed.
std::unique_ptr<Model> load_model(std::unique_ptr<gguf::File> file, const LoadOptions& options);

}  // namespace tessera::runtime
