// The KV cache's tensors, one pair per layer in one buffer.
#include "runtime/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "tensor/error.h"

namespace tessera::runtime {

KvCache::KvCache(const std::vector<Backend*>& layer_backends, const models::HParams& hp, int32_t n_ctx, int32_t n_batch,
                 DType type, bool allow_ring)
    : n_ctx_(n_ctx), type_(type) {
    if (layer_backends.size() != static_cast<size_t>(hp.n_layer))
        throw Error("KV cache: one backend per layer expected", ErrorKind::Internal);
    if (type != DType::F16 && type != DType::F32 && type != DType::Q8_0)
        throw Error("KV cache type " + std::string(type_name(type)) + " is not supported (F16, F32, Q8_0)");
    const int64_t bs = type_traits(type).block_size;
    if (hp.head_dim_k % bs != 0 || hp.head_dim_v % bs != 0)
        throw Error("KV cache type " + std::string(type_name(type)) + " needs head sizes that are multiples of " +
                    std::to_string(bs));
    // A ring must hold the window plus one batch: writing a batch never overwrites a row
    // that one of the batch's own tokens still sees.
    if (allow_ring && hp.sliding_window > 0 && static_cast<int64_t>(hp.sliding_window) + n_batch < n_ctx)
        ring_rows_ = hp.sliding_window + n_batch;
    std::vector<Backend*> homes;  // distinct backends, in layer order
    std::vector<std::vector<Tensor*>> per_home;
    for (int il = 0; il < hp.n_layer; ++il) {
        Backend* home = layer_backends[static_cast<size_t>(il)];
        size_t h = std::find(homes.begin(), homes.end(), home) - homes.begin();
        if (h == homes.size()) {
            homes.push_back(home);
            per_home.emplace_back();
        }
        std::vector<Tensor*>& all = per_home[h];
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
    for (size_t h = 0; h < homes.size(); ++h)
        for (auto& b : allocate_tensors_split(*homes[h], per_home[h], BufferUsage::Cache))
            buffers_.push_back(std::move(b));
    clear();
}

size_t KvCache::bytes() const {
    size_t n = 0;
    for (const auto& b : buffers_) n += b->size();
    return n;
}

void KvCache::clear() {
    for (const auto& b : buffers_) {
        if (b->backend().host_memory()) {
            std::memset(b->base(), 0, b->size());
            continue;
        }
        // Device memory: zeros uploaded through a tensor spanning the buffer, in slices.
        Tensor whole;
        whole.data = b->base();
        const std::vector<uint8_t> zeros(std::min<size_t>(b->size(), size_t{16} << 20), 0);
        for (size_t at = 0; at < b->size(); at += zeros.size())
            b->backend().upload(&whole, zeros.data(), at, std::min(zeros.size(), b->size() - at));
    }
}

// Rows go through their backend's copies, so a cache in device memory works the same.
KvCache::RingRows KvCache::save_ring_rows(std::vector<int32_t> rows) const {
    RingRows saved;
    saved.rows = std::move(rows);
    for (const Tensor* t : ring_tensors_)
        for (int32_t r : saved.rows) {
            const size_t at = saved.bytes.size();
            saved.bytes.resize(at + t->nb[1]);
            t->buffer->backend().download(t, saved.bytes.data() + at, static_cast<size_t>(r) * t->nb[1], t->nb[1]);
        }
    return saved;
}

void KvCache::restore_ring_rows(const RingRows& saved) {
    size_t at = 0;
    for (Tensor* t : ring_tensors_)
        for (int32_t r : saved.rows) {
            t->buffer->backend().upload(t, saved.bytes.data() + at, static_cast<size_t>(r) * t->nb[1], t->nb[1]);
            at += t->nb[1];
        }
}

size_t KvCache::rows_bytes(int32_t n) const {
    size_t row = 0;
    for (size_t l = 0; l < k_.size(); ++l) row += k_[l]->nb[1] + v_[l]->nb[1];
    return row * static_cast<size_t>(std::max(n, 0));
}

void KvCache::save_rows(int32_t row0, int32_t n, uint8_t* dst) const {
    if (ring_rows_ > 0) throw Error("KV cache: rows of a sliding-window ring cannot be saved", ErrorKind::Internal);
    for (size_t l = 0; l < k_.size(); ++l)
        for (const Tensor* t : {k_[l], v_[l]}) {
            const size_t bytes = t->nb[1] * static_cast<size_t>(n);
            if (bytes) t->buffer->backend().download(t, dst, static_cast<size_t>(row0) * t->nb[1], bytes);
            dst += bytes;
        }
}

void KvCache::load_rows(int32_t row0, int32_t n, const uint8_t* src) {
    if (ring_rows_ > 0) throw Error("KV cache: rows of a sliding-window ring cannot be loaded", ErrorKind::Internal);
    for (size_t l = 0; l < k_.size(); ++l)
        for (Tensor* t : {k_[l], v_[l]}) {
            const size_t bytes = t->nb[1] * static_cast<size_t>(n);
            if (bytes) t->buffer->backend().upload(t, src, static_cast<size_t>(row0) * t->nb[1], bytes);
            src += bytes;
        }
}

}  // namespace tessera::runtime
