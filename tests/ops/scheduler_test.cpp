// The memory planner and the scheduler: liveness reuse, segments, seam copies made once,
// fallback for unsupported ops, and results equal to a single-backend run.
#include <doctest/doctest.h>

#include <random>

#include "backends/cpu/cpu_backend.h"
#include "tensor/alloc.h"
#include "tensor/error.h"
#include "tensor/scheduler.h"

using namespace tessera;

TEST_CASE("planner: tensors with disjoint lifetimes share memory, overlapping ones never") {
    std::vector<Lifetime> l = {{100, 0, 1}, {100, 1, 2}, {100, 2, 3}, {100, 3, 4}};
    size_t peak = plan_memory(l, 64);
    CHECK(peak == 256);  // two live at a time, each rounded up to 128
    CHECK(l[0].offset == l[2].offset);

    std::mt19937 rng(7);
    for (int trial = 0; trial < 200; ++trial) {
        std::vector<Lifetime> items;
        for (int i = 0; i < 40; ++i) {
            int first = static_cast<int>(rng() % 30);
            items.push_back({1 + rng() % 5000, first, first + static_cast<int>(rng() % 10)});
        }
        size_t p = plan_memory(items, 64);
        size_t live_max = 0;
        for (int step = 0; step < 40; ++step) {
            size_t live = 0;
            for (const Lifetime& a : items)
                if (a.first <= step && step <= a.last) live += (a.size + 63) / 64 * 64;
            live_max = std::max(live_max, live);
        }
        CHECK(p >= live_max);
        for (size_t i = 0; i < items.size(); ++i) {
            const Lifetime& a = items[i];
            CHECK(a.offset % 64 == 0);
            CHECK(a.offset + a.size <= p);
            for (size_t j = i + 1; j < items.size(); ++j) {
                const Lifetime& b = items[j];
                bool time = a.first <= b.last && b.first <= a.last;
                bool space = a.offset < b.offset + b.size && b.offset < a.offset + a.size;
                CHECK_FALSE((time && space));
            }
        }
    }
}

namespace {

struct Net {
    Graph g;
    Tensor *w1, *w2, *x, *out;
    std::unique_ptr<Buffer> weights;
};

// x -> rms_norm -> mul_mat w1 -> silu -> mul_mat w2 -> add x -> scale: a chain whose
// ops alternate between what the partial backend supports and what it does not.
void build_net(Net& n, Backend& weights_on) {
    n.w1 = n.g.new_tensor(DType::F32, {16, 24}, "w1");
    n.w2 = n.g.new_tensor(DType::F32, {24, 16}, "w2");
    Tensor* ws[] = {n.w1, n.w2};
    n.weights = allocate_tensors(weights_on, ws, BufferUsage::Weights);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1, 1);
    for (Tensor* w : ws)
        for (int64_t i = 0; i < w->n_elements(); ++i) static_cast<float*>(w->data)[i] = u(rng);
    n.x = n.g.input(DType::F32, {16, 5}, "x");
    Tensor* h = n.g.rms_norm(n.x, 1e-5f);
    h = n.g.mul_mat(n.w1, h);
    h = n.g.silu(h);
    h = n.g.mul_mat(n.w2, h);
    Tensor* r = n.g.add(h, n.x);
    Tensor* s = n.g.scale(r, 0.5f);
    n.out = n.g.add(s, h);  // h is read twice after the seam
    n.g.mark_output(n.out);
}

void set_input(Tensor* x) {
    for (int64_t i = 0; i < x->n_elements(); ++i) static_cast<float*>(x->data)[i] = 0.01f * static_cast<float>(i % 17) - 0.05f;
}

}  // namespace

TEST_CASE("scheduler: segments and seam copies with a partial second backend") {
    cpu::CpuBackend cpu("CPU");
    cpu::CpuBackend partial("partial", [](const Tensor& n) { return n.op == Op::MulMat || n.op == Op::Add; });

    Net ref;
    build_net(ref, cpu);
    Scheduler single({&cpu});
    single.plan(ref.g);
    set_input(ref.x);
    single.compute(ref.g);
    CHECK(single.segments().size() == 1);
    CHECK(single.n_copies() == 0);

    Net net;
    build_net(net, partial);
    Scheduler split({&partial, &cpu});
    split.plan(net.g);
    set_input(net.x);
    split.compute(net.g);

    // rms_norm (CPU) | mul_mat (partial) | silu (CPU) | mul_mat, add (partial) | scale, add
    // (CPU: the last add has no weights, and its newest input, the scaled sum, is there).
    const auto& segs = split.segments();
    REQUIRE(segs.size() == 5);
    CHECK(segs[0].backend == 1);
    CHECK(segs[1].backend == 0);
    CHECK(segs[2].backend == 1);
    CHECK(segs[3].backend == 0);
    CHECK(segs[3].nodes.size() == 2);
    CHECK(segs[4].backend == 1);
    CHECK(segs[4].nodes.size() == 2);
    // Each tensor crossing a seam is copied once: the norm into partial, the first product
    // back, silu and the input x into partial, the residual sum and the second product back.
    CHECK(segs[0].copies.size() == 0);
    CHECK(segs[1].copies.size() == 1);
    CHECK(segs[2].copies.size() == 1);
    CHECK(segs[3].copies.size() == 2);
    CHECK(segs[4].copies.size() == 2);
    CHECK(split.n_copies() == 6);

    for (int64_t i = 0; i < ref.out->n_elements(); ++i)
        CHECK(static_cast<float*>(net.out->data)[i] == doctest::Approx(static_cast<float*>(ref.out->data)[i]).epsilon(1e-6));
}

TEST_CASE("scheduler: a tensor read by two nodes across a seam is copied once") {
    cpu::CpuBackend cpu("CPU");
    cpu::CpuBackend partial("partial", [](const Tensor& n) { return n.op == Op::Add || n.op == Op::Mul; });
    Graph g;
    Tensor* w = g.new_tensor(DType::F32, {8}, "w");
    Tensor* ws[] = {w};
    auto buf = allocate_tensors(partial, ws, BufferUsage::Weights);
    for (int i = 0; i < 8; ++i) static_cast<float*>(w->data)[i] = 1.0f + static_cast<float>(i);
    Tensor* x = g.input(DType::F32, {8, 2}, "x");
    Tensor* s = g.silu(x);           // CPU
    Tensor* a = g.add(s, w);         // partial (weights there)
    Tensor* m = g.mul(s, w);         // partial, reads s again: no second copy
    Tensor* out = g.add(a, m);
    g.mark_output(out);
    Scheduler sched({&partial, &cpu});
    sched.plan(g);  // inputs get their memory from the plan
    for (int i = 0; i < 16; ++i) static_cast<float*>(x->data)[i] = 0.1f * static_cast<float>(i);
    sched.compute(g);
    CHECK(sched.n_copies() == 1);
    for (int i = 0; i < 16; ++i) {
        float xv = 0.1f * static_cast<float>(i), sv = xv / (1.0f + std::exp(-xv)), wv = 1.0f + static_cast<float>(i % 8);
        CHECK(static_cast<float*>(out->data)[i] == doctest::Approx((sv + wv) + sv * wv).epsilon(1e-6));
    }
}

TEST_CASE("scheduler: the compute buffer is reserved once and reused by smaller graphs") {
    cpu::CpuBackend cpu("CPU");
    Scheduler sched({&cpu});
    auto run = [&](int64_t tokens) {
        Graph g;
        Tensor* x = g.input(DType::F32, {64, tokens}, "x");
        Tensor* h = g.silu(g.rms_norm(x, 1e-5f));
        g.mark_output(g.scale(h, 2.0f));
        sched.plan(g);
        return std::make_pair(sched.planned_bytes(0), sched.reserved_bytes(0));
    };
    auto big = run(32);
    auto small = run(4);
    CHECK(small.first < big.first);
    CHECK(small.second == big.second);  // no re-allocation for a smaller graph
    auto bigger = run(64);
    CHECK(bigger.second > big.second);
    // Liveness reuse: the chain needs at most three live tensors at once, not four.
    CHECK(big.first < 4 * 64 * 32 * sizeof(float));
}

TEST_CASE("scheduler: clear errors") {
    cpu::CpuBackend cpu("CPU");
    Graph g;
    Tensor* orphan = g.new_tensor(DType::F32, {4}, "orphan");  // no data, not an input
    g.mark_output(g.silu(orphan));
    Scheduler sched({&cpu});
    CHECK_THROWS_WITH_AS(sched.plan(g), doctest::Contains("'orphan'"), Error);
    Graph h;
    Tensor* a = h.input(DType::F32, {4, 3}, "a");
    Tensor* b = h.input(DType::F32, {5, 3}, "b");
    CHECK_THROWS_WITH_AS(h.mul_mat(a, b), doctest::Contains("mul_mat: a [4, 3] F32 and b [5, 3] F32"), Error);
    CHECK_THROWS_WITH_AS(h.add(a, b), doctest::Contains("add: a [4, 3] F32 and b [5, 3] F32"), Error);
    CHECK_THROWS_WITH_AS(h.reshape(a, {5, 2}), doctest::Contains("reshape"), Error);
}
