// Scheduler: backend assignment, segments, seam copies, memory plan, evaluation.
#include "tensor/scheduler.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "tensor/alloc.h"
#include "tensor/error.h"

namespace tessera {

namespace {

constexpr size_t kAlignment = 64;

bool is_persistent(const Tensor* t) { return t->root()->buffer != nullptr; }

// Nodes that write memory of their own (not views, not writes into another tensor).
bool owns_graph_memory(const Tensor* t) {
    if (t->view_src) return false;
    if (t->op == Op::None) return (t->flags & kFlagInput) != 0;
    return true;
}

}  // namespace

Scheduler::Scheduler(std::vector<Backend*> backends) : backends_(std::move(backends)) {
    if (backends_.empty()) throw Error("Scheduler: no backends");
    compute_buffers_.resize(backends_.size());
    work_buffers_.resize(backends_.size());
    planned_.assign(backends_.size(), 0);
    work_sizes_.assign(backends_.size(), 0);
}

Scheduler::~Scheduler() = default;

size_t Scheduler::n_copies() const {
    size_t n = 0;
    for (const Segment& s : segments_) n += s.copies.size();
    return n;
}

size_t Scheduler::reserved_bytes(int i) const {
    const auto& b = compute_buffers_[static_cast<size_t>(i)];
    return b ? b->size() : 0;
}

// The backend whose memory holds `t`'s data.
int Scheduler::home_of(const Tensor* t) const {
    const Tensor* r = t->root();
    if (r->buffer) {
        for (size_t i = 0; i < backends_.size(); ++i)
            if (&r->buffer->backend() == backends_[i]) return static_cast<int>(i);
        throw Error("scheduler: tensor '" + std::string(r->name) + "' lives on backend '" +
                    r->buffer->backend().name() + "', which this scheduler does not use");
    }
    if (r->backend >= 0) return r->backend;
    return static_cast<int>(backends_.size()) - 1;  // inputs and host pointers: the fallback
}

void Scheduler::set_offload(Backend* b, int64_t min_rows) {
    offload_ = -1;
    offload_min_rows_ = min_rows;
    for (size_t i = 0; b && min_rows > 0 && i < backends_.size(); ++i)
        if (backends_[i] == b && !b->host_memory()) offload_ = static_cast<int>(i);
    planned_graph_ = nullptr;
}

// Whether set_offload sends `node` to its backend: a prompt-sized product over a host weight,
// a node of such a batch whose only persistent inputs are small host weights (a norm's
// scale, a bias), copied along so the layer's activations need not come back for them, or the
// attention over a host KV cache, whose cells in use are copied over once the CPU has written
// the batch's keys and values into them (a few MiB: far less than the queries and the
// attention's output would take, and the device computes it many times faster).
bool Scheduler::offloads(const Tensor* node) const {
    if (offload_ < 0 || (node->flags & kFlagBatchInvariant)) return false;
    if (node->op == Op::GetRows || node->op == Op::SetRows || node->op == Op::Cpy || node->op == Op::View) return false;
    Backend& b = *backends_[static_cast<size_t>(offload_)];
    Tensor plain[kMaxSrc];  // the host weights as their copies will be: the file's layout
    Tensor asked = *node;
    bool any = false;
    for (int i = 0; i < kMaxSrc; ++i) {
        const Tensor* w = node->src[i];
        if (!w || !is_persistent(w)) continue;
        if (node->op == Op::FlashAttn && (i == 1 || i == 2) && w->root()->buffer->usage() == BufferUsage::Cache) {
            if (!w->root()->buffer->backend().host_memory() || w->n_bytes() > b.max_buffer_bytes()) return false;
            any = true;
            continue;
        }
        // Only weights in host memory, whole (not views), in the file's layout or with it kept.
        if (w->op != Op::None || w->view_src || w->buffer->usage() != BufferUsage::Weights ||
            !w->buffer->backend().host_memory())
            return false;
        if ((w->flags & kFlagRepacked) && !w->host_blocks) return false;
        if (w->n_bytes() > b.max_buffer_bytes()) return false;
        if (node->op != Op::MulMat && w->n_bytes() > (size_t{1} << 20)) return false;
        plain[i] = *w;
        plain[i].flags = 0;
        asked.src[i] = &plain[i];
        any = true;
    }
    if (!any) return false;
    const int64_t rows = node->op == Op::MulMat      ? node->src[1]->n_rows()
                         : node->op == Op::FlashAttn ? node->src[0]->ne[1]  // the batch's tokens
                                                     : node->n_rows();
    if (rows < offload_min_rows_) return false;
    return b.supports(asked);
}

int Scheduler::assign(const Tensor* node) const {
    const int fallback = static_cast<int>(backends_.size()) - 1;
    if (offloads(node)) return offload_;
    int want = -1;
    // A write into persistent memory (KV cache) runs where that memory is.
    if ((node->op == Op::Cpy || node->op == Op::SetRows) && is_persistent(node)) want = home_of(node);
    // Otherwise where its weights live...
    for (int i = 0; want < 0 && i < kMaxSrc; ++i)
        if (node->src[i] && is_persistent(node->src[i])) want = home_of(node->src[i]);
    // ...else where its newest input lives (the one made last): the residual stream joins
    // the layers on the GPU instead of pulling each layer's output back, and leaves them
    // where the CPU's layers begin (a token embedding read on the GPU does not pull every CPU
    // layer's sums over).
    int newest = -1;
    for (int i = 0; want < 0 && i < kMaxSrc; ++i) {
        if (!node->src[i]) continue;
        auto it = order_.find(node->src[i]);
        const int at = it == order_.end() ? -1 : it->second;
        if (at > newest) newest = at, want = -2 - i;  // decided below
    }
    if (want <= -2) want = home_of(node->src[-2 - want]);
    if (want < 0) want = fallback;
    if (!backends_[static_cast<size_t>(want)]->supports(*node)) want = fallback;
    if (!backends_[static_cast<size_t>(want)]->supports(*node))
        throw Error(std::string("scheduler: no backend supports ") + op_name(node->op) + " '" + node->name + "' " +
                    shape_string(node) + " " + std::string(type_name(node->type)));
    return want;
}

void Scheduler::plan(Graph& g) {
    segments_.clear();
    copy_tensors_.clear();
    const int fallback = static_cast<int>(backends_.size()) - 1;
    auto& tensors = g.tensors();

    // 1. Backends: leaves stay where their memory is, views follow their source, nodes
    //    are assigned. Then segments of same-backend runs.
    for (Tensor& t : tensors) t.backend = -1;
    order_.clear();
    int position = 0;
    for (Tensor& t : tensors) order_[&t] = position++;
    for (Tensor& t : tensors) {
        if (t.op == Op::None) {
            if (!t.buffer && !t.data && !(t.flags & kFlagInput))
                throw Error("scheduler: leaf '" + std::string(t.name) + "' " + shape_string(&t) +
                            " has no data and is not an input");
            t.backend = static_cast<int16_t>(t.buffer ? home_of(&t) : fallback);
        } else if (t.op == Op::View) {
            t.backend = static_cast<int16_t>(home_of(&t));
        } else {
            t.backend = static_cast<int16_t>(assign(&t));
            if ((t.op == Op::Cpy || t.op == Op::SetRows) && home_of(&t) != t.backend &&
                !backends_[static_cast<size_t>(home_of(&t))]->host_memory())
                throw Error(std::string("scheduler: ") + op_name(t.op) + " '" + t.name +
                            "' must write into memory of a backend that cannot run it");
            if (segments_.empty() || segments_.back().backend != t.backend)
                segments_.push_back(Segment{t.backend, {}, {}, {}});
            segments_.back().nodes.push_back(&t);
        }
    }

    // 2. Seams: an input living on another backend is copied once into the consumer's
    //    backend. Persistent host memory read by a host backend needs no copy.
    std::map<std::pair<const Tensor*, int>, Tensor*> copies;
    for (Segment& seg : segments_) {
        for (Tensor* node : seg.nodes) {
            for (int i = 0; i < kMaxSrc; ++i) {
                Tensor* s = node->src[i];
                if (!s) continue;
                // The destination of a write is reached through the node's own memory.
                if ((node->op == Op::Cpy && i == 1) || (node->op == Op::SetRows && i == 0)) continue;
                int home = home_of(s);
                if (home == seg.backend) continue;
                if (is_persistent(s) && backends_[static_cast<size_t>(home)]->host_memory() &&
                    backends_[static_cast<size_t>(seg.backend)]->host_memory())
                    continue;
                auto key = std::make_pair(static_cast<const Tensor*>(s), seg.backend);
                auto it = copies.find(key);
                if (it == copies.end()) {
                    Tensor& c = copy_tensors_.emplace_back();
                    c.type = s->type;
                    std::copy(s->ne, s->ne + kMaxDims, c.ne);
                    std::copy(s->nb, s->nb + kMaxDims, c.nb);
                    std::snprintf(c.name, sizeof c.name, "%.36s (copy)", s->name);
                    c.backend = static_cast<int16_t>(seg.backend);
                    const bool weight = is_persistent(s) && s->root()->buffer->usage() == BufferUsage::Weights &&
                                        backends_[static_cast<size_t>(home)]->host_memory() &&
                                        !backends_[static_cast<size_t>(seg.backend)]->host_memory();
                    seg.copies.push_back(Copy{s, &c, weight});
                    it = copies.emplace(key, &c).first;
                }
                node->src[i] = it->second;
            }
        }
    }

    // Streamed weights start copying one segment of their device ahead.
    std::vector<int> issued_at(segments_.size());
    {
        std::vector<int> last_on(backends_.size(), -1);
        for (size_t k = 0; k < segments_.size(); ++k) {
            Segment& seg = segments_[k];
            const bool streams =
                std::any_of(seg.copies.begin(), seg.copies.end(), [](const Copy& c) { return c.weight; });
            int& prev = last_on[static_cast<size_t>(seg.backend)];
            issued_at[k] = streams && prev >= 0 ? prev : static_cast<int>(k);
            if (streams) segments_[static_cast<size_t>(issued_at[k])].prefetch.push_back(static_cast<int>(k));
            prev = static_cast<int>(k);
        }
    }
    tickets_.assign(segments_.size(), 0);

    // 3. Memory: steps follow segment order (copies run at their segment's first step, a
    //    streamed weight's from the first step of the segment that starts it). A tensor lives
    //    from its producing step to its last reader; views keep their source alive; outputs
    //    live to the end.
    std::map<const Tensor*, int> first, last;
    std::vector<int> start_step(segments_.size());
    int step = 0;
    auto touch = [&](const Tensor* t, int at) {
        const Tensor* r = t->root();
        auto [it, fresh] = last.emplace(r, at);
        if (!fresh) it->second = std::max(it->second, at);
    };
    for (Tensor& t : tensors)
        if (t.op == Op::None && (t.flags & kFlagInput)) first[&t] = 0;
    for (size_t k = 0; k < segments_.size(); ++k) {
        Segment& seg = segments_[k];
        start_step[k] = step;
        for (Copy& c : seg.copies) {
            first[c.dst] = c.weight ? start_step[static_cast<size_t>(issued_at[k])] : step;
            touch(c.src, step);
        }
        for (Tensor* node : seg.nodes) {
            ++step;
            if (owns_graph_memory(node)) first[node] = step;
            touch(node, step);
            for (int i = 0; i < kMaxSrc; ++i)
                if (node->src[i]) touch(node->src[i], step);
        }
        ++step;
    }
    for (Tensor& t : tensors)
        if (t.flags & kFlagOutput) touch(&t, INT_MAX);

    std::vector<std::vector<Lifetime>> lifetimes(backends_.size());
    std::vector<std::vector<Tensor*>> owners(backends_.size());
    for (auto& [t, f] : first) {
        Tensor* tt = const_cast<Tensor*>(t);
        auto it = last.find(t);
        int l = it == last.end() ? f : it->second;
        size_t b = static_cast<size_t>(tt->backend);
        lifetimes[b].push_back(Lifetime{tt->n_bytes(), f, l, 0});
        owners[b].push_back(tt);
    }

    for (size_t b = 0; b < backends_.size(); ++b) {
        size_t peak = plan_memory(lifetimes[b], kAlignment);
        planned_[b] = peak;
        if (peak > 0 && (!compute_buffers_[b] || compute_buffers_[b]->size() < peak)) {
            compute_buffers_[b].reset();
            compute_buffers_[b] = backends_[b]->alloc_buffer(peak, BufferUsage::Compute);
        }
        for (size_t i = 0; i < owners[b].size(); ++i)
            owners[b][i]->data = static_cast<char*>(compute_buffers_[b]->base()) + lifetimes[b][i].offset;
    }
    // Views (and writes into other tensors) point into their source's memory.
    for (Tensor& t : tensors)
        if (t.view_src) t.data = static_cast<char*>(t.view_src->data) + t.view_offset;

    // Copies between two devices go through host memory, reserved here.
    size_t staged = 0;
    for (const Segment& seg : segments_)
        for (const Copy& c : seg.copies)
            if (!c.weight && !backends_[static_cast<size_t>(seg.backend)]->host_memory() &&
                !backends_[static_cast<size_t>(home_of(c.src))]->host_memory())
                staged = std::max(staged, c.src->n_bytes());
    if (staging_.size() < staged) staging_.resize(staged);

    // 4. Scratch memory for each backend's segments.
    std::fill(work_sizes_.begin(), work_sizes_.end(), 0);
    for (const Segment& seg : segments_) {
        size_t b = static_cast<size_t>(seg.backend);
        work_sizes_[b] = std::max(work_sizes_[b], backends_[b]->work_size(seg.nodes, n_threads_));
    }
    for (size_t b = 0; b < backends_.size(); ++b)
        if (work_sizes_[b] > 0 && (!work_buffers_[b] || work_buffers_[b]->size() < work_sizes_[b]))
            work_buffers_[b] = backends_[b]->alloc_buffer(work_sizes_[b], BufferUsage::Compute);

    planned_graph_ = &g;
    planned_graph_size_ = g.size();

    // TESSERA_DEBUG_SCHED=1: each plan's segments on stderr (which backend, how many nodes,
    // what is copied in, the first node's op), to see where a graph crosses devices.
    static const bool debug = [] {
        const char* e = std::getenv("TESSERA_DEBUG_SCHED");
        return e && *e && std::strcmp(e, "0") != 0;
    }();
    if (debug) {
        std::fprintf(stderr, "scheduler: %zu segments, %zu copies\n", segments_.size(), n_copies());
        for (const Segment& seg : segments_) {
            std::fprintf(stderr, "  %-6s %4zu nodes, %zu copies in, first %s '%s'\n",
                         backends_[static_cast<size_t>(seg.backend)]->name().c_str(), seg.nodes.size(),
                         seg.copies.size(), op_name(seg.nodes.front()->op), seg.nodes.front()->name);
        }
    }
}

void Scheduler::compute(Graph& g) {
    if (planned_graph_ != &g || planned_graph_size_ != g.size()) plan(g);
    std::vector<Backend::HostCopy> batch;
    for (size_t k = 0; k < segments_.size(); ++k) {
        const Segment& seg = segments_[k];
        Backend& dst_backend = *backends_[static_cast<size_t>(seg.backend)];
        // A weight the host keeps rearranged goes over in the file's layout.
        auto host_bytes = [](const Tensor* w) {
            const bool blocks = (w->flags & kFlagRepacked) && w->host_blocks;
            return blocks ? w->host_blocks : static_cast<const void*>(w->data);
        };
        bool streamed = false;
        for (const Copy& c : seg.copies) {
            if (c.weight) {
                streamed = true;
                continue;
            }
            Backend& src_backend = *backends_[static_cast<size_t>(home_of(c.src))];
            size_t n = c.src->n_bytes();
            src_backend.synchronize();
            if (dst_backend.host_memory()) {
                src_backend.download(c.src, c.dst->data, 0, n);
            } else if (src_backend.host_memory()) {
                dst_backend.upload(c.dst, host_bytes(c.src), 0, n);
            } else if (!dst_backend.copy_from_device(src_backend, c.src, c.dst, n)) {
                // Between two devices that cannot copy directly: through host memory.
                src_backend.download(c.src, staging_.data(), 0, n);
                dst_backend.upload(c.dst, staging_.data(), 0, n);
            }
        }
        // Started after this segment's own inputs: a device with one copy engine each way
        // would otherwise make them wait behind the next layer's weights.
        for (int j : seg.prefetch) {
            const Segment& later = segments_[static_cast<size_t>(j)];
            batch.clear();
            for (const Copy& c : later.copies)
                if (c.weight) batch.push_back({c.dst, host_bytes(c.src), c.src->n_bytes()});
            tickets_[static_cast<size_t>(j)] = backends_[static_cast<size_t>(later.backend)]->upload_async(batch);
        }
        if (streamed) dst_backend.wait_uploads(tickets_[k]);
        size_t b = static_cast<size_t>(seg.backend);
        void* work = work_buffers_[b] ? work_buffers_[b]->base() : nullptr;
        if (abort_ && abort_()) throw Error("computation aborted", ErrorKind::Aborted);
        dst_backend.compute(seg.nodes, work, work_sizes_[b], n_threads_, abort_);
    }
    for (Backend* b : backends_) b->synchronize();
}

void Scheduler::read(const Tensor* t, void* dst, size_t n) const {
    backends_[static_cast<size_t>(home_of(t))]->download(t, dst, 0, n);
}

}  // namespace tessera
