// The interface every model architecture implements: hyper-parameters from GGUF
// metadata, the weight list with expected shapes, and the graph of one forward pass.
// Architectures never know which backend runs them.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "models/hparams.h"
#include "models/weights.h"
#include "tensor/gguf.h"
#include "tensor/graph.h"

namespace tessera::models {

// Hands weight tensors to an architecture, checking names and shapes. A missing or
// misshapen tensor is recorded and reported together with every other problem.
class WeightSource {
public:
    virtual ~WeightSource() = default;
    virtual Tensor* require(const std::string& name, std::initializer_list<int64_t> ne) = 0;
    // Null when absent; a present tensor with the wrong shape is still an error.
    virtual Tensor* optional(const std::string& name, std::initializer_list<int64_t> ne) = 0;
};

// Several sequences in one batch (a context of n_seq >= 1): the batch rows of one sequence,
// consecutive, and the range of cache rows it attends over (its own region of the cache).
struct SeqSpan {
    int64_t row0 = 0, n_rows = 0;  // batch rows [row0, row0 + n_rows)
    int64_t cell0 = 0, n_kv = 0;   // cache rows [cell0, cell0 + n_kv)
    Tensor* mask = nullptr;        // F16 [n_kv, n_rows]: 0 visible, -inf hidden
    Tensor* mask_swa = nullptr;    // the same for sliding-window layers (null if none)
};

// Inputs of one forward pass over a batch of tokens of one sequence, or of several (spans).
struct ForwardInputs {
    Graph* g = nullptr;
    const HParams* hp = nullptr;
    const Weights* w = nullptr;
    Tensor* tokens = nullptr;    // I32 [n_tokens]
    Tensor* positions = nullptr; // I32 [n_tokens]
    Tensor* mask = nullptr;      // F16 [n_kv, n_tokens]: 0 visible, -inf hidden (causal)
    Tensor* mask_swa = nullptr;  // the same for sliding-window layers (null if none):
                                 // [n_kv_swa, n_tokens] over the ring's rows when it has one
    Tensor* rows_swa = nullptr;  // I32 [n_tokens]: ring rows the batch writes (null: no ring)
    Tensor* rows = nullptr;      // I32 [n_tokens]: cache rows the batch writes (null: the positions)
    Tensor* out_ids = nullptr;   // I32 [n_out]: the batch rows whose logits are wanted
    const std::vector<Tensor*>* k_cache = nullptr;  // per layer [n_embd_k_gqa, n_ctx]
    const std::vector<Tensor*>* v_cache = nullptr;
    int64_t n_tokens = 0;
    int64_t n_kv = 0;  // cache rows attended to (a multiple of the padding, <= n_ctx)
    int64_t n_ctx = 0; // the context's size (LongRoPE picks its factors by it)
    int64_t n_kv_swa = 0;  // ring rows attended to by sliding-window layers
    // Several sequences: each span's rows attend over its own cache rows with its own
    // masks (mask, mask_swa and n_kv above are then unused), so a row's attention is
    // computed exactly as it is when its sequence is alone in the batch. Empty: one sequence.
    std::vector<SeqSpan> spans;
    // The first n_single spans have one row each, and their attention is one node: slice i
    // attends over the cache from row kv_start[i] (I32 [n_single]) with mask_single
    // (F16 [n_kv_single, 1, 1, n_single]; mask_single_swa likewise). 0: a node per span.
    int64_t n_single = 0, n_kv_single = 0;
    Tensor* kv_start = nullptr;
    Tensor* mask_single = nullptr;
    Tensor* mask_single_swa = nullptr;
};

class Architecture {
public:
    virtual ~Architecture() = default;
    virtual std::string_view name() const = 0;
    virtual void read_hparams(const gguf::File& f, HParams& hp) const = 0;
    virtual void load_weights(WeightSource& src, const HParams& hp, Weights& w) const = 0;
    // Logits F32 [n_vocab, n_out].
    virtual Tensor* build(const ForwardInputs& in) const = 0;
};

// The architecture for `general.architecture`, or null.
const Architecture* find_architecture(std::string_view name);
// Names of the supported architectures, for error messages.
std::vector<std::string> supported_architectures();

}  // namespace tessera::models
