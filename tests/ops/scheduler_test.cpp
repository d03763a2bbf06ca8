// The memory planner and the scheduler: liveness reuse, segments, seam copies made once,
// fallback for unsupported ops, and results equal to a single-backend run.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "tensor/alloc.h"
#include "tensor/error.h"
#include "tensor/fp16.h"
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
    for (int64_t i = 0; i < x->n_elements(); ++i)
        static_cast<float*>(x->data)[i] = 0.01f * static_cast<float>(i % 17) - 0.05f;
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
        CHECK(static_cast<float*>(net.out->data)[i] ==
              doctest::Approx(static_cast<float*>(ref.out->data)[i]).epsilon(1e-6));
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
    Tensor* s = g.silu(x);    // CPU
    Tensor* a = g.add(s, w);  // partial (weights there)
    Tensor* m = g.mul(s, w);  // partial, reads s again: no second copy
    Tensor* out = g.add(a, m);
    g.mark_output(out);
    Scheduler sched({&partial, &cpu});
    sched.plan(g);  // inputs get their memory from the plan
    for (int i = 0; i < 16; ++i) static_cast<float*>(x->data)[i] = 0.1f * static_cast<float>(i);
    sched.compute(g);
    CHECK(sched.n_copies() == 1);
    for (int i = 0; i < 16; ++i) {
        float xv = 0.1f * static_cast<float>(i), sv = xv / (1.0f + std::exp(-xv)),
              wv = 1.0f + static_cast<float>(i % 8);
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

// A device that is host memory in disguise (so its results can be checked), logging the
// scheduler's calls. Its asynchronous copies land at once, when started: a streamed weight
// whose memory the plan shared with a tensor still in use would then be overwritten by it, or
// overwrite it, and the result would differ from the CPU's.
class LoggingDevice : public cpu::CpuBackend {
public:
    LoggingDevice() : CpuBackend("device", [](const Tensor& n) { return n.op != Op::Silu; }) {}
    bool host_memory() const override { return false; }
    uint64_t upload_async(std::span<const HostCopy> copies) override {
        std::string line = "copy";
        for (const HostCopy& c : copies) {
            upload(c.dst, c.src, 0, c.n);
            line += std::string(" ") + c.dst->name;
        }
        log.push_back(line);
        return ++tickets;
    }
    void wait_uploads(uint64_t ticket) override { log.push_back("wait " + std::to_string(ticket)); }
    void compute(std::span<Tensor* const> nodes, void* work, size_t work_size, int n_threads,
                 const AbortCheck& abort) override {
        log.push_back(std::string("compute ") + nodes.front()->name);
        CpuBackend::compute(nodes, work, work_size, n_threads, abort);
    }
    std::vector<std::string> log;
    uint64_t tickets = 0;
};

// Plans `g`, fills its input (planned memory) and runs it.
template <class Fill>
void plan_fill_run(Scheduler& s, Graph& g, Tensor* input, Fill fill) {
    s.plan(g);
    fill(input);
    s.compute(g);
}

TEST_CASE("scheduler: streamed weights are copied a segment of their device ahead") {
    // Two layers of mul_mat -> silu -> mul_mat, weights in host memory, silu only on the CPU.
    auto build = [](Graph& g, Backend& host, std::vector<std::unique_ptr<Buffer>>& bufs) {
        std::mt19937 rng(7);
        std::uniform_real_distribution<float> u(-0.5f, 0.5f);
        Tensor* x = g.input(DType::F32, {16, 6}, "x");
        Tensor* h = x;
        for (int l = 0; l < 2; ++l) {
            Tensor* w1 = g.new_tensor(DType::F32, {16, 16}, ("w1." + std::to_string(l)).c_str());
            Tensor* w2 = g.new_tensor(DType::F32, {16, 16}, ("w2." + std::to_string(l)).c_str());
            Tensor* ws[] = {w1, w2};
            bufs.push_back(allocate_tensors(host, ws, BufferUsage::Weights));
            for (Tensor* w : ws)
                for (int i = 0; i < 256; ++i) static_cast<float*>(w->data)[i] = u(rng);
            Tensor* up = g.mul_mat(w1, h);
            std::snprintf(up->name, sizeof up->name, "up.%d", l);
            Tensor* act = g.silu(up);
            h = g.mul_mat(w2, act);
            std::snprintf(h->name, sizeof h->name, "down.%d", l);
        }
        g.mark_output(h);
        return std::make_pair(x, h);
    };
    auto fill = [](Tensor* x) {
        for (int i = 0; i < 96; ++i) static_cast<float*>(x->data)[i] = 0.05f * static_cast<float>(i % 17) - 0.4f;
    };
    cpu::CpuBackend cpu("CPU");
    std::vector<std::unique_ptr<Buffer>> bufs;
    Graph ref;
    auto [rx, rout] = build(ref, cpu, bufs);
    Scheduler single({&cpu});
    plan_fill_run(single, ref, rx, fill);

    LoggingDevice dev;
    Graph g;
    auto [x, out] = build(g, cpu, bufs);
    Scheduler sched({&dev, &cpu});
    sched.set_offload(&dev, 4);
    plan_fill_run(sched, g, x, fill);
    // device: up.0 | CPU: silu | device: down.0, up.1 | CPU: silu | device: down.1
    const auto& segs = sched.segments();
    REQUIRE(segs.size() == 5);
    CHECK(segs[0].prefetch == std::vector<int>{0, 2});
    CHECK(segs[2].prefetch == std::vector<int>{4});
    const std::vector<std::string> expected = {"copy w1.0 (copy)", "copy w2.0 (copy) w1.1 (copy)",
                                               "wait 1",           "compute up.0",
                                               "copy w2.1 (copy)", "wait 2",
                                               "compute down.0",   "wait 3",
                                               "compute down.1"};
    CHECK(dev.log == expected);
    for (int i = 0; i < 96; ++i)
        CHECK(static_cast<float*>(out->data)[i] == doctest::Approx(static_cast<float*>(rout->data)[i]).epsilon(1e-6));

    // Below the batch size asked for, nothing is streamed: the products run on the CPU.
    sched.set_offload(&dev, 7);
    dev.log.clear();
    Graph g2;
    auto [x2, out2] = build(g2, cpu, bufs);
    plan_fill_run(sched, g2, x2, fill);
    CHECK(dev.log.empty());
    CHECK(sched.segments().size() == 1);
    for (int i = 0; i < 96; ++i)
        CHECK(static_cast<float*>(out2->data)[i] == doctest::Approx(static_cast<float*>(rout->data)[i]).epsilon(1e-6));
}

TEST_CASE("scheduler: a prompt's attention over a host KV cache goes to the device with the cells in use") {
    cpu::CpuBackend cpu("CPU");
    auto build = [&](Graph& g, std::vector<std::unique_ptr<Buffer>>& bufs, int64_t n) {
        // A cache of 32 cells, 2 KV heads of 8; the first n cells in use, read through views.
        Tensor* kc = g.new_tensor(DType::F16, {8, 32, 2}, "k_cache");
        Tensor* vc = g.new_tensor(DType::F16, {8, 32, 2}, "v_cache");
        Tensor* caches[] = {kc, vc};
        bufs.push_back(allocate_tensors(cpu, caches, BufferUsage::Cache));
        for (Tensor* c : caches)
            for (int64_t i = 0; i < c->n_elements(); ++i)
                static_cast<uint16_t*>(c->data)[i] = fp32_to_fp16(0.03f * static_cast<float>(i % 29) - 0.4f);
        const int64_t ne[] = {8, n, 2};
        const size_t nb[] = {kc->nb[0], kc->nb[1], kc->nb[2]};
        Tensor* k = g.view(kc, ne, nb, 0);
        Tensor* v = g.view(vc, ne, nb, 0);
        Tensor* q = g.input(DType::F32, {8, n, 4, 1}, "q");
        Tensor* a = g.flash_attn(q, k, v, nullptr, 0.35f);
        g.mark_output(a);
        return std::make_pair(q, a);
    };
    auto fill = [](Tensor* q) {
        for (int64_t i = 0; i < q->n_elements(); ++i)
            static_cast<float*>(q->data)[i] = 0.02f * static_cast<float>(i % 37) - 0.3f;
    };
    for (int64_t n : {3, 12}) {
        CAPTURE(n);
        std::vector<std::unique_ptr<Buffer>> bufs;
        Graph ref;
        auto [rq, ra] = build(ref, bufs, n);
        Scheduler single({&cpu});
        plan_fill_run(single, ref, rq, fill);

        LoggingDevice dev;
        Graph g;
        auto [q, a] = build(g, bufs, n);
        Scheduler sched({&dev, &cpu});
        sched.set_offload(&dev, 8);
        plan_fill_run(sched, g, q, fill);
        REQUIRE(sched.segments().size() == 1);
        // 12 tokens: on the device, the cache's views copied in (with the queries); 3: on the CPU.
        CHECK(sched.segments()[0].backend == (n >= 8 ? 0 : 1));
        CHECK(sched.n_copies() == (n >= 8 ? 3 : 0));
        for (int64_t i = 0; i < a->n_elements(); ++i)
            CHECK(static_cast<float*>(a->data)[i] == doctest::Approx(static_cast<float*>(ra->data)[i]).epsilon(1e-5));
    }
}

TEST_CASE("a host backend takes its compute and cache buffers from a device's page-locked memory when told") {
    // Host memory that a device lends to `host`'s backend.
    class Lent : public Buffer {
    public:
        Lent(Backend* host, size_t size, BufferUsage usage) : Buffer(host, usage), bytes_(size) {}
        void* base() override { return bytes_.data(); }
        size_t size() const override { return bytes_.size(); }

    private:
        std::vector<uint8_t> bytes_;
    };
    // A device that lends such memory, counting what it was asked for.
    class Lender : public cpu::CpuBackend {
    public:
        Lender() : CpuBackend("lender") {}
        bool host_memory() const override { return false; }
        std::unique_ptr<Buffer> alloc_pinned_host(Backend& host, size_t size, BufferUsage usage) override {
            asked.push_back(usage);
            if (refuse) return nullptr;
            return std::make_unique<Lent>(&host, size, usage);
        }
        std::vector<BufferUsage> asked;
        bool refuse = false;
    };
    cpu::CpuBackend host("CPU");
    Lender lender;
    host.set_page_locked_source(&lender);
    auto compute = host.alloc_buffer(1024, BufferUsage::Compute);
    auto cache = host.alloc_buffer(1024, BufferUsage::Cache);
    auto weights = host.alloc_buffer(1024, BufferUsage::Weights);  // weights: the loader decides
    CHECK(lender.asked == std::vector<BufferUsage>{BufferUsage::Compute, BufferUsage::Cache});
    CHECK(dynamic_cast<Lent*>(compute.get()) != nullptr);
    CHECK(dynamic_cast<Lent*>(cache.get()) != nullptr);
    CHECK(dynamic_cast<Lent*>(weights.get()) == nullptr);
    for (auto* b : {compute.get(), cache.get(), weights.get()}) {
        CHECK(&b->backend() == &host);
        CHECK(b->size() == 1024);
    }
    // A device that has none: plain memory, still the host's.
    lender.refuse = true;
    auto fallback = host.alloc_buffer(2048, BufferUsage::Compute);
    CHECK(lender.asked.size() == 3);
    CHECK(dynamic_cast<Lent*>(fallback.get()) == nullptr);
    CHECK(&fallback->backend() == &host);
    CHECK(fallback->size() == 2048);
    // Unset: not asked again.
    host.set_page_locked_source(nullptr);
    auto again = host.alloc_buffer(64, BufferUsage::Cache);
    CHECK(lender.asked.size() == 3);
    CHECK(dynamic_cast<Lent*>(again.get()) == nullptr);
}

// A device in host memory (so its results can be checked) that copies from another device of
// its kind directly when `peer` is set, logging which way each crossing went.
class PeerDevice : public cpu::CpuBackend {
public:
    PeerDevice(const std::string& name, bool peer) : CpuBackend(name), peer_(peer) {}
    bool host_memory() const override { return false; }
    bool copy_from_device(Backend& from, const Tensor* src, Tensor* dst, size_t n) override {
        if (!peer_ || !dynamic_cast<PeerDevice*>(&from)) return false;
        std::memcpy(dst->data, src->data, n);
        log.push_back(std::string("peer ") + src->name);
        return true;
    }
    void upload(Tensor* t, const void* src, size_t offset, size_t n) override {
        if (t->buffer == nullptr) log.push_back(std::string("upload ") + t->name);  // a copy, not a weight
        CpuBackend::upload(t, src, offset, n);
    }
    std::vector<std::string> log;

private:
    bool peer_;
};

TEST_CASE("scheduler: layers on two devices, the activations crossing directly or through the host") {
    // x -> [w0 product, silu] on device A -> [w1 product, silu] on device B: each product runs
    // where its weight lives, the silu follows its input.
    auto build = [](Graph& g, Backend& a, Backend& b, std::vector<std::unique_ptr<Buffer>>& bufs) {
        std::mt19937 rng(11);
        std::uniform_real_distribution<float> u(-0.5f, 0.5f);
        Tensor* x = g.input(DType::F32, {16, 3}, "x");
        Tensor* h = x;
        Backend* homes[] = {&a, &b};
        for (int l = 0; l < 2; ++l) {
            Tensor* w = g.new_tensor(DType::F32, {16, 16}, ("w." + std::to_string(l)).c_str());
            bufs.push_back(allocate_tensors(*homes[l], std::span<Tensor* const>(&w, 1), BufferUsage::Weights));
            for (int i = 0; i < 256; ++i) static_cast<float*>(w->data)[i] = u(rng);
            h = g.silu(g.mul_mat(w, h));
            std::snprintf(h->name, sizeof h->name, "act.%d", l);
        }
        g.mark_output(h);
        return std::make_pair(x, h);
    };
    auto fill = [](Tensor* x) {
        for (int i = 0; i < 48; ++i) static_cast<float*>(x->data)[i] = 0.04f * static_cast<float>(i % 13) - 0.3f;
    };
    cpu::CpuBackend cpu("CPU");
    std::vector<std::unique_ptr<Buffer>> bufs;
    Graph ref;
    auto [rx, rout] = build(ref, cpu, cpu, bufs);
    Scheduler single({&cpu});
    plan_fill_run(single, ref, rx, fill);
    for (bool peer : {false, true}) {
        CAPTURE(peer);
        PeerDevice a("A", peer), b("B", peer);
        Graph g;
        auto [x, out] = build(g, a, b, bufs);
        Scheduler sched({&a, &b, &cpu});
        plan_fill_run(sched, g, x, fill);
        // A: product, silu | B: product, silu; the input uploaded to A, act.0 crossing to B.
        const auto& segs = sched.segments();
        REQUIRE(segs.size() == 2);
        CHECK(segs[0].backend == 0);
        CHECK(segs[1].backend == 1);
        REQUIRE(segs[1].copies.size() == 1);
        CHECK(std::string(segs[1].copies[0].src->name) == "act.0");
        const std::vector<std::string> crossing = {peer ? "peer act.0" : "upload act.0 (copy)"};
        CHECK(b.log == crossing);
        std::vector<float> got(48);
        sched.read(out, got.data(), got.size() * sizeof(float));
        for (int i = 0; i < 48; ++i)
            CHECK(got[static_cast<size_t>(i)] == doctest::Approx(static_cast<float*>(rout->data)[i]).epsilon(1e-6));
    }
}
