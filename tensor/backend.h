// The backend interface and registry. A backend owns memory (buffers) on its device and
// computes segments of a graph whose nodes it said it supports. The scheduler (not the
// backend) decides which node runs where; a backend never knows which model it runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace tessera {

class Backend;

enum class BufferUsage { Weights, Compute, Cache };

// A block of device memory. Tensors placed in it point into it (Tensor::data), and
// persistent ones (weights, caches) point back at it (Tensor::buffer).
class Buffer {
public:
    virtual ~Buffer() = default;
    virtual void* base() = 0;
    virtual size_t size() const = 0;
    Backend& backend() const { return *backend_; }
    BufferUsage usage() const { return usage_; }

protected:
    Buffer(Backend* backend, BufferUsage usage) : backend_(backend), usage_(usage) {}

private:
    Backend* backend_;
    BufferUsage usage_;
};

struct DeviceMemory {
    size_t free = 0;
    size_t total = 0;
};

// Asked between nodes whether to stop a computation (a user pressed Ctrl-C, an app
// cancelled a request).
using AbortCheck = std::function<bool()>;

class Backend {
public:
    virtual ~Backend() = default;
    virtual const std::string& name() const = 0;
    // True when the CPU can read and write this backend's memory directly.
    virtual bool host_memory() const = 0;
    // Whether a model's layers go to this backend when no device is named: false for a
    // device that is the CPU in disguise (a software Vulkan driver such as lavapipe), which
    // only an explicit --device uses.
    virtual bool offload_by_default() const { return true; }
    // Whether the device shares the host's memory (an integrated GPU): a layer split found by
    // default keeps to devices alike.
    virtual bool shares_host_memory() const { return false; }
    virtual DeviceMemory memory() const = 0;
    // The largest buffer (and so tensor) this backend can compute with (a Vulkan device's
    // storage-buffer range: 128 MiB on lavapipe).
    virtual size_t max_buffer_bytes() const { return SIZE_MAX; }
    virtual std::unique_ptr<Buffer> alloc_buffer(size_t size, BufferUsage usage) = 0;
    // Copies bytes between host memory and a tensor's memory (offset in bytes from the
    // tensor's data pointer).
    virtual void upload(Tensor* t, const void* src, size_t offset, size_t n) = 0;
    virtual void download(const Tensor* t, void* dst, size_t offset, size_t n) = 0;
    // Whether this backend can compute `node` (its op, types and layout).
    virtual bool supports(const Tensor& node) const = 0;
    // Scratch bytes `compute` needs for these nodes with `n_threads` threads (0: the
    // backend's default); the scheduler provides them.
    virtual size_t work_size(std::span<Tensor* const> nodes, int n_threads) const = 0;
    // Computes nodes in order (a segment: inputs are in this backend's memory). Backends
    // are shared by the contexts of a model, so per-call state comes in as arguments.
    // `abort` (may be empty) is asked on the calling thread between nodes; when it returns
    // true the backend stops at a node boundary and throws Error (ErrorKind::Aborted).
    virtual void compute(std::span<Tensor* const> nodes, void* work, size_t work_size, int n_threads,
                         const AbortCheck& abort) = 0;
    virtual void synchronize() {}
    // Copies n bytes of `src`, a tensor in the memory of another device backend `from`
    // (synchronized), into `dst` in this backend's memory without passing through the host,
    // where the two devices can (CUDA devices, peer to peer); done when the call returns.
    // False: the caller stages the copy through host memory.
    virtual bool copy_from_device(Backend& from, const Tensor* src, Tensor* dst, size_t n) {
        (void)from;
        (void)src;
        (void)dst;
        (void)n;
        return false;
    }

    // Copies beside the computation, for weights streamed to a device for one step. A batch
    // starts once the work submitted so far has finished (its destinations may still be read
    // by it) and runs on a copy queue of its own; computation submitted after
    // wait_uploads(ticket) waits for it. The host memory must stay valid and unchanged until
    // then. Default: plain uploads, done when the call returns.
    struct HostCopy {
        Tensor* dst;
        const void* src;
        size_t n;
    };
    virtual uint64_t upload_async(std::span<const HostCopy> copies) {
        for (const HostCopy& c : copies) upload(c.dst, c.src, 0, c.n);
        return 0;
    }
    virtual void wait_uploads(uint64_t ticket) { (void)ticket; }
    // Host memory this device copies to and from without the CPU (page-locked): weights that
    // the host keeps and prompts stream to the device, and the host's buffers that its copies
    // reach. The buffer belongs to `host` (the CPU backend, which computes on it like any host
    // memory). Null where the device has none.
    virtual std::unique_ptr<Buffer> alloc_pinned_host(Backend& host, size_t size, BufferUsage usage) {
        (void)host;
        (void)size;
        (void)usage;
        return nullptr;
    }
    // For a host backend: take its compute and cache buffers from `device`'s page-locked
    // memory where it has some (the activations and KV cells that cross to and from it then
    // go without staging). Null: plain memory again.
    virtual void set_page_locked_source(Backend* device) { (void)device; }

    // The device's measured copy bandwidth in GB/s (bytes read plus bytes written per second,
    // the median of a few device-to-device copies of a large buffer); 0 where not measured.
    virtual double copy_bandwidth_gbs() { return 0.0; }
};

// Places `tensors` (leaves) one after another in a new buffer of `backend`, setting
// their data and buffer pointers. Each tensor starts at a multiple of `alignment`.
std::unique_ptr<Buffer> allocate_tensors(Backend& backend, std::span<Tensor* const> tensors, BufferUsage usage,
                                         size_t alignment = 64);
// The same in as few buffers as the backend's max_buffer_bytes() allows, in order; a tensor
// larger than that is an error.
std::vector<std::unique_ptr<Buffer>> allocate_tensors_split(Backend& backend, std::span<Tensor* const> tensors,
                                                            BufferUsage usage, size_t alignment = 64);

// The compiled-in backends. Each factory says whether its device is really present, so a
// binary built with a GPU backend still runs on a machine without the driver.
struct BackendFactory {
    std::string name;
    std::function<bool()> available;
    std::function<std::unique_ptr<Backend>()> create;
};

std::vector<BackendFactory>& backend_registry();
void register_backend(BackendFactory factory);
// Creates every available backend, the CPU last.
std::vector<std::unique_ptr<Backend>> create_available_backends();

}  // namespace tessera
