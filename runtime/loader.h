// GGUF -> an architecture's hyper-parameters and weights placed on a backend.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/arch.h"
#include "runtime/placement.h"
#include "tensor/backend.h"
#include "tensor/gguf.h"

namespace tessera::runtime {

// How a model's GPU layers spread over several GPUs.
enum class SplitMode {
    None,   // one GPU: the first found (or the one named)
    Layer,  // consecutive layers on each GPU, activations crossing between them
};

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
    // The GPU backends to use by name, comma-separated ("CUDA0" or "CUDA0,CUDA1"); a name listed
    // again gets another instance of that device. Empty: the first GPU found, and with a layer
    // split every other GPU of its kind found by default.
    std::string device;
    SplitMode split_mode = SplitMode::Layer;
    // Each GPU's share of the GPU layers, in the order of `device` (proportions); empty: in
    // proportion to their free memory.
    std::vector<double> tensor_split;
    // (pattern, device) pairs: a weight whose name contains a match of the pattern (ECMAScript
    // regular expression) goes to that device ("CPU", or the GPU in use), whatever the layer
    // count says; the first matching pair decides. Keeps the FFN of some layers on the CPU,
    // say, or moves one tensor to the GPU.
    std::vector<std::pair<std::string, std::string>> tensor_overrides;
    // Bytes of the GPU the automatic layer count may fill: its layers' weights and KV cache
    // (at plan_n_ctx cells) and a compute buffer; 0: the device's free memory, less 512 MiB.
    size_t gpu_mem = 0;
    // The context (KV cells) and CPU threads the automatic placement plans for; 0: the
    // model's training context, at most 4096, and all cores.
    int32_t plan_n_ctx = 0;
    int32_t plan_threads = 0;
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
    Backend* gpu = nullptr;               // the (first) GPU holding layers, if any
    std::vector<Backend*> gpus;           // the GPUs holding layers, in layer order
    std::string gpu_names;                // their names, comma-separated
    int32_t n_gpu_layers = 0;             // layers on the GPUs (the last ones)
    size_t gpu_weight_bytes = 0;          // weights uploaded to them
    size_t pinned_bytes = 0;              // CPU weights in page-locked memory, streamed to it for prompts
    std::vector<Backend*> layer_backend;  // where each layer's weights and KV cache live
    Plan plan;                            // the placement's plan (n_layer 0 without a GPU)
    int64_t offload_min_batch = 0;        // prompt batches from which the CPU layers' products go to the GPU (0: never)

    Backend& cpu() const { return *backends.back(); }
};

// Weights the CPU kernels want in the r16 layout: matrices (not the token embedding, which
// get_rows reads) of a type with an r16 kernel on this CPU, in whole groups of 16 rows.
bool cpu_wants_r16(const Tensor& t, const std::string& name);

// What `tessera fit` and tessera_fit ask: the plan for a model file with no model loaded.
struct FitOptions {
    int32_t n_ctx = 0;  // 0: the model's training context, at most 4096
    int32_t n_batch = 512;
    int32_t n_threads = 0;      // 0: all cores
    int32_t n_gpu_layers = -1;  // -1: chosen by the cost model
    std::string device;         // the GPUs by name, as LoadOptions::device
    SplitMode split_mode = SplitMode::Layer;
    std::vector<double> tensor_split;
    size_t gpu_mem = 0;   // 0: the device's free memory, less 512 MiB (each one's)
    bool measure = true;  // measure the speeds the cache lacks
    std::function<void(const std::string&)> note;
};
struct FitResult {
    Plan plan;
    std::string gpu;                // the GPUs' names, comma-separated ("" when none)
    std::vector<std::string> gpus;  // the same, one by one
    std::vector<size_t> gpu_budgets;
    std::string arch, name;
    int32_t n_ctx = 0;
    size_t gpu_budget = 0;  // their sum
    MachineRates rates;
};
FitResult fit_model(const std::string& path, const FitOptions& options);

// Opens `path` (or takes an open file) and loads the architecture its metadata names.
// Errors name the file and what is wrong: an unsupported architecture lists the
// supported ones; every missing or misshapen tensor is listed.
std::unique_ptr<Model> load_model(std::unique_ptr<gguf::File> file, const LoadOptions& options);

}  // namespace tessera::runtime
