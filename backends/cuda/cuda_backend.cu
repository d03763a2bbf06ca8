// The CUDA backend: device buffers, op support, and a segment's nodes launched in order on
// one stream per device.
#include "backends/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <tuple>

#include "backends/cuda/common.cuh"
#include "backends/cuda/fusion.h"
#include "backends/cuda/mulmat.h"
#include "backends/cuda/ops.h"
#include "tensor/backend.h"
#include "tensor/profile.h"

namespace tessera::cuda {

// Whether `kernel` runs code for compute capability `arch` (80, 90) or newer on the current
// device: the device is that new and the kernel's code was compiled for such a target.
bool runs_code_for(const void* kernel, int arch) {
    static std::mutex mu;
    static std::map<std::tuple<int, const void*, int>, bool> known;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    std::lock_guard<std::mutex> lock(mu);
    auto [it, fresh] = known.try_emplace({dev, kernel, arch}, false);
    if (fresh) {
        int major = 0;
        cudaFuncAttributes attr{};
        it->second = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
                     cudaFuncGetAttributes(&attr, kernel) == cudaSuccess && major * 10 >= arch &&
                     attr.ptxVersion >= arch;
        cudaGetLastError();
    }
    return it->second;
}

bool runs_sm80_code(const void* kernel) { return runs_code_for(kernel, 80); }

int multiprocessor_count() {
    static std::mutex mu;
    static std::map<int, int> known;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) {
        cudaGetLastError();
        return 32;
    }
    std::lock_guard<std::mutex> lock(mu);
    auto [it, fresh] = known.try_emplace(dev, 32);
    if (fresh) {
        int n = 0;
        if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess && n > 0) it->second = n;
        cudaGetLastError();
    }
    return it->second;
}

bool pdl_enabled(const void* kernel) {
    static const bool allowed = [] {
        const char* e = std::getenv("TESSERA_CUDA_PDL");
        return !(e && e[0] == '0');
    }();
    return allowed && runs_code_for(kernel, 90);
}

void fail(cudaError_t err, const char* what) {
    throw Error(std::string("CUDA: ") + cudaGetErrorString(err) + " (" + what + ")", ErrorKind::Internal);
}

namespace {

// The device count and why it is zero, asked once.
struct Probe {
    int count = 0;
    std::string reason;
};

const Probe& probe() {
    static const Probe p = [] {
        Probe r;
        const cudaError_t err = cudaGetDeviceCount(&r.count);
        if (err != cudaSuccess) {
            r.count = 0;
            r.reason = err == cudaErrorInsufficientDriver ? "no NVIDIA driver, or one older than this build's CUDA " +
                                                                std::to_string(CUDART_VERSION / 1000) + "." +
                                                                std::to_string(CUDART_VERSION % 1000 / 10) + " runtime"
                                                          : cudaGetErrorString(err);
            cudaGetLastError();  // leave no sticky error behind
        } else if (r.count == 0) {
            r.reason = "the driver reports no CUDA device";
        }
        return r;
    }();
    return p;
}

class DeviceBuffer : public Buffer {
public:
    DeviceBuffer(Backend* b, int device, size_t size, BufferUsage usage) : Buffer(b, usage), size_(size) {
        TESSERA_CUDA_CHECK(cudaSetDevice(device));
        const cudaError_t err = cudaMalloc(&data_, std::max<size_t>(size, 256));
        if (err != cudaSuccess) {
            cudaGetLastError();
            size_t free = 0, total = 0;
            cudaMemGetInfo(&free, &total);
            throw Error("CUDA: cannot allocate " + std::to_string(size >> 20) + " MiB on device " +
                            std::to_string(device) + " (" + std::to_string(free >> 20) + " MiB free of " +
                            std::to_string(total >> 20) + "): " + cudaGetErrorString(err),
                        ErrorKind::Io);
        }
    }
    ~DeviceBuffer() override { cudaFree(data_); }
    void* base() override { return data_; }
    size_t size() const override { return size_; }

private:
    void* data_ = nullptr;
    size_t size_;
};

// Page-locked host memory: weights the CPU keeps and prompts stream to the device are copied
// from it by the copy engine, without the CPU and beside its work. The buffer belongs to the
// host backend, which computes on it as on any host memory.
class PinnedBuffer : public Buffer {
public:
    PinnedBuffer(Backend* host, void* data, size_t size, BufferUsage usage)
        : Buffer(host, usage), data_(data), size_(size) {}
    ~PinnedBuffer() override { cudaFreeHost(data_); }
    void* base() override { return data_; }
    size_t size() const override { return size_; }

private:
    void* data_;
    size_t size_;
};

// TESSERA_PROFILE=1 (tensor/profile.h): the GPU time of every node, from CUDA events around
// it; the host time spent enqueuing the nodes is shown beside.
void profile_nodes(NodeProfile& prof, std::span<Tensor* const> nodes, const std::function<void(const Tensor&)>& launch,
                   cudaStream_t s) {
    std::vector<cudaEvent_t> ev(nodes.size() + 1);
    for (auto& e : ev) TESSERA_CUDA_CHECK(cudaEventCreate(&e));
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < nodes.size(); ++i) {
        TESSERA_CUDA_CHECK(cudaEventRecord(ev[i], s));
        launch(*nodes[i]);
    }
    TESSERA_CUDA_CHECK(cudaEventRecord(ev.back(), s));
    prof.add_overhead(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    TESSERA_CUDA_CHECK(cudaEventSynchronize(ev.back()));
    for (size_t i = 0; i < nodes.size(); ++i) {
        float ms = 0;
        TESSERA_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[i], ev[i + 1]));
        prof.add(*nodes[i], ms);
    }
    for (auto& e : ev) cudaEventDestroy(e);
}

// Lets `device` read and write `peer`'s memory directly (NVLink or PCIe) where the two can,
// once per pair; where they cannot, peer copies still work, staged by the driver.
void enable_peer_access(int device, int peer) {
    static std::mutex mu;
    static std::set<std::pair<int, int>> done;
    std::lock_guard<std::mutex> lock(mu);
    if (!done.insert({device, peer}).second) return;
    int can = 0;
    if (cudaDeviceCanAccessPeer(&can, device, peer) != cudaSuccess || !can) {
        cudaGetLastError();
        return;
    }
    TESSERA_CUDA_CHECK(cudaSetDevice(device));
    if (cudaDeviceEnablePeerAccess(peer, 0) != cudaSuccess) cudaGetLastError();  // already enabled
}

class CudaBackend : public Backend {
public:
    explicit CudaBackend(int device) : device_(device), name_("CUDA" + std::to_string(device)) {}
    ~CudaBackend() override {
        for (Replay& r : replays_)
            if (r.exec) cudaGraphExecDestroy(r.exec);
        if (stream_ || copy_stream_) cudaSetDevice(device_);
        for (auto& [ticket, ev] : uploads_) cudaEventDestroy(ev);
        if (copy_stream_) cudaStreamDestroy(copy_stream_);
        if (stream_) cudaStreamDestroy(stream_);
    }

    const std::string& name() const override { return name_; }
    bool host_memory() const override { return false; }

    DeviceMemory memory() const override {
        DeviceMemory m;
        TESSERA_CUDA_CHECK(cudaSetDevice(device_));
        TESSERA_CUDA_CHECK(cudaMemGetInfo(&m.free, &m.total));
        return m;
    }

    std::unique_ptr<Buffer> alloc_buffer(size_t size, BufferUsage usage) override {
        return std::make_unique<DeviceBuffer>(this, device_, size, usage);
    }

    void upload(Tensor* t, const void* src, size_t offset, size_t n) override {
        if (n == 0) return;
        cudaStream_t s = stream();
        if (offset == 0 && n == t->n_bytes() && upload_split(*t, src, s)) return;
        TESSERA_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(t->data) + offset, src, n, cudaMemcpyHostToDevice, s));
        TESSERA_CUDA_CHECK(cudaStreamSynchronize(s));
    }

    uint64_t upload_async(std::span<const HostCopy> copies) override {
        if (copies.empty()) return 0;
        cudaStream_t s = stream();
        std::call_once(copy_once_,
                       [this] { TESSERA_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking)); });
        std::lock_guard<std::mutex> lock(upload_mutex_);
        if (uploads_.size() >= 64) {
            // Batches nobody waited for (computations that stopped on an error): done by now.
            TESSERA_CUDA_CHECK(cudaStreamSynchronize(copy_stream_));
            for (auto& [ticket, ev] : uploads_) cudaEventDestroy(ev);
            uploads_.clear();
        }
        // The destinations may still be read by the work submitted so far.
        cudaEvent_t submitted = nullptr, done = nullptr;
        TESSERA_CUDA_CHECK(cudaEventCreateWithFlags(&submitted, cudaEventDisableTiming));
        TESSERA_CUDA_CHECK(cudaEventRecord(submitted, s));
        TESSERA_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, submitted, 0));
        cudaEventDestroy(submitted);  // released once it completes
        for (const HostCopy& c : copies)
            TESSERA_CUDA_CHECK(cudaMemcpyAsync(c.dst->data, c.src, c.n, cudaMemcpyHostToDevice, copy_stream_));
        TESSERA_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
        TESSERA_CUDA_CHECK(cudaEventRecord(done, copy_stream_));
        uploads_.emplace(++last_ticket_, done);
        return last_ticket_;
    }

    void wait_uploads(uint64_t ticket) override {
        cudaStream_t s = stream();
        std::lock_guard<std::mutex> lock(upload_mutex_);
        auto it = uploads_.find(ticket);
        if (it == uploads_.end()) return;
        std::lock_guard<std::mutex> compute_lock(compute_mutex_);  // not into another thread's capture
        TESSERA_CUDA_CHECK(cudaStreamWaitEvent(s, it->second, 0));
        cudaEventDestroy(it->second);
        uploads_.erase(it);
    }

    std::unique_ptr<Buffer> alloc_pinned_host(Backend& host, size_t size, BufferUsage usage) override {
        TESSERA_CUDA_CHECK(cudaSetDevice(device_));
        void* p = nullptr;
        if (cudaHostAlloc(&p, std::max<size_t>(size, 64), cudaHostAllocPortable) != cudaSuccess) {
            cudaGetLastError();
            return nullptr;
        }
        return std::make_unique<PinnedBuffer>(&host, p, size, usage);
    }

    void download(const Tensor* t, void* dst, size_t offset, size_t n) override {
        if (n == 0) return;
        if (t->root()->flags & kFlagDeviceLayout)
            throw Error("CUDA backend: the weight '" + std::string(t->root()->name) +
                            "' is kept in the device's own layout and cannot be read back",
                        ErrorKind::Internal);
        cudaStream_t s = stream();
        TESSERA_CUDA_CHECK(
            cudaMemcpyAsync(dst, static_cast<const char*>(t->data) + offset, n, cudaMemcpyDeviceToHost, s));
        TESSERA_CUDA_CHECK(cudaStreamSynchronize(s));
    }

    bool copy_from_device(Backend& from, const Tensor* src, Tensor* dst, size_t n) override {
        auto* other = dynamic_cast<CudaBackend*>(&from);
        if (!other || (src->root()->flags & kFlagDeviceLayout)) return false;
        if (n == 0) return true;
        cudaStream_t s = stream();
        if (other->device_ != device_) enable_peer_access(device_, other->device_);
        TESSERA_CUDA_CHECK(cudaMemcpyPeerAsync(dst->data, device_, src->data, other->device_, n, s));
        // Done before the source's device goes on (and may reuse the source's memory).
        TESSERA_CUDA_CHECK(cudaStreamSynchronize(s));
        return true;
    }

    bool supports(const Tensor& node) const override {
        const Tensor* a = node.src[0];
        if (op_is_f32_only(node.op)) return true;
        // Split rows (the device's layout) are read as a first source, by whole rows, by products,
        // row lookups and copies to F32.
        const DeviceLayoutUse split = device_layout_use(node);
        const bool reader = node.op == Op::GetRows || node.op == Op::MulMat ||
                            ((node.op == Op::Cont || node.op == Op::Cpy) && node.type == DType::F32);
        if (split == DeviceLayoutUse::kOther || (split == DeviceLayoutUse::kRows && !reader)) return false;
        switch (node.op) {
            case Op::GetRows:
                return mul_mat_supports(a->type) && !(a->flags & kFlagRepacked);
            case Op::MulMat:
                return mul_mat_supports(a->type) && !(a->flags & kFlagRepacked);
            case Op::Cont:
            case Op::Cpy:
                if (node.type == DType::F32 && type_traits(a->type).block_size > 1)  // dequantizing
                    return copy_supports(a->type, node.type) && a->is_contiguous() && node.is_contiguous() &&
                           a->ne[0] == node.ne[0];
                return copy_supports(a->type, node.type);
            case Op::SetRows:
                return set_rows_supports(node.type) && node.ne[0] * 4 <= 48 * 1024;
            case Op::FlashAttn:  // not several sequences' slices of one cache (kv_start)
                return !node.src[4] && flash_attn_supports(node.src[1]->type) &&
                       flash_attn_supports(node.src[2]->type) && a->ne[0] <= 256 && node.src[2]->ne[0] <= 256;
            default:
                return false;
        }
    }

    size_t work_size(std::span<Tensor* const> nodes, int) const override {
        // Nodes run one after another on one stream: they share one scratch.
        size_t w = 0;
        for (const Tensor* n : nodes) {
            if (n->op == Op::MulMat)
                w = std::max(w,
                             mul_mat_work_size(n->src[0]->type, n->src[0]->ne[0], n->src[0]->ne[1], n->src[1]->ne[1]));
            else if (n->op == Op::FlashAttn)  // room for the fused launch's activations too (fusion.h)
                w = std::max(w, attention_acts_size(*n) + flash_attn_work_size(*n));
        }
        return w;
    }

    void compute(std::span<Tensor* const> nodes, void* work, size_t work_size, int, const AbortCheck& abort) override {
        cudaStream_t s = stream();
        // One segment at a time: a capture in progress must see only this segment's launches.
        std::lock_guard<std::mutex> lock(compute_mutex_);
        static NodeProfile* const profile = NodeProfile::get("GPU time");
        if (profile) {
            profile_nodes(
                *profile, nodes, [&](const Tensor& n) { run(n, work, work_size, s); }, s);
            TESSERA_CUDA_CHECK(cudaGetLastError());
            return;
        }
        if (graphs_enabled() && nodes.size() > 1) {
            launch_signature(nodes, key_);
            key_.push_back(reinterpret_cast<uint64_t>(work));
            if (Replay* r = replay_for(key_)) {
                if (abort && abort()) throw Error("computation aborted", ErrorKind::Aborted);
                if (r->exec || capture(*r, nodes, work, work_size, s)) {
                    TESSERA_CUDA_CHECK(cudaGraphLaunch(r->exec, s));
                    return;
                }
            }
        }
        size_t next_check = 16;
        for (size_t i = 0; i < nodes.size();) {
            if (abort && i >= next_check) {
                next_check = i + 16;
                if (abort()) {
                    synchronize();
                    throw Error("computation aborted", ErrorKind::Aborted);
                }
            }
            i += run_at(nodes, i, work, work_size, s);
        }
        TESSERA_CUDA_CHECK(cudaGetLastError());
    }

    double copy_bandwidth_gbs() override {
        cudaStream_t s = stream();
        const size_t n = size_t{1} << 30;
        void *src = nullptr, *dst = nullptr;
        if (cudaMalloc(&src, n) != cudaSuccess || cudaMalloc(&dst, n) != cudaSuccess) {
            cudaGetLastError();
            cudaFree(src);
            return 0.0;
        }
        cudaEvent_t e0, e1;
        TESSERA_CUDA_CHECK(cudaEventCreate(&e0));
        TESSERA_CUDA_CHECK(cudaEventCreate(&e1));
        std::vector<double> gbs;
        for (int i = 0; i < 6; ++i) {  // the first copy warms up
            TESSERA_CUDA_CHECK(cudaEventRecord(e0, s));
            TESSERA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, s));
            TESSERA_CUDA_CHECK(cudaEventRecord(e1, s));
            TESSERA_CUDA_CHECK(cudaEventSynchronize(e1));
            float ms = 0;
            TESSERA_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
            if (i > 0 && ms > 0) gbs.push_back(2.0 * static_cast<double>(n) / (ms * 1e-3) / 1e9);
        }
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
        cudaFree(src);
        cudaFree(dst);
        if (gbs.empty()) return 0.0;
        std::sort(gbs.begin(), gbs.end());
        return gbs[gbs.size() / 2];
    }

    void synchronize() override {
        if (!stream_) return;
        TESSERA_CUDA_CHECK(cudaSetDevice(device_));
        TESSERA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }

private:
    cudaStream_t stream() {
        std::call_once(stream_once_, [this] {
            TESSERA_CUDA_CHECK(cudaSetDevice(device_));
            TESSERA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        });
        TESSERA_CUDA_CHECK(cudaSetDevice(device_));
        return stream_;
    }

    // Whether the CUDA backend keeps this weight as split rows: product weights (kFlagProductWeight)
    // of Q4_0 and Q8_0 whose rows are a multiple of 256 long, whole and contiguous
    // (TESSERA_CUDA_SPLIT_ROWS=0: never).
    static bool wants_split_rows(const Tensor& t) {
        static const bool on = [] {
            const char* e = std::getenv("TESSERA_CUDA_SPLIT_ROWS");
            return !(e && std::strcmp(e, "0") == 0);
        }();
        return on && (t.flags & kFlagProductWeight) && t.buffer && t.buffer->usage() == BufferUsage::Weights &&
               !t.view_src && t.is_contiguous() && split_rows_fit(t.type, t.ne[0]) &&
               reinterpret_cast<uintptr_t>(t.data) % 16 == 0;
    }

    // A whole weight in the file's layout to split rows, through a staging area of at most
    // 64 MiB of rows; false (nothing done) where the weight stays in the file's layout.
    bool upload_split(Tensor& t, const void* src, cudaStream_t s) {
        if (!wants_split_rows(t)) return false;
        const size_t row_bytes = t.nb[1];
        const int64_t rows = t.n_rows();
        const int64_t chunk = std::clamp<int64_t>(static_cast<int64_t>((size_t{64} << 20) / row_bytes), 1, rows);
        void* stage = nullptr;
        if (cudaMallocAsync(&stage, static_cast<size_t>(chunk) * row_bytes, s) != cudaSuccess) {
            cudaGetLastError();
            return false;  // no room to stage: the file's layout, copied in place
        }
        for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
            const int64_t n = std::min(chunk, rows - r0);
            TESSERA_CUDA_CHECK(cudaMemcpyAsync(stage, static_cast<const char*>(src) + r0 * row_bytes,
                                               static_cast<size_t>(n) * row_bytes, cudaMemcpyHostToDevice, s));
            split_rows(t.type, stage, static_cast<char*>(t.data) + r0 * row_bytes, t.ne[0], n, s);
        }
        TESSERA_CUDA_CHECK(cudaFreeAsync(stage, s));
        TESSERA_CUDA_CHECK(cudaStreamSynchronize(s));
        TESSERA_CUDA_CHECK(cudaGetLastError());
        t.flags |= kFlagDeviceLayout;
        return true;
    }

    // Runs nodes[i], or nodes[i] and the nodes after it that one launch or fused kernels cover
    // (fusion.h), and returns how many nodes ran.
    static size_t run_at(std::span<Tensor* const> nodes, size_t i, void* work, size_t work_size, cudaStream_t s) {
        const StepScratch scratch{work, work_size, s};
        if (const size_t n = run_fused(nodes, i, scratch)) return n;
        run(*nodes[i], work, work_size, s);
        return 1;
    }

    static void run(const Tensor& node, void* work, size_t work_size, cudaStream_t s) {
        switch (node.op) {
            case Op::GetRows:
                op_get_rows(node, s);
                break;
            case Op::Add:
            case Op::Mul:
                op_binary(node, s);
                break;
            case Op::Scale:
            case Op::Silu:
            case Op::Gelu:
            case Op::GeluErf:
            case Op::Tanh:
                op_unary(node, s);
                break;
            case Op::Swiglu:
            case Op::Geglu:
                op_gate(node, s);
                break;
            case Op::RmsNorm:
            case Op::Norm:
                op_norm(node, s);
                break;
            case Op::SoftMax:
                op_soft_max(node, s);
                break;
            case Op::Rope:
                op_rope(node, s);
                break;
            case Op::Concat:
                op_concat(node, s);
                break;
            case Op::Argmax:
                op_argmax(node, s);
                break;
            case Op::Cont:
            case Op::Cpy:
                op_copy(node, s);
                break;
            case Op::SetRows:
                op_set_rows(node, s);
                break;
            case Op::FlashAttn:
                op_flash_attn(node, work, s);
                break;
            case Op::MulMat:
                mul_mat_node(node, work, work_size, s);
                break;
            default:
                throw Error(std::string("CUDA backend: no kernel for ") + op_name(node.op), ErrorKind::Internal);
        }
    }

    // A product over dims 2 and 3: a broadcast over b, one 2-D product per slice.
    static void mul_mat_node(const Tensor& node, void* work, size_t work_size, cudaStream_t s) {
        const Tensor& a = *node.src[0];
        const Tensor& b = *node.src[1];
        const int64_t r2 = b.ne[2] / a.ne[2], r3 = b.ne[3] / a.ne[3];
        for (int64_t i3 = 0; i3 < b.ne[3]; ++i3)
            for (int64_t i2 = 0; i2 < b.ne[2]; ++i2) {
                const char* ap = static_cast<const char*>(a.data) + (i2 / r2) * a.nb[2] + (i3 / r3) * a.nb[3];
                const char* bp = static_cast<const char*>(b.data) + i2 * b.nb[2] + i3 * b.nb[3];
                char* yp = static_cast<char*>(node.data) + i2 * node.nb[2] + i3 * node.nb[3];
                mul_mat(a.type, split_rows_of(a), ap, a.nb[1], reinterpret_cast<const float*>(bp),
                        b.nb[1] / sizeof(float), reinterpret_cast<float*>(yp), node.nb[1] / sizeof(float), a.ne[0],
                        a.ne[1], b.ne[1], work, work_size, s);
            }
    }

    // ---- CUDA graphs: a segment seen again with the same launches (every decoding step of one
    // shape) is captured once and then replayed as one graph launch, which spares the per-kernel
    // launch cost. A segment seen once runs directly: prompt shapes rarely repeat.

    struct Replay {
        std::vector<uint64_t> key;
        cudaGraphExec_t exec = nullptr;
        uint64_t last_used = 0;
        bool failed = false;  // capture failed: run this segment directly
    };
    static constexpr size_t kReplays = 8;  // keys remembered: the shapes of a context or two

    static bool graphs_enabled() {
        static const bool on = [] {
            const char* e = std::getenv("TESSERA_CUDA_GRAPHS");
            return !(e && std::strcmp(e, "0") == 0);
        }();
        return on;
    }

    // The entry of a segment seen before, or nullptr after remembering it (evicting the entry
    // used longest ago).
    Replay* replay_for(const std::vector<uint64_t>& key) {
        ++clock_;
        for (Replay& r : replays_)
            if (r.key == key) {
                r.last_used = clock_;
                return r.failed ? nullptr : &r;
            }
        if (replays_.size() < kReplays) replays_.emplace_back();
        Replay& r = *std::min_element(replays_.begin(), replays_.end(),
                                      [](const Replay& a, const Replay& b) { return a.last_used < b.last_used; });
        if (r.exec) cudaGraphExecDestroy(r.exec);
        r = Replay{key, nullptr, clock_, false};
        return nullptr;
    }

    // Captures the segment's launches into r.exec; false (and the segment marked to run
    // directly from now on) where capture is refused.
    bool capture(Replay& r, std::span<Tensor* const> nodes, void* work, size_t work_size, cudaStream_t s) {
        TESSERA_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
        cudaGraph_t graph = nullptr;
        try {
            for (size_t i = 0; i < nodes.size();) i += run_at(nodes, i, work, work_size, s);
        } catch (const Error&) {  // a launch refused under capture: run it directly
            cudaStreamEndCapture(s, &graph);
            if (graph) cudaGraphDestroy(graph);
            cudaGetLastError();
            r.failed = true;
            return false;
        }
        cudaError_t err = cudaStreamEndCapture(s, &graph);
        if (err == cudaSuccess) err = cudaGraphInstantiate(&r.exec, graph, 0);
        if (graph) cudaGraphDestroy(graph);
        if (err != cudaSuccess) {
            cudaGetLastError();
            r.exec = nullptr;
            r.failed = true;
            return false;
        }
        return true;
    }

    int device_;
    std::string name_;
    std::once_flag stream_once_;
    cudaStream_t stream_ = nullptr;
    std::mutex compute_mutex_;
    // Streamed weights: their own stream, and an event per batch until computation waits for it.
    std::once_flag copy_once_;
    cudaStream_t copy_stream_ = nullptr;
    std::mutex upload_mutex_;
    std::map<uint64_t, cudaEvent_t> uploads_;
    uint64_t last_ticket_ = 0;
    std::vector<Replay> replays_;
    std::vector<uint64_t> key_;
    uint64_t clock_ = 0;
};

std::string gib(size_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
    return buf;
}

}  // namespace

void register_cuda_backends() {
    static std::once_flag once;
    std::call_once(once, [] {
        const int n = probe().count;
        for (int d = 0; d < n; ++d)
            register_backend(BackendFactory{"CUDA" + std::to_string(d), [] { return true; },
                                            [d] { return std::make_unique<CudaBackend>(d); }});
    });
}

std::vector<std::string> describe_devices() {
    std::vector<std::string> out;
    for (int d = 0; d < probe().count; ++d) {
        cudaDeviceProp p{};
        if (cudaGetDeviceProperties(&p, d) != cudaSuccess) {
            cudaGetLastError();
            continue;
        }
        std::string line = "CUDA" + std::to_string(d) + ": " + p.name + ", " + gib(p.totalGlobalMem);
        size_t free = 0, total = 0;
        if (cudaSetDevice(d) == cudaSuccess && cudaMemGetInfo(&free, &total) == cudaSuccess)
            line += " (" + gib(free) + " free)";
        else
            cudaGetLastError();
        line += ", compute " + std::to_string(p.major) + "." + std::to_string(p.minor);
        out.push_back(line);
    }
    return out;
}

std::string unavailable_reason() { return probe().reason; }

}  // namespace tessera::cuda
