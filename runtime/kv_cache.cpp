// The KV cache's tensors, one pair per layer in one buffer.
#include "runtime/kv_cache.h"

#include <cstring>
#include <string>

#include "tensor/error.h"

namespace tessera::runtime {

KvCache::KvCache(Backend& backend, const models::HParams& hp, int32_t n_ctx, DType type)
    : n_ctx_(n_ctx), type_(type) {
    if (type != DType::F16 && type != DType::F32 && type != DType::Q8_0)
        throw Error("KV cache type " + std::string(type_name(type)) + " is not supported (F16, F32, Q8_0)");
    const int64_t bs = type_traits(type).block_size;
    if (hp.head_dim_k % bs != 0 || hp.head_dim_v % bs != 0)
        throw Error("KV cache type " + std::string(type_name(type)) + " needs head sizes that are multiples of " +
                    std::to_string(bs));
    std::vector<Tensor*> all;
    for (int il = 0; il < hp.n_layer; ++il) {
        std::string kn = "cache_k_l" + std::to_string(il), vn = "cache_v_l" + std::to_string(il);
        k_.push_back(graph_.new_tensor(type, {hp.n_embd_k_gqa(), n_ctx}, kn.c_str()));
        v_.push_back(graph_.new_tensor(type, {hp.n_embd_v_gqa(), n_ctx}, vn.c_str()));
        all.push_back(k_.back());
        all.push_back(v_.back());
    }
    buffer_ = allocate_tensors(backend, all, BufferUsage::Cache);
    clear();
}

void KvCache::clear() { std::memset(buffer_->base(), 0, buffer_->size()); }

}  // namespace tessera::runtime
