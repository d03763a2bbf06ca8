// The CPU backend: host buffers, op support, the thread team.
#include "backends/cpu/cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "backends/cpu/ops.h"
#include "tensor/error.h"
#include "tensor/profile.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__linux__)
#include <unistd.h>
#endif

namespace tessera::cpu {

namespace {

constexpr size_t kAlign = 64;

class HostBuffer : public Buffer {
public:
    HostBuffer(Backend* b, size_t size, BufferUsage usage) : Buffer(b, usage), size_(size) {
        size_t rounded = (size + kAlign - 1) / kAlign * kAlign;
        data_ = std::aligned_alloc(kAlign, rounded ? rounded : kAlign);
        if (!data_) throw std::bad_alloc();
    }
    ~HostBuffer() override { std::free(data_); }
    void* base() override { return data_; }
    size_t size() const override { return size_; }

private:
    void* data_;
    size_t size_;
};

int default_threads() {
    unsigned n = std::thread::hardware_concurrency();
    return n ? static_cast<int>(n) : 1;
}

size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// TESSERA_PROFILE=1 (tensor/profile.h): the wall time of every node, from its start on thread
// 0 to the barrier after it (so a node's slowest thread and the barrier count).
NodeProfile* cpu_profile() {
    static NodeProfile* p = NodeProfile::get("CPU time");
    return p;
}

// The bytes a tensor's elements span, [first, last).
struct Span {
    uintptr_t first = 0, last = 0;
    bool overlaps(const Span& o) const { return first < o.last && o.first < last; }
};

Span span_of(const Tensor& t) {
    const auto first = reinterpret_cast<uintptr_t>(t.data);
    if (t.rows_contiguous()) return {first, first + t.n_bytes()};
    size_t end = type_traits(t.type).type_size;
    for (int i = 0; i < kMaxDims; ++i) end += static_cast<size_t>(t.ne[i] - 1) * t.nb[i];
    return {first, first + end};
}

// Which nodes must wait for every thread to finish the nodes before them. Threads run a
// node's rows independently, so a barrier is needed only where a node reads what a node
// since the last barrier wrote, or writes what such a node read or wrote (the memory plan
// reuses memory between tensors whose lives do not overlap). Independent neighbours, such
// as the query, key and value products of one input or a gate and an up projection, then
// run back to back, and a thread that finishes its share of one starts the next.
// The result and the scratch are the calling thread's own (contexts of one model share its
// backends, and may compute at once on different threads); once grown they are reused, so a
// graph's second evaluation allocates nothing. A node that uses the team's shared scratch
// writes and reads all of it.
const std::vector<uint8_t>& plan_barriers(std::span<Tensor* const> nodes, bool every_node, Span shared) {
    thread_local std::vector<uint8_t> wait;
    thread_local std::vector<Span> reads, writes;  // of the nodes since the last barrier
    wait.assign(nodes.size(), every_node ? 1 : 0);
    if (every_node) return wait;
    reads.clear();
    writes.clear();
    for (size_t i = 0; i < nodes.size(); ++i) {
        const Tensor& n = *nodes[i];
        const Span out = span_of(n);
        Span in[kMaxSrc];
        int n_in = 0;
        for (const Tensor* s : n.src)
            if (s && s->data) in[n_in++] = span_of(*s);
        const bool uses_shared = work_shared(n) > 0;
        bool hazard = false;
        for (const Span& w : writes) {
            hazard = hazard || w.overlaps(out) || (uses_shared && w.overlaps(shared));
            for (int k = 0; k < n_in; ++k) hazard = hazard || w.overlaps(in[k]);
        }
        for (const Span& r : reads) hazard = hazard || r.overlaps(out) || (uses_shared && r.overlaps(shared));
        if (hazard) {
            wait[i] = 1;
            reads.clear();
            writes.clear();
        }
        writes.push_back(out);
        if (uses_shared) writes.push_back(shared);
        reads.insert(reads.end(), in, in + n_in);
    }
    return wait;
}

}  // namespace

CpuBackend::CpuBackend(std::string name, std::function<bool(const Tensor&)> filter)
    : name_(std::move(name)), filter_(std::move(filter)), n_threads_(default_threads()) {}

// Free: what the kernel says can be had without swapping (MemAvailable: free pages and the
// page cache it can drop), else the free pages alone.
DeviceMemory CpuBackend::memory() const {
    DeviceMemory m;
#if defined(__linux__)
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) m.total = static_cast<size_t>(pages) * static_cast<size_t>(page);
    if (avail > 0 && page > 0) m.free = static_cast<size_t>(avail) * static_cast<size_t>(page);
    if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
        char line[128];
        unsigned long long kib = 0;
        while (std::fgets(line, sizeof line, f))
            if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
                m.free = static_cast<size_t>(kib) * 1024;
                break;
            }
        std::fclose(f);
    }
#endif
    return m;
}

std::unique_ptr<Buffer> CpuBackend::alloc_buffer(size_t size, BufferUsage usage) {
    if (page_locked_ && usage != BufferUsage::Weights)
        if (auto b = page_locked_->alloc_pinned_host(*this, size, usage)) return b;
    return std::make_unique<HostBuffer>(this, size, usage);
}

void CpuBackend::upload(Tensor* t, const void* src, size_t offset, size_t n) {
    std::memcpy(static_cast<char*>(t->data) + offset, src, n);
}

void CpuBackend::download(const Tensor* t, void* dst, size_t offset, size_t n) {
    std::memcpy(dst, static_cast<const char*>(t->data) + offset, n);
}

bool CpuBackend::supports(const Tensor& node) const {
    // The graph builders only accept what these kernels implement.
    if (node.op == Op::None || node.op == Op::View || node.op == Op::Count) return false;
    return filter_ ? filter_(node) : true;
}

namespace {

// The scratch of a segment: one slice per thread, then one region all threads share.
struct WorkLayout {
    size_t per_thread = 0, shared = 0;
};

WorkLayout work_layout(std::span<Tensor* const> nodes) {
    WorkLayout w;
    for (const Tensor* n : nodes) {
        w.per_thread = std::max(w.per_thread, round_up(work_per_thread(*n)));
        w.shared = std::max(w.shared, round_up(work_shared(*n)));
    }
    return w;
}

}  // namespace

size_t CpuBackend::work_size(std::span<Tensor* const> nodes, int n_threads) const {
    const WorkLayout w = work_layout(nodes);
    return w.per_thread * static_cast<size_t>(n_threads > 0 ? n_threads : n_threads_) + w.shared;
}

void CpuBackend::set_threads(int n) { n_threads_ = n > 0 ? n : default_threads(); }

void CpuBackend::compute(std::span<Tensor* const> nodes, void* work, size_t work_size, int n_threads,
                         const AbortCheck& abort) {
    const int nth = n_threads > 0 ? n_threads : n_threads_;
    const WorkLayout layout = work_layout(nodes);
    const size_t per_thread = layout.per_thread;
    if (per_thread * static_cast<size_t>(nth) + layout.shared > work_size)
        throw Error("CPU backend: the scratch given is smaller than the segment needs");
    char* shared = static_cast<char*>(work) + per_thread * static_cast<size_t>(nth);
    NodeProfile* profile = cpu_profile();
    // With the profile on, every node waits for the one before, so each one's time is its own.
    const auto shared_first = reinterpret_cast<uintptr_t>(shared);
    const std::vector<uint8_t>& wait =
        plan_barriers(nodes, profile != nullptr, Span{shared_first, shared_first + layout.shared});
    // One claims counter per node (for_each_run), zeroed here: the calling thread's, so
    // contexts computing on one backend at once keep theirs apart.
    thread_local std::unique_ptr<std::atomic<int64_t>[]> claims;
    thread_local size_t n_claims = 0;
    if (n_claims < nodes.size()) {
        claims.reset(new std::atomic<int64_t>[nodes.size()]);
        n_claims = nodes.size();
    }
    std::atomic<int64_t>* node_claims = claims.get();  // the team reaches it through this pointer
    for (size_t i = 0; i < nodes.size(); ++i) node_claims[i].store(0, std::memory_order_relaxed);
    // Thread 0 (the calling thread) asks `abort` before a barrier and the whole team reads
    // the answer after it, so every thread leaves at the same node boundary. Asked at most
    // every millisecond or so: the callback may take its time. A kernel that throws (a
    // library's allocation failing) stops the team the same way, and its exception leaves
    // compute() once the team has: an exception escaping the parallel region would end the
    // process.
    std::atomic<bool> stop{false};
    std::exception_ptr failure;
    std::mutex failure_mu;
    auto fail = [&] {
        {
            std::lock_guard<std::mutex> lock(failure_mu);
            if (!failure) failure = std::current_exception();
        }
        stop.store(true, std::memory_order_relaxed);
    };
    std::chrono::steady_clock::time_point last_asked{};  // long ago: the first ask happens
    auto ask = [&] {
        const auto now = std::chrono::steady_clock::now();
        if (now - last_asked < std::chrono::microseconds(500)) return;
        last_asked = now;
        if (abort()) stop.store(true, std::memory_order_relaxed);
    };
    auto run = [&](int ith, int team) {
        ComputeParams p;
        p.ith = ith;
        p.nth = team;
        p.work = static_cast<char*>(work) + per_thread * static_cast<size_t>(ith);
        p.work_per_thread = per_thread;
        p.shared = shared;
        p.shared_size = layout.shared;
        auto t0 = std::chrono::steady_clock::now();
        for (size_t i = 0; i < nodes.size(); ++i) {
            if (i > 0 && (wait[i] || team == 1)) {
                if (abort && ith == 0) ask();
#ifdef _OPENMP
                if (team > 1) {
#pragma omp barrier
                }
#endif
                if (stop.load(std::memory_order_relaxed)) break;
            }
            if (profile && ith == 0 && i > 0) {
                const auto t1 = std::chrono::steady_clock::now();
                profile->add(*nodes[i - 1], std::chrono::duration<double, std::milli>(t1 - t0).count());
                t0 = t1;
            }
            p.claims = &node_claims[i];
            if (stop.load(std::memory_order_relaxed)) continue;  // a thread failed: on to the team's next barrier
            try {
                compute_node(*nodes[i], p);
            } catch (...) {
                fail();
            }
        }
#ifdef _OPENMP
        if (profile && !nodes.empty()) {
#pragma omp barrier
        }
#endif
        if (profile && ith == 0 && !nodes.empty())
            profile->add(*nodes.back(),
                         std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    };
#ifdef _OPENMP
    if (nth > 1) {
#pragma omp parallel num_threads(nth)
        run(omp_get_thread_num(), omp_get_num_threads());
    } else {
        run(0, 1);
    }
#else
    run(0, 1);
#endif
    if (failure) std::rethrow_exception(failure);
    if (stop.load()) throw Error("computation aborted", ErrorKind::Aborted);
}

void register_cpu_backend() {
    register_backend(BackendFactory{"CPU", [] { return true; }, [] { return std::make_unique<CpuBackend>(); }});
}

}  // namespace tessera::cpu
