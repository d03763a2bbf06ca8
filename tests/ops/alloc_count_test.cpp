// Evaluating an already planned graph allocates nothing: every operator new is counted.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "backends/cpu/cpu_backend.h"
#include "tensor/scheduler.h"

namespace {
std::atomic<long> g_allocations{0};
}

void* operator new(std::size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

using namespace tessera;

TEST_CASE("the second evaluation of a graph allocates nothing") {
    cpu::CpuBackend cpu("CPU");
    cpu.set_threads(2);
    Graph g;
    Tensor* w = g.new_tensor(DType::Q8_0, {64, 48}, "w");
    Tensor* kc = g.new_tensor(DType::F16, {64, 16}, "k_cache");
    Tensor* ws[] = {w, kc};
    auto buf = allocate_tensors(cpu, ws, BufferUsage::Weights);
    std::memset(w->data, 0, w->n_bytes());
    std::memset(kc->data, 0, kc->n_bytes());
    Tensor* x = g.input(DType::F32, {64, 4}, "x");
    Tensor* pos = g.input(DType::I32, {4}, "pos");
    Tensor* h = g.rms_norm(x, 1e-5f);
    Tensor* k = g.set_rows(kc, h, pos);
    Tensor* q = g.reshape(h, {64, 4, 1});
    Tensor* kv = g.reshape(k, {64, 16, 1});
    Tensor* att = g.flash_attn(q, kv, kv, nullptr, 0.125f);
    Tensor* o = g.mul_mat(w, g.reshape(att, {64, 4}));
    g.mark_output(g.argmax(o));

    Scheduler sched({&cpu});
    sched.plan(g);
    for (int i = 0; i < 4; ++i) static_cast<int32_t*>(pos->data)[i] = i;
    for (int i = 0; i < 256; ++i) static_cast<float*>(x->data)[i] = static_cast<float>(i % 7);
    sched.compute(g);  // the first run may warm up the thread team
    long before = g_allocations.load();
    sched.compute(g);
    sched.compute(g);
    CHECK(g_allocations.load() - before == 0);
}
