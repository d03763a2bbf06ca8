// Per-layer keys and values of one sequence: row p of layer l holds the (rotated) key
// and the value of the token at position p. F16 by default; Q8_0 halves the memory.
#pragma once

#include <memory>
#include <vector>

#include "models/hparams.h"
#include "tensor/backend.h"
#include "tensor/graph.h"

namespace tessera::runtime {

// Sliding-window layers keep only the rows they can still see: a ring of window +
// n_batch rows (position p in row p % ring), instead of n_ctx rows.
class KvCache {
public:
    // `layer_backends`: where each layer's rows live (its weights' backend), one per layer.
    // `allow_ring`: false gives sliding-window layers n_ctx rows too (a cache shared by
    // several sequences, whose rows are not in position order).
    KvCache(const std::vector<Backend*>& layer_backends, const models::HParams& hp, int32_t n_ctx, int32_t n_batch,
            DType type, bool allow_ring = true);

    int32_t n_ctx() const { return n_ctx_; }
    // Rows of a sliding-window layer's ring (0: no ring; every layer has n_ctx rows).
    int32_t ring_rows() const { return ring_rows_; }
    DType type() const { return type_; }
    size_t bytes() const;
    // What the cache would take with n_ctx rows in every layer.
    size_t full_bytes() const { return full_bytes_; }
    const std::vector<Tensor*>& k() const { return k_; }
    const std::vector<Tensor*>& v() const { return v_; }
    // Zeroes every row, so unwritten rows never hold NaN bit patterns.
    void clear();

    // Copies of some rows of every sliding-window layer's ring, to put back after a
    // decode that failed part way (its later batches overwrite rows the sequence before it
    // still needs).
    struct RingRows {
        std::vector<int32_t> rows;
        std::vector<uint8_t> bytes;
    };
    RingRows save_ring_rows(std::vector<int32_t> rows) const;
    void restore_ring_rows(const RingRows& saved);

    // Rows [row0, row0 + n) of every layer's keys and values, layer by layer (k then v), and
    // back: the bytes one sequence's cells take outside the context (a server's prompt cache).
    // Every layer must have n_ctx rows (no ring).
    size_t rows_bytes(int32_t n) const;
    void save_rows(int32_t row0, int32_t n, uint8_t* dst) const;
    void load_rows(int32_t row0, int32_t n, const uint8_t* src);

private:
    int32_t n_ctx_;
    int32_t ring_rows_ = 0;
    DType type_;
    size_t full_bytes_ = 0;
    Graph graph_;
    std::vector<Tensor*> k_, v_;
    std::vector<Tensor*> ring_tensors_;             // k and v of the sliding-window layers with a ring
    std::vector<std::unique_ptr<Buffer>> buffers_;  // one per backend holding layers
};

}  // namespace tessera::runtime
