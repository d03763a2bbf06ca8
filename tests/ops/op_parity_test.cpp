// Op parity: every op x type x shape on every host backend the registry lists, plus a second
// CPU instance that supports only a few ops (its other nodes fall back to the CPU), and
// thread-count invariance on the CPU.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/onednn.h"
#include "backends/registry.h"
#include "tests/ops/harness.h"

using namespace tessera;
using namespace tessera::test;

namespace {

void check_all_cases(Backend& place_on, const std::vector<Backend*>& sched, const char* label) {
    auto cases = all_op_cases();
    std::map<std::string, int> per_op;
    int passed = 0;
    for (const OpCase& c : cases) {
        CAPTURE(c.name);
        auto expected = c.reference(c.leaves);
        auto got = run_case(c, place_on, sched);
        REQUIRE(got.size() == expected.size());
        double e = nmse(got, expected);
        CAPTURE(e);
        CHECK(e <= c.max_nmse);
        passed += e <= c.max_nmse;
        per_op[c.name.substr(0, c.name.find(' '))]++;
    }
    std::printf("%s: %d of %zu op cases within bounds (", label, passed, cases.size());
    for (const auto& [op, n] : per_op) std::printf("%s %d, ", op.c_str(), n);
    std::printf(")\n");
}

}  // namespace

// The GPU backends run the same cases in their own tests (gpu/gpu_backend_test.cpp, labels
// cuda and vulkan), which skip without a device.
TEST_CASE("every op matches the scalar reference on every registered host backend") {
    auto backends = backends::create_available();
    REQUIRE(!backends.empty());
    Backend& cpu = *backends.back();
    CHECK(cpu.name() == "CPU");
    for (auto& b : backends) {
        if (!b->host_memory()) continue;
        std::vector<Backend*> sched = {b.get()};
        if (b.get() != &cpu) sched.push_back(&cpu);
        check_all_cases(*b, sched, b->name().c_str());
    }
}

// ctest runs these cases once more with TESSERA_GEMM=onednn where oneDNN is compiled in: the
// prompt products on float weights then go to oneDNN for every float type it takes here.
TEST_CASE("a forced GEMM library is the one that runs") {
    const char* gemm = std::getenv("TESSERA_GEMM");
    if (!gemm || std::strcmp(gemm, "onednn") != 0) return;
    for (DType t : {DType::F32, DType::F16, DType::BF16}) {
        const std::string line = std::string(type_name(t)) + ": oneDNN " +
                                 (cpu::onednn::chosen(t) ? "runs it with " + std::string(cpu::onednn::implementation(t))
                                                         : std::string("does not take it"));
        MESSAGE(line);
    }
    CHECK(cpu::onednn::chosen(DType::F32));  // oneDNN has an f32 matmul on every x86 CPU
}

TEST_CASE("a backend that supports only some ops hands the rest to the CPU") {
    auto backends = backends::create_available();
    Backend& cpu = *backends.back();
    cpu::CpuBackend partial("CPU-partial", [](const Tensor& n) {
        return n.op == Op::MulMat || n.op == Op::Add || n.op == Op::RmsNorm || n.op == Op::Rope;
    });
    check_all_cases(partial, {&partial, &cpu}, "CPU-partial + CPU");
}

TEST_CASE("results do not depend on the thread count") {
    cpu::CpuBackend one("CPU"), many("CPU");
    one.set_threads(1);
    many.set_threads(3);  // more threads than rows in some cases, uneven splits in others
    for (const OpCase& c : all_op_cases()) {
        CAPTURE(c.name);
        auto a = run_case(c, one, {&one});
        auto b = run_case(c, many, {&many});
        CHECK(nmse(b, a) <= 1e-12);
    }
}
