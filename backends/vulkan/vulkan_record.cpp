// The Vulkan backend's recording and submission: a segment's nodes recorded into one command
// buffer (a dispatch per node, a barrier before a node that depends on one since the last;
// each op's recording is in vulkan_ops.cpp), kept and submitted again while the same planned
// graph runs, the descriptor sets that bind tensors to shaders, and the scratch buffer.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "backends/vulkan/vulkan_api.h"
#include "backends/vulkan/vulkan_device.h"
#include "tensor/backend.h"
#include "tensor/error.h"
#include "tensor/graph.h"
#include "tensor/profile.h"

namespace tessera::vulkan {

uint64_t extent(const Tensor& t) {
    if (t.n_elements() == 0) return 0;
    const TypeTraits& tr = type_traits(t.type);
    if (tr.block_size > 1) return t.n_bytes();  // rows of blocks are contiguous
    uint64_t end = tr.type_size;
    for (int i = 0; i < kMaxDims; ++i) end += static_cast<uint64_t>(t.ne[i] - 1) * t.nb[i];
    return end;
}

void VulkanBackend::compute(std::span<Tensor* const> nodes, void*, size_t, int, const AbortCheck& abort) {
    if (abort && abort()) throw Error("computation aborted", ErrorKind::Aborted);
    open();
    std::lock_guard<std::mutex> lock(mu_);
    // TESSERA_PROFILE=1 (tensor/profile.h): the device's timestamps between nodes where the
    // queue has them (the barrier after each node makes the difference that node's time),
    // else one submission per node timed on the host.
    // TESSERA_PROFILE=graph: each submission's span on the device (timestamps at its start
    // and end, the nodes ordered as unprofiled) and on the host (recording, submission, wait).
    static NodeProfile* const prof = NodeProfile::get("Vulkan time");
    if (prof && NodeProfile::whole_graphs()) {
        const auto t0 = std::chrono::steady_clock::now();
        submit(nodes, timestamps_ ? prof : nullptr);
        prof->add("graph of " + std::to_string(nodes.size()) + " nodes, host",
                  std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        return;
    }
    if (prof && !timestamps_) {
        for (Tensor* n : nodes) {
            const auto t0 = std::chrono::steady_clock::now();
            submit(std::span<Tensor* const>(&n, 1), nullptr);
            prof->add(*n, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        return;
    }
    submit(nodes, prof);
}

// The times between a recording's timestamps, added to the profile node by node (or level by
// level).
void VulkanBackend::read_stamps(std::span<Tensor* const> nodes, const Recording& r, NodeProfile* profile) {
    std::vector<uint64_t> t(r.stamps);
    if (api_.vkGetQueryPoolResults(dev_, stamps_, 0, r.stamps, t.size() * sizeof(uint64_t), t.data(), sizeof(uint64_t),
                                   VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) != VK_SUCCESS)
        return;
    const double ms_per_tick = static_cast<double>(props_.limits.timestampPeriod) * 1e-6;
    if (NodeProfile::whole_graphs()) {
        profile->add("graph of " + std::to_string(nodes.size()) + " nodes, device",
                     static_cast<double>(t[1] - t[0]) * ms_per_tick);
        return;
    }
    if (!r.levels.empty()) {
        for (size_t i = 0; i + 1 < t.size() && i < r.levels.size(); ++i)
            profile->add(r.levels[i], static_cast<double>(t[i + 1] - t[i]) * ms_per_tick);
        return;
    }
    for (size_t i = 0; i + 1 < t.size() && i < nodes.size(); ++i)
        profile->add(*nodes[i], static_cast<double>(t[i + 1] - t[i]) * ms_per_tick);
}

// Records the nodes into a command buffer, or finds the one recorded for the same nodes
// before (a planned graph evaluated again: every decoding step of one shape), and submits.
void VulkanBackend::submit(std::span<Tensor* const> nodes, NodeProfile* profile) {
    const Api& a = api_;
    launch_signature(nodes, key_);
    if (readback_on_)  // which nodes are read after the graph: the copies recorded at its end
        for (size_t i = 0; i < nodes.size(); ++i)
            if (nodes[i]->flags & kFlagOutput) key_.push_back(i);
    ++clock_;
    readable_.clear();
    for (Recording& r : recordings_)
        if (r.key == key_) {
            r.last_used = clock_;
            submit_and_wait(r.cmd);
            readable_ = r.reads;
            if (r.stamps) read_stamps(nodes, r, profile);
            return;
        }
    if (recordings_.size() < kRecordings) {
        Recording r;
        VkCommandBufferAllocateInfo ci{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
        ci.commandPool = cmd_pool_;
        ci.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
        ci.commandBufferCount = 1;
        check(a.vkAllocateCommandBuffers(dev_, &ci, &r.cmd), "vkAllocateCommandBuffers");
        recordings_.push_back(r);
    }
    Recording& r = *std::min_element(recordings_.begin(), recordings_.end(),
                                     [](const Recording& x, const Recording& y) { return x.last_used < y.last_used; });
    r.key = key_;
    r.last_used = clock_;
    prepare_descriptors(r, nodes.size());
    cmd_ = r.cmd;
    desc_pool_ = r.pool;
    check(a.vkResetCommandBuffer(cmd_, 0), "vkResetCommandBuffer");
    VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    check(a.vkBeginCommandBuffer(cmd_, &bi), "vkBeginCommandBuffer");
    const bool whole = profile && NodeProfile::whole_graphs();       // two stamps, around the nodes
    const bool levels = profile && !whole && NodeProfile::levels();  // a stamp at each barrier
    r.stamps = whole                                  ? 2u
               : levels                               ? kMaxStamps
               : profile && nodes.size() < kMaxStamps ? static_cast<uint32_t>(nodes.size() + 1)
                                                      : 0u;
    r.levels.clear();
    if (r.stamps && !stamps_) {
        VkQueryPoolCreateInfo qi{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
        qi.queryType = VK_QUERY_TYPE_TIMESTAMP;
        qi.queryCount = kMaxStamps;
        check(a.vkCreateQueryPool(dev_, &qi, nullptr, &stamps_), "vkCreateQueryPool");
    }
    if (r.stamps) {
        a.vkCmdResetQueryPool(cmd_, stamps_, 0, r.stamps);
        a.vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, stamps_, 0);
    }
    pending_.clear();
    level_stamps_ = levels;
    level_label_.clear();
    level_rec_ = &r;
    next_stamp_ = 1;
    acts_used_ = 0;
    sinks_used_ = 0;
    prefetched_.clear();
    acts_made_.clear();
    acts_wanted_.clear();
    for (Tensor* n : nodes)
        if (n->op == Op::MulMat && int8_product(*n)) acts_wanted_.push_back(n->src[1]);
    try {
        for (size_t i = 0; i < nodes.size(); ++i) {
            // A residual add and the RMS norm of its sum: one dispatch (the profile gives
            // its time to the add, none to the norm).
            const bool fuse = i + 1 < nodes.size() && fusable_add(*nodes[i], *nodes[i + 1]);
            const Tensor* fused = fuse ? nodes[i] : nullptr;
            if (fuse) ++i;
            const bool each = r.stamps && !whole && !levels;  // each node timed
            if (!each) order(*nodes[i], fused);
            if (fuse)
                record_rows(*nodes[i], fused);
            else
                record(*nodes[i]);
            if (prefetch_bytes_ && !each) prefetch_ahead(nodes, i);
            if (each) {  // each node timed alone: a barrier after every one
                barrier();
                for (size_t k = fuse ? i : i + 1; k <= i + 1; ++k)
                    a.vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, stamps_,
                                          static_cast<uint32_t>(k));
            }
        }
    } catch (...) {
        level_stamps_ = false;
        a.vkEndCommandBuffer(cmd_);
        r.key.clear();  // never matched again
        throw;
    }
    if (levels) {
        close_level();
        level_stamps_ = false;
        r.stamps = next_stamp_;
    }
    r.reads.clear();
    if (readback_on_) record_readback(r, nodes);
    if (whole) a.vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, stamps_, 1);
    check(a.vkEndCommandBuffer(cmd_), "vkEndCommandBuffer");
    submit_and_wait(cmd_);
    readable_ = r.reads;
    // A scratch buffer replaced while recording: the nodes before the replacement bind the old
    // one, which goes now, so this recording is made again when next needed (with the larger
    // buffer from its start).
    if (!retired_.empty()) r.key.clear();
    retired_.clear();
    if (r.stamps) read_stamps(nodes, r, profile);
}

// The nodes read after the graph (kFlagOutput) copied at its end into readback_, host
// memory that download() then reads without a submission of its own: on a discrete GPU, a
// decoding step's logits. Outputs past readback_'s size are left to download().
void VulkanBackend::record_readback(Recording& r, std::span<Tensor* const> nodes) {
    const Api& a = api_;
    uint64_t used = 0;
    for (const Tensor* n : nodes) {
        if (!(n->flags & kFlagOutput) || !n->data) continue;
        const Bound b = bound(n);
        const uint64_t bytes = b.bytes ? b.bytes : n->n_bytes();
        const uint64_t at = (used + 15) / 16 * 16;
        if (bytes == 0 || at + bytes > kStagingBytes) continue;
        r.reads.push_back(Readback{b.buf->handle(), b.at, bytes, at});
        used = at + bytes;
    }
    if (r.reads.empty()) return;
    if (!readback_) {
        if (host_only_ == UINT32_MAX) {
            r.reads.clear();
            return;
        }
        readback_ =
            std::make_unique<DeviceBuffer>(this, BufferUsage::Compute, kStagingBytes, dev_, a, host_only_, host_only_);
    }
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
    a.vkCmdPipelineBarrier(cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0,
                           nullptr, 0, nullptr);
    for (const Readback& rb : r.reads) {
        const VkBufferCopy region{rb.at, rb.rb_at, rb.bytes};
        a.vkCmdCopyBuffer(cmd_, rb.buf, readback_->handle(), 1, &region);
    }
    mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    a.vkCmdPipelineBarrier(cmd_, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr, 0,
                           nullptr);
}

void VulkanBackend::submit_and_wait(VkCommandBuffer cmd) {
    const Api& a = api_;
    VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cmd;
    check(a.vkResetFences(dev_, 1, &fence_), "vkResetFences");
    check(a.vkQueueSubmit(queue_, 1, &si, fence_), "vkQueueSubmit");
    // The fence polled for a while before the blocking wait: a decoding step's submission
    // ends within milliseconds, and a sleeping thread wakes tens of microseconds late.
    if (spin_us_ > 0) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us_);
        for (;;) {
            const VkResult r = a.vkGetFenceStatus(dev_, fence_);
            if (r == VK_SUCCESS) return;
            if (r != VK_NOT_READY) check(r, "vkGetFenceStatus");
            if (std::chrono::steady_clock::now() > until) break;
        }
    }
    check(a.vkWaitForFences(dev_, 1, &fence_, VK_TRUE, UINT64_MAX), "vkWaitForFences");
}

// A recording's descriptor pool, emptied, with room for a set per node (and per extra
// dispatch of very wide products).
void VulkanBackend::prepare_descriptors(Recording& r, size_t n_nodes) {
    const Api& a = api_;
    if (n_nodes * 2 > r.pool_sets || !r.pool) {
        if (r.pool) a.vkDestroyDescriptorPool(dev_, r.pool, nullptr);
        r.pool_sets = std::max<size_t>(n_nodes, 64) * 2;
        // Storage buffers, and a uniform one per set at most (kMulMatU's activations).
        const VkDescriptorPoolSize sizes[2] = {
            {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, static_cast<uint32_t>(r.pool_sets * kMaxBindings)},
            {VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER, static_cast<uint32_t>(r.pool_sets)}};
        VkDescriptorPoolCreateInfo pi{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
        pi.maxSets = static_cast<uint32_t>(r.pool_sets);
        pi.poolSizeCount = 2;
        pi.pPoolSizes = sizes;
        check(a.vkCreateDescriptorPool(dev_, &pi, nullptr, &r.pool), "vkCreateDescriptorPool");
    } else {
        a.vkResetDescriptorPool(dev_, r.pool, 0);
    }
}

// A tensor's bytes (the dummy buffer's for none).
VulkanBackend::Bound VulkanBackend::bound(const Tensor* t) const {
    if (!t) return Bound{dummy_.get(), 0, 0};
    auto [buf, at] = locate(t->data);
    return Bound{buf, at, extent(*t)};
}

// Binds tensors (null: a dummy buffer) and returns each one's byte offset in its binding.
void VulkanBackend::bind(Shader s, std::initializer_list<const Tensor*> tensors, uint32_t* offsets) {
    Bound b[kMaxBindings];
    uint32_t n = 0;
    for (const Tensor* t : tensors) b[n++] = bound(t);
    bind(s, std::span<const Bound>(b, n), offsets);
}

// The scratch buffer, at least `bytes` long. A larger one replaces it: the recording being
// made keeps the old one alive until its submission ends (and is made again when next
// needed, see submit()), and other recordings, which bind the old one, are made again too.
// A new one's first kAttnCounterBytes are zeroed: split attention's counters, which each
// dispatch leaves at zero.
DeviceBuffer* VulkanBackend::scratch(size_t bytes) {
    const DeviceBuffer* before = scratch_.get();
    DeviceBuffer* b = grow(scratch_, bytes);
    if (b != before) {
        const size_t n = std::min<size_t>(kAttnCounterBytes, b->size());
        if (b->mapped()) {
            std::memset(b->mapped(), 0, n);
        } else {
            std::memset(staging()->mapped(), 0, n);
            copy_buffer(staging()->handle(), 0, b->handle(), 0, n);
        }
    }
    return b;
}

// A scratch-like buffer (scratch_, acts_) at least `bytes` long, replaced as scratch() says.
DeviceBuffer* VulkanBackend::grow(std::unique_ptr<DeviceBuffer>& slot, size_t bytes) {
    if (!slot || slot->size() < bytes) {
        if (slot) retired_.push_back(std::move(slot));
        const size_t size = std::max<size_t>(bytes + bytes / 2, size_t{1} << 20);
        slot = std::make_unique<DeviceBuffer>(this, BufferUsage::Compute, size, dev_, api_, host_local_, device_local_);
        for (Recording& r : recordings_)
            if (r.cmd != cmd_) r.key.clear();
    }
    return slot.get();
}

// Activation rows b (F32, [K, M]) as int8 blocks of 32: K bytes a row (rows 16-byte aligned),
// then a (d, d * sum) pair per block, in a part of the activation buffer of their own for the
// recording. reserve_acts() takes the part (for a node that writes the copy beside its output:
// rows.comp's RMS norm); quantize_acts() finds it, or takes one and dispatches quant_act.comp
// into it, followed by a barrier, and says whether it did (the products that share a source,
// a layer's Q, K and V, then run side by side).
VulkanBackend::QuantActs VulkanBackend::reserve_acts(const Tensor& b) {
    const uint64_t K = static_cast<uint64_t>(b.ne[0]), M = static_cast<uint64_t>(b.ne[1]);
    const uint64_t row_bytes = (K + 15) / 16 * 16, qs_bytes = row_bytes * M;
    const uint64_t bytes = qs_bytes + M * (K / 32) * 8;
    const uint64_t at = (acts_used_ + 255) / 256 * 256;
    DeviceBuffer* buf = grow(acts_, at + bytes);
    acts_used_ = at + bytes;
    const QuantActs q{buf, at, row_bytes, at + qs_bytes, bytes};
    acts_made_.emplace_back(&b, q);
    return q;
}

bool VulkanBackend::quantize_acts(const Tensor& b, QuantActs* q) {
    for (const auto& [t, made] : acts_made_)
        if (t == &b) {
            *q = made;
            return false;
        }
    *q = reserve_acts(b);
    const std::string kind = std::exchange(node_kind_, "quant_act");
    dispatch_quant(b, *q, nullptr, nullptr, 0);
    barrier();
    node_kind_ = kind;
    return true;
}

// quant_act.comp over rows x (F32, [K, M]) into q; with gate (1 SwiGLU, 2 GeGLU) the rows are
// act(x) * up, written to out as well.
void VulkanBackend::dispatch_quant(const Tensor& x, const QuantActs& q, const Tensor* up, const Tensor* out,
                                   uint32_t gate) {
    uint32_t off[kMaxBindings] = {};
    const Bound bs[4] = {{q.buf, q.at, q.bytes}, bound(&x), bound(up), bound(out)};
    bind(kQuantAct, bs, off);
    const uint64_t K = static_cast<uint64_t>(x.ne[0]), M = static_cast<uint64_t>(x.ne[1]);
    struct {
        uint32_t b_off, b_nb1, K, M, q_off, q_nb1, ds_off, op, u_off, u_nb1, o_off, o_nb1;
    } pc{off[1],
         static_cast<uint32_t>(x.nb[1]),
         static_cast<uint32_t>(K),
         static_cast<uint32_t>(M),
         off[0],
         static_cast<uint32_t>(q.row_bytes),
         static_cast<uint32_t>(off[0] + (q.ds_at - q.at)),
         gate,
         off[2],
         up ? static_cast<uint32_t>(up->nb[1]) : 0u,
         off[3],
         out ? static_cast<uint32_t>(out->nb[1]) : 0u};
    dispatch(kQuantAct, &pc, sizeof pc, (M * (K / 32) + 7) / 8);  // eight blocks a workgroup
}

// Binds byte ranges of buffers, likewise.
void VulkanBackend::bind(Shader s, std::span<const Bound> bound, uint32_t* offsets) {
    const Api& a = api_;
    const Pipeline& p = pipelines_[s];
    VkDescriptorSetAllocateInfo ai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    ai.descriptorPool = desc_pool_;
    ai.descriptorSetCount = 1;
    ai.pSetLayouts = &p.set_layout;
    VkDescriptorSet set;
    check(a.vkAllocateDescriptorSets(dev_, &ai, &set), "vkAllocateDescriptorSets");
    VkDescriptorBufferInfo infos[kMaxBindings];
    VkWriteDescriptorSet writes[kMaxBindings];
    const VkPhysicalDeviceLimits& lim = props_.limits;
    uint32_t i = 0;
    for (const Bound& b : bound) {
        const bool uniform = (p.uniforms >> i) & 1u;
        const uint64_t align =
            std::max<uint64_t>(uniform ? lim.minUniformBufferOffsetAlignment : lim.minStorageBufferOffsetAlignment, 4);
        DeviceBuffer* buf = b.buf;
        const size_t at = b.at;
        const uint64_t start = at / align * align;
        infos[i].buffer = buf->handle();
        infos[i].offset = start;
        uint64_t rest = std::max<uint64_t>(buf->size(), 256) - start;
        // The tensor's bytes, in whole 16-byte units (the shaders' widest loads): the
        // validation layer's synchronization checks then see what each node touches.
        if (b.bytes) rest = std::min<uint64_t>(rest, (at - start + b.bytes + 15) & ~uint64_t{15});
        infos[i].range =
            std::min<uint64_t>(rest, uniform ? lim.maxUniformBufferRange : lim.maxStorageBufferRange) & ~uint64_t{3};
        if (infos[i].range == 0) infos[i].range = VK_WHOLE_SIZE;
        offsets[i] = static_cast<uint32_t>(at - start);
        writes[i] = VkWriteDescriptorSet{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
        writes[i].dstSet = set;
        writes[i].dstBinding = i;
        writes[i].descriptorCount = 1;
        writes[i].descriptorType = uniform ? VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        writes[i].pBufferInfo = &infos[i];
        ++i;
    }
    a.vkUpdateDescriptorSets(dev_, i, writes, 0, nullptr);
    a.vkCmdBindPipeline(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline);
    a.vkCmdBindDescriptorSets(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &set, 0, nullptr);
}

// Nodes run concurrently until one needs another's results: before a node that reads or
// writes memory a node recorded since the last barrier writes, or writes memory such a node
// reads, comes a barrier. Independent neighbours (a layer's Q, K and V products, the gate and
// up products, the rotation of Q beside the writes of K and V into the cache) then share the
// GPU instead of each waiting for the one before to drain. `fused`: a node recorded in the
// same dispatch, before this one (an Add whose sum the node takes).
void VulkanBackend::order(const Tensor& node, const Tensor* fused) {
    Span spans[2 * (kMaxSrc + 1)];
    size_t n = 0;
    auto add = [&](const Tensor* t, bool write) {
        if (!t || !t->data) return;
        const Bound b = bound(t);
        if (b.bytes) spans[n++] = Span{b.buf->handle(), b.at, b.at + b.bytes, write};
    };
    for (const Tensor* t : {fused, &node}) {
        if (!t) continue;
        add(t, true);
        for (const Tensor* s : t->src)
            if (s != fused) add(s, false);
    }
    bool hazard = false;
    for (size_t i = 0; i < n && !hazard; ++i)
        for (const Span& p : pending_)
            if (p.buf == spans[i].buf && p.begin < spans[i].end && spans[i].begin < p.end &&
                (p.write || spans[i].write)) {
                hazard = true;
                break;
            }
    if (hazard) barrier();
    if (level_stamps_)
        node_kind_ = fused ? NodeProfile::kind(*fused) + "+" + NodeProfile::kind(node) : NodeProfile::kind(node);
    pending_.insert(pending_.end(), spans, spans + n);
    // A node that writes over a quantized source (in place) makes its int8 copy stale.
    for (size_t i = 0; i < n; ++i)
        if (spans[i].write)
            std::erase_if(acts_made_, [&](const auto& made) {
                const Bound b = bound(made.first);
                return b.buf->handle() == spans[i].buf && b.at < spans[i].end && spans[i].begin < b.at + b.bytes;
            });
}

// Every write recorded so far visible to what follows.
void VulkanBackend::barrier() {
    close_level();
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
    api_.vkCmdPipelineBarrier(cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1,
                              &mb, 0, nullptr, 0, nullptr);
    pending_.clear();
}

// Decoding products' weights read ahead (prefetch.comp): after a node that is not a product,
// the next products of one activation row on integer dot products among the few nodes after
// it (those sharing its activations: a layer's Q, K and V, or its gate and up), unless read
// ahead already, get up to prefetch_bytes_ of their first weight bytes, shared evenly, read
// into the L2 cache by a dispatch that runs beside the node. A decoding step's levels of
// small nodes (norms, rotations, attention) leave memory idle, and each product's first
// workgroups otherwise wait on it after the barrier.
void VulkanBackend::prefetch_ahead(std::span<Tensor* const> nodes, size_t i) {
    constexpr size_t kAhead = 12, kGroup = 4;
    constexpr uint32_t kSlot = 16;
    if (nodes[i]->op == Op::MulMat) return;
    const Tensor* group[kGroup];
    size_t n = 0;
    for (size_t j = i + 1; j < nodes.size() && j <= i + kAhead && n < kGroup; ++j) {
        const Tensor* m = nodes[j];
        if (m->op != Op::MulMat) continue;
        if (!int8_product(*m) || m->src[1]->ne[1] != 1 || (n && m->src[1] != group[0]->src[1])) break;
        if (std::find(prefetched_.begin(), prefetched_.end(), m) != prefetched_.end()) break;
        group[n++] = m;
    }
    DeviceBuffer* sink = n ? grow(sink_, size_t{1} << 16) : nullptr;
    if (!n || static_cast<uint64_t>(sinks_used_ + n) * kSlot > sink->size()) return;
    // Each product's share of the bytes, what the smaller ones leave going to the larger:
    // shares taken smallest first.
    Bound weights[kGroup];
    uint64_t take[kGroup];
    size_t order[kGroup];
    for (size_t k = 0; k < n; ++k) {
        weights[k] = bound(group[k]->src[0]);
        take[k] = weights[k].bytes;
        order[k] = k;
    }
    std::sort(order, order + n, [&](size_t x, size_t y) { return take[x] < take[y]; });
    // Within what one binding reaches past its offset's alignment (at most 256 bytes).
    uint64_t left = prefetch_bytes_;
    const uint64_t reach = props_.limits.maxStorageBufferRange > 256 ? props_.limits.maxStorageBufferRange - 256 : 0;
    for (size_t k = 0; k < n; ++k) {
        uint64_t& t = take[order[k]];
        t = std::min<uint64_t>({t, left / (n - k), reach}) / 4 * 4;
        left -= t;
    }
    const std::string kind = std::exchange(node_kind_, "prefetch");
    for (size_t k = 0; k < n; ++k) {
        prefetched_.push_back(group[k]);
        if (take[k] < 4) continue;
        const Bound& w = weights[k];
        uint32_t off[kMaxBindings] = {};
        const uint32_t slot = kSlot * sinks_used_++;
        const Bound bs[2] = {{sink, slot, kSlot}, {w.buf, w.at, take[k]}};
        bind(kPrefetch, bs, off);
        struct {
            uint32_t off, words, sink_off, magic;
        } pc{off[1] / 4, static_cast<uint32_t>(take[k] / 4), off[0] / 4, 0x9E3779B9u};
        dispatch(kPrefetch, &pc, sizeof pc, (take[k] / 32 + 2047) / 2048);
        pending_.push_back(Span{sink->handle(), slot, slot + kSlot, true});
    }
    node_kind_ = kind;
}

// TESSERA_PROFILE=levels: a timestamp where the dispatches since the last one end, and their
// label.
void VulkanBackend::close_level() {
    if (!level_stamps_ || level_label_.empty() || next_stamp_ >= kMaxStamps) return;
    api_.vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, stamps_, next_stamp_++);
    level_rec_->levels.push_back(std::move(level_label_));
    level_label_.clear();
}

// Push constants and the dispatch (workgroup counts over x, then y); order() puts the
// barriers between dependent nodes.
void VulkanBackend::dispatch(Shader s, const void* push, size_t push_bytes, uint64_t groups_x, uint32_t groups_y,
                             uint32_t groups_z) {
    const Api& a = api_;
    a.vkCmdPushConstants(cmd_, pipelines_[s].layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, static_cast<uint32_t>(push_bytes),
                         push);
    const uint64_t max_x = props_.limits.maxComputeWorkGroupCount[0];
    uint64_t x = groups_x, y = groups_y;
    if (groups_y == 1 && groups_z == 1 && groups_x > max_x) {  // a linear count: the shader reads y * count_x + x
        x = std::min<uint64_t>(groups_x, 65535);
        y = (groups_x + x - 1) / x;
    }
    if (level_stamps_ && !node_kind_.empty() &&
        (level_label_.size() < node_kind_.size() ||
         level_label_.compare(level_label_.size() - node_kind_.size(), node_kind_.size(), node_kind_) != 0))
        level_label_.append(level_label_.empty() ? "" : " | ").append(node_kind_);
    if (x > 0 && y > 0 && groups_z > 0)
        a.vkCmdDispatch(cmd_, static_cast<uint32_t>(x), static_cast<uint32_t>(y), groups_z);
}
}  // namespace tessera::vulkan
