// The KV cache's tensors, one pair per layer in one buffer.
#include "runtime/kv_cache.h"

#include <cstring>
#include <string>

#include "tensor/error.h"

namespace tessera::runtime {

KvCache::KvCache(Backend& backend, const models::HParams& hp, int32_t n_ctx, int32_t n_batch, DType type)
    : n_ctx_(n_ctx), type_(type) {
    if (type != DType::F16 && type != DType::F32 && type != DType::Q8_0)
        throw Error("KV cache type " + std::string(type_name(type)) + " is not supported (F16, F32, Q8_0)");
    const int64_t bs = type_traits(type).block_size;
    if (hp.head_dim_k % bs != 0 || hp.head_dim_v % bs != 0)
        throw Error("KV cache type " + std::string(type_name(type)) + " needs head sizes that are multiples of " +
                    std::to_string(bs));
    // A ring must hold the window plus one batch: writing a batch never overwrites a row
    // that one of the batch's own tokens still sees.
    if (hp.sliding_window > 0 && static_cast<int64_t>(hp.sliding_window) + n_batch < n_ctx)
        ring_rows_ = hp.sliding_window + n_batch;
    std::vector<Tensor*> all;
    for (int il = 0; il < hp.n_layer; ++il) {
        std::string kn = "cache_k_l" + std::to_string(il), vn = "cache_v_l" + std::to_string(il);
        const bool ring = ring_rows_ > 0 && hp.layer_is_swa[static_cast<size_t>(il)];
        const int64_t rows = ring ? ring_rows_ : n_ctx;
        k_.push_back(graph_.new_tensor(type, {hp.n_embd_k_gqa(), rows}, kn.c_str()));
        v_.push_back(graph_.new_tensor(type, {hp.n_embd_v_gqa(), rows}, vn.c_str()));
        full_bytes_ += row_size(type, hp.n_embd_k_gqa()) * static_cast<size_t>(n_ctx) +
                       row_size(type, hp.n_embd_v_gqa()) * static_cast<size_t>(n_ctx);
        all.push_back(k_.back());
        all.push_back(v_.back());
        if (ring) {
            ring_tensors_.push_back(k_.back());
            ring_tensors_.push_back(v_.back());
        }
    }
    buffer_ = allocate_tensors(backend, all, BufferUsage::Cache);
    clear();
}

void KvCache::clear() { std::memset(buffer_->base(), 0, buffer_->size()); }

// The cache lives in host memory (the CPU backend's buffer): rows are copied directly.
KvCache::RingRows KvCache::save_ring_rows(std::vector<int32_t> rows) const {
    RingRows saved;
    saved.rows = std::move(rows);
    for (const Tensor* t : ring_tensors_)
        for (int32_t r : saved.rows) {
            const auto* src = static_cast<const uint8_t*>(t->data) + static_cast<size_t>(r) * t->nb[1];
            saved.bytes.insert(saved.bytes.end(), src, src + t->nb[1]);
        }
    return saved;
}

void KvCache::restore_ring_rows(const RingRows& saved) {
    size_t at = 0;
    for (const Tensor* t : ring_tensors_)
        for (int32_t r : saved.rows) {
            std::memcpy(static_cast<uint8_t*>(t->data) + static_cast<size_t>(r) * t->nb[1], saved.bytes.data() + at,
                        t->nb[1]);
            at += t->nb[1];
        }
}

}  // namespace tessera::runtime
