// The CPU backend: host buffers, op support, the thread team.
#include "backends/cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "backends/cpu/ops.h"
#include "tensor/error.h"

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

}  // namespace

CpuBackend::CpuBackend(std::string name, std::function<bool(const Tensor&)> filter)
    : name_(std::move(name)), filter_(std::move(filter)), n_threads_(default_threads()) {}

DeviceMemory CpuBackend::memory() const {
    DeviceMemory m;
#if defined(__linux__)
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) m.total = static_cast<size_t>(pages) * static_cast<size_t>(page);
    if (avail > 0 && page > 0) m.free = static_cast<size_t>(avail) * static_cast<size_t>(page);
#endif
    return m;
}

std::unique_ptr<Buffer> CpuBackend::alloc_buffer(size_t size, BufferUsage usage) {
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

size_t CpuBackend::work_size(std::span<Tensor* const> nodes, int n_threads) const {
    size_t per_thread = 0;
    for (const Tensor* n : nodes) per_thread = std::max(per_thread, round_up(work_per_thread(*n)));
    return per_thread * static_cast<size_t>(n_threads > 0 ? n_threads : n_threads_);
}

void CpuBackend::set_threads(int n) { n_threads_ = n > 0 ? n : default_threads(); }

void CpuBackend::compute(std::span<Tensor* const> nodes, void* work, size_t work_size, int n_threads) {
    const int nth = n_threads > 0 ? n_threads : n_threads_;
    const size_t per_thread = nth > 0 ? work_size / static_cast<size_t>(nth) / kAlign * kAlign : 0;
    auto run = [&](int ith, int team) {
        ComputeParams p;
        p.ith = ith;
        p.nth = team;
        p.work = static_cast<char*>(work) + per_thread * static_cast<size_t>(ith);
        p.work_per_thread = per_thread;
        for (const Tensor* node : nodes) {
            compute_node(*node, p);
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
    };
#ifdef _OPENMP
    if (nth > 1) {
#pragma omp parallel num_threads(nth)
        run(omp_get_thread_num(), omp_get_num_threads());
        return;
    }
#endif
    run(0, 1);
}

void register_cpu_backend() {
    register_backend(BackendFactory{"CPU", [] { return true; }, [] { return std::make_unique<CpuBackend>(); }});
}

}  // namespace tessera::cpu
