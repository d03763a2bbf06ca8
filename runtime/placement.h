// Placement: which layers go to the GPU, predicted from the model's sizes and the machine's
// measured speeds (a cost model), and what each device then holds.
//
// The model's side comes from the GGUF header alone (tensor sizes and types, the KV cache's
// shape), so a plan needs no loaded model. The machine's side is a few short measurements per
// device and weight type (rates.h), cached on disk. The time of a step is the sum over layers
// of what the layer costs on its device (weight bytes over the device's reading speed when
// decoding, products' operations over its matrix rate for a prompt, and a fixed cost per layer),
// plus the copies at the seam between devices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "models/hparams.h"
#include "tensor/dtype.h"
#include "tensor/gguf.h"

namespace tessera::runtime {

// What one layer (or the output head) weighs.
struct PartSizes {
    struct Matrix {
        DType type = DType::F32;
        int64_t k = 0, n = 0;  // row length, rows
        size_t bytes = 0;
    };
    size_t weight_bytes = 0;   // every tensor of the part
    std::vector<Matrix> mats;  // its matrix weights (products' operands)
    size_t matmul_bytes() const;
    double matmul_params() const;
};

struct ModelSizes {
    std::vector<PartSizes> layers;
    size_t sample_layer = 0;         // the layer the rates measure (the middle one)
    PartSizes head;                  // output head and final norm (the tied embedding when there is no output.weight)
    size_t embd_bytes = 0;           // token embedding (stays on the CPU) when it is not the head
    size_t kv_bytes_per_cell = 0;    // one KV cache cell of one layer, F16 keys and values
    std::vector<bool> layer_is_swa;  // sliding-window layers keep sliding_window + n_batch cells
    int32_t sliding_window = 0;
    int64_t n_embd = 0, n_ff = 0, n_vocab = 0, n_head = 0, n_head_kv = 0, head_dim = 0, head_dim_v = 0;
    int32_t n_ctx_train = 0;
    size_t total_bytes = 0;  // every tensor of the file
};

// Reads the sizes from an opened GGUF file and the hyper-parameters its architecture read.
ModelSizes model_sizes(const gguf::File& f, const models::HParams& hp);

// One device's speeds, measured on synthetic weights of the model's own shapes and types:
// one layer (the sample: the middle one) and the output head. Other layers scale the
// sample's times by their bytes (decoding) or elements (prompts).
struct DeviceRates {
    std::string name;                 // "CPU", "CUDA0", "Vulkan0"
    double layer_matvec_us = 0;       // the sample layer's decoding products, one token
    double layer_gemm_us = 0;         // its products over a prompt step (PlanRequest::n_batch tokens)
    double layer_ops_us = 0;          // a layer's other nodes (norms, RoPE, attention, ...), one token
    double layer_ops_prompt_us = 0;   // the same over a prompt step
    double layer_attn_prompt_us = 0;  // a layer's attention over a prompt step from an empty cache
    double head_gbs = 0;              // the output head's decoding product, bytes read per second
    bool measured() const { return layer_matvec_us > 0; }
};

// A layer's nodes as wide as the model besides its products and attention: two norms and
// their scales, two RoPE, two residual adds, two cache writes (rates.cpp times them).
constexpr int kLayerWideNodes = 10;

struct MachineRates {
    DeviceRates cpu;
    DeviceRates gpu;        // empty name: no GPU
    double h2d_gbs = 0;     // host to GPU copies
    double stream_gbs = 0;  // weights streamed from page-locked memory beside the computation (0: not possible)
    double seam_us = 0;     // one small copy across the seam, either way
};

struct PlanRequest {
    int32_t n_ctx = 4096;          // cells of the KV cache
    int32_t n_batch = 512;         // tokens per prompt step
    int32_t n_gpu_layers = -1;     // -1: choose
    size_t gpu_budget = SIZE_MAX;  // bytes of the GPU the plan may fill (weights, KV cache, compute buffer)
    // Several GPUs (a layer split): each one's share of the GPU layers, in order (the first takes
    // the earliest of them, the last the output head; empty: one GPU), and each one's budget
    // (gpu_budget is their sum; empty: gpu_budget alone bounds the plan).
    std::vector<double> gpu_split;
    std::vector<size_t> gpu_budgets;
    int32_t n_prompt = 512;  // the workload that `choose` weighs: a prompt of n_prompt tokens
    int32_t n_gen = 128;     // then n_gen generated
};

// One GPU's share of a plan.
struct GpuPart {
    int32_t n_layers = 0;
    size_t weight_bytes = 0, kv_bytes = 0, compute_bytes = 0;
    size_t total() const { return weight_bytes + kv_bytes + compute_bytes; }
};

struct Plan {
    int32_t n_layer = 0;
    int32_t n_gpu_layers = 0;   // the last ones; the head goes with the last layer
    std::vector<GpuPart> gpus;  // each GPU's share, in the request's order (the gpu_* figures sum them)
    size_t gpu_weight_bytes = 0, gpu_kv_bytes = 0, gpu_compute_bytes = 0;
    size_t cpu_weight_bytes = 0, cpu_kv_bytes = 0, cpu_compute_bytes = 0;
    size_t cpu_pinned_bytes = 0;  // the page-locked copy of the weights prompts stream (beside the CPU's own)
    double pp_tokens_per_s = 0;   // predicted prompt processing, n_batch-token steps
    double tg_tokens_per_s = 0;   // predicted generation at an empty context
    bool fits = true;             // the GPU's share fits the budget
    size_t gpu_total() const { return gpu_weight_bytes + gpu_kv_bytes + gpu_compute_bytes; }
    size_t cpu_total() const { return cpu_weight_bytes + cpu_kv_bytes + cpu_compute_bytes + cpu_pinned_bytes; }
};

// The GPU layers' counts on each of several GPUs, in proportion to `split` (largest remainders;
// non-negative weights, all zero counting as equal), in order.
std::vector<int32_t> split_layers(int32_t n_gpu_layers, const std::vector<double>& split);

// The plan with `n_gpu_layers` layers on the GPU (0 when the rates have no GPU).
Plan plan_for(const ModelSizes& m, const MachineRates& r, const PlanRequest& req, int32_t n_gpu_layers);
// req.n_gpu_layers >= 0: that count. -1: of the counts whose GPU share fits the budget, the one
// with the shortest predicted time for the request's workload (all layers when nothing is
// faster; none when the GPU is slower than the CPU or nothing fits).
Plan choose_plan(const ModelSizes& m, const MachineRates& r, const PlanRequest& req);

// The smallest prompt batch from which a CPU-resident layer's products run faster on the GPU,
// its weights copied there for the step, than on the CPU (Scheduler::set_offload); 0 when
// that never pays or a speed is unknown.
int64_t offload_min_batch(const ModelSizes& m, const MachineRates& r, int64_t n_batch);

// Bytes of the compute buffer a context needs on one device for steps of n_batch tokens
// (activations of the widest layer, the logits of one token on the head's device).
size_t compute_bytes_estimate(const ModelSizes& m, int32_t n_batch, bool holds_head);

}  // namespace tessera::runtime
