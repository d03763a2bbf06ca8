// The scheduler: splits a graph across backends and runs it.
//
// A node runs where its weights (or cache) live; otherwise where its newest input (the one
// made last) lives; otherwise on the fallback backend (the CPU, last in the list). A backend
// that does not support a node hands it to the fallback. With set_offload, a prompt-sized
// product over a host weight runs on the GPU instead, its weight copied there beside the
// computation of the segment before. Runs of same-backend nodes form segments;
// a tensor crossing a seam is copied once into the consuming backend's memory (between two
// devices through host memory). With the layers of a model in order this gives one seam per
// boundary between devices.
//
// Memory: each backend gets one compute buffer holding the graph's intermediate tensors,
// placed by liveness (tensor/alloc). Planning a graph allocates; evaluating an already
// planned graph allocates nothing. A buffer is only re-allocated when a graph needs more
// than the one reserved.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "tensor/backend.h"
#include "tensor/graph.h"

namespace tessera {

class Scheduler {
public:
    // `backends`: the last one is the fallback and must support every op.
    explicit Scheduler(std::vector<Backend*> backends);
    ~Scheduler();
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    // Assigns backends, inserts seam copies and places memory. compute() calls it when
    // `g` is not the graph planned last.
    void plan(Graph& g);
    void compute(Graph& g);
    // Whether `g` is the graph planned last, unchanged since: its memory is still placed
    // and compute() runs it as it is.
    bool planned(const Graph& g) const { return planned_graph_ == &g && planned_graph_size_ == g.size(); }
    // Threads each backend uses for this scheduler's graphs (0: the backend's default).
    // The next compute() plans again: the scratch sizes depend on the thread count.
    // Asked between nodes during compute(); returning true makes compute() throw Error
    // (ErrorKind::Aborted). Empty: never.
    void set_abort(AbortCheck abort) { abort_ = std::move(abort); }
    const AbortCheck& abort_check() const { return abort_; }
    void set_threads(int n) {
        n_threads_ = n;
        planned_graph_ = nullptr;
    }

    // Prompt products over weights in host memory run on backend `b` (a GPU) when their batch
    // has at least `min_rows` rows: the weight is copied there for the step (from its file
    // layout when the host keeps it rearranged), and the nodes after it follow their inputs
    // to that backend, so a CPU-resident layer's products, norms and activations run there
    // and only the attention over its host KV cache stays. Products that must not depend on
    // their batch (kFlagBatchInvariant) stay. b null or min_rows 0: none.
    void set_offload(Backend* b, int64_t min_rows);
    int64_t offload_min_rows() const { return offload_ >= 0 ? offload_min_rows_ : 0; }

    // Reads `n` bytes of a tensor (an output) into host memory.
    void read(const Tensor* t, void* dst, size_t n) const;

    struct Copy {
        Tensor* src;
        Tensor* dst;          // same shape and strides, in the consuming backend's memory
        bool weight = false;  // a host weight streamed to a device for the step (set_offload)
    };
    struct Segment {
        int backend;
        std::vector<Tensor*> nodes;
        std::vector<Copy> copies;  // done before the nodes run
        // The segments whose streamed weights start copying when this one starts: those of the
        // next segment of the same device, so that a layer's weights go over while the layer
        // before it computes (and the first such segment's own).
        std::vector<int> prefetch;
    };
    const std::vector<Segment>& segments() const { return segments_; }
    size_t n_copies() const;
    // Bytes of the compute buffer reserved on backend i (the largest plan so far), and
    // the peak of the last planned graph.
    size_t reserved_bytes(int i) const;
    size_t planned_bytes(int i) const { return planned_[static_cast<size_t>(i)]; }
    Backend& backend(int i) const { return *backends_[static_cast<size_t>(i)]; }
    int n_backends() const { return static_cast<int>(backends_.size()); }

private:
    int home_of(const Tensor* t) const;
    int assign(const Tensor* node) const;
    bool offloads(const Tensor* node) const;

    std::vector<Backend*> backends_;
    std::vector<std::unique_ptr<Buffer>> compute_buffers_;
    std::vector<std::unique_ptr<Buffer>> work_buffers_;
    std::vector<size_t> planned_;
    std::vector<size_t> work_sizes_;
    std::vector<Segment> segments_;
    std::deque<Tensor> copy_tensors_;
    std::vector<uint8_t> staging_;   // a copy between two devices passes through it
    std::vector<uint64_t> tickets_;  // per segment: its streamed weights' copy, once started
    const Graph* planned_graph_ = nullptr;
    size_t planned_graph_size_ = 0;
    int n_threads_ = 0;
    std::unordered_map<const Tensor*, int> order_;  // position in the graph being planned
    int offload_ = -1;
    int64_t offload_min_rows_ = 0;
    AbortCheck abort_;
};

}  // namespace tessera
