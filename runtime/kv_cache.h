// Per-layer keys and values of one sequence: row p of layer l holds the (rotated) key
// and the value of the token at position p. F16 by default; Q8_0 halves the memory.
#pragma once

#include <memory>
#include <vector>

#include "models/hparams.h"
#include "tensor/backend.h"
#include "tensor/graph.h"

namespace tessera::runtime {

class KvCache {
public:
    KvCache(Backend& backend, const models::HParams& hp, int32_t n_ctx, DType type);

    int32_t n_ctx() const { return n_ctx_; }
    DType type() const { return type_; }
    size_t bytes() const { return buffer_->size(); }
    const std::vector<Tensor*>& k() const { return k_; }
    const std::vector<Tensor*>& v() const { return v_; }
    // Zeroes every row, so unwritten rows never hold NaN bit patterns.
    void clear();

private:
    int32_t n_ctx_;
    DType type_;
    Graph graph_;
    std::vector<Tensor*> k_, v_;
    std::unique_ptr<Buffer> buffer_;
};

}  // namespace tessera::runtime
