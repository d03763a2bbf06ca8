// Backend registry and tensor placement in buffers.
#include "tensor/backend.h"

#include "tensor/error.h"

namespace tessera {

std::unique_ptr<Buffer> allocate_tensors(Backend& backend, std::span<Tensor* const> tensors, BufferUsage usage,
                                         size_t alignment) {
    size_t total = 0;
    for (const Tensor* t : tensors) {
        if (t->view_src) throw Error("allocate_tensors: '" + std::string(t->name) + "' is a view");
        total = (total + alignment - 1) / alignment * alignment + t->n_bytes();
    }
    std::unique_ptr<Buffer> buf = backend.alloc_buffer(total ? total : 1, usage);
    size_t offset = 0;
    for (Tensor* t : tensors) {
        offset = (offset + alignment - 1) / alignment * alignment;
        t->data = static_cast<char*>(buf->base()) + offset;
        t->buffer = buf.get();
        offset += t->n_bytes();
    }
    return buf;
}

std::vector<std::unique_ptr<Buffer>> allocate_tensors_split(Backend& backend, std::span<Tensor* const> tensors,
                                                            BufferUsage usage, size_t alignment) {
    const size_t limit = backend.max_buffer_bytes();
    std::vector<std::unique_ptr<Buffer>> out;
    size_t first = 0, bytes = 0;
    for (size_t i = 0; i <= tensors.size(); ++i) {
        const size_t n = i < tensors.size() ? (tensors[i]->n_bytes() + alignment - 1) / alignment * alignment : 0;
        if (i < tensors.size() && n > limit)
            throw Error("'" + std::string(tensors[i]->name) + "' (" + std::to_string(n >> 20) +
                        " MiB) is larger than " + backend.name() + "'s largest buffer (" + std::to_string(limit >> 20) +
                        " MiB)");
        if (i == tensors.size() || bytes + n > limit) {
            if (i > first)
                out.push_back(allocate_tensors(backend, tensors.subspan(first, i - first), usage, alignment));
            first = i;
            bytes = 0;
        }
        bytes += n;
    }
    return out;
}

std::vector<BackendFactory>& backend_registry() {
    static std::vector<BackendFactory> registry;
    return registry;
}

void register_backend(BackendFactory factory) {
    for (const BackendFactory& f : backend_registry())
        if (f.name == factory.name) return;
    backend_registry().push_back(std::move(factory));
}

std::vector<std::unique_ptr<Backend>> create_available_backends() {
    std::vector<std::unique_ptr<Backend>> out;
    std::unique_ptr<Backend> cpu;
    for (const BackendFactory& f : backend_registry()) {
        if (!f.available()) continue;
        auto b = f.create();
        if (f.name == "CPU")
            cpu = std::move(b);
        else
            out.push_back(std::move(b));
    }
    if (cpu) out.push_back(std::move(cpu));
    return out;
}

}  // namespace tessera
