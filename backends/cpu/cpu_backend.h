// The CPU backend: host memory, every op, one OpenMP parallel region per segment with
// work split by rows and a barrier between dependent nodes.
#pragma once

#include <functional>
#include <string>

#include "tensor/backend.h"

namespace tessera::cpu {

class CpuBackend : public Backend {
public:
    // `filter`, when set, narrows what this instance claims to support (tests use it to
    // make a second backend and exercise the scheduler's seams without a GPU).
    explicit CpuBackend(std::string name = "CPU", std::function<bool(const Tensor&)> filter = {});

    const std::string& name() const override { return name_; }
    bool host_memory() const override { return true; }
    DeviceMemory memory() const override;
    std::unique_ptr<Buffer> alloc_buffer(size_t size, BufferUsage usage) override;
    void set_page_locked_source(Backend* device) override { page_locked_ = device; }
    void upload(Tensor* t, const void* src, size_t offset, size_t n) override;
    void download(const Tensor* t, void* dst, size_t offset, size_t n) override;
    bool supports(const Tensor& node) const override;
    size_t work_size(std::span<Tensor* const> nodes, int n_threads) const override;
    void compute(std::span<Tensor* const> nodes, void* work, size_t work_size, int n_threads,
                 const AbortCheck& abort) override;
    // The thread count used when a call passes 0.
    void set_threads(int n);
    int threads() const { return n_threads_; }

private:
    std::string name_;
    std::function<bool(const Tensor&)> filter_;
    int n_threads_;
    Backend* page_locked_ = nullptr;  // compute and cache buffers from its page-locked memory
};

// Adds the CPU backend to the registry (tensor/backend.h).
void register_cpu_backend();

}  // namespace tessera::cpu
