// Batch invariance on the CPU: a matrix product's row, and an attention row, come out bit
// for bit the same whatever other rows share the batch (how many, and where the row sits
// in it). A server batching several users relies on it: each user gets exactly the text it
// gets alone.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/kernels/repack.h"
#include "tests/ops/harness.h"

using namespace tessera;
using namespace tessera::test;
namespace kernels = tessera::cpu::kernels;

namespace {

// Rows [r0, r0 + m) of an F32 leaf [K, M].
Leaf row_slice(const Leaf& x, int64_t r0, int64_t m) {
    Leaf s;
    s.type = DType::F32;
    s.ne = {x.ne[0], m};
    s.values.assign(x.values.begin() + static_cast<ptrdiff_t>(r0 * x.ne[0]),
                    x.values.begin() + static_cast<ptrdiff_t>((r0 + m) * x.ne[0]));
    s.bytes.assign(x.bytes.begin() + static_cast<ptrdiff_t>(r0 * x.ne[0] * 4),
                   x.bytes.begin() + static_cast<ptrdiff_t>((r0 + m) * x.ne[0] * 4));
    return s;
}

struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
};

// out = w x on the CPU, the weight in the file's layout or (repack) the interleaved one, the
// node marked batch-invariant (as a context of several sequences marks its products).
std::vector<double> product(const Leaf& w, const Leaf& x, bool repack, int threads) {
    OpCase c;
    c.name = "mul_mat";
    c.leaves = {w, x};
    std::unique_ptr<void, FreeDeleter> packed;
    c.build = [&](Graph& g, std::vector<Tensor*>& l) {
        if (repack) {
            const size_t bytes = (kernels::r16_bytes(w.type, w.ne[0], w.ne[1]) + 63) / 64 * 64;
            packed.reset(std::aligned_alloc(64, bytes));
            kernels::repack_r16(w.type, l[0]->data, packed.get(), w.ne[0], w.ne[1]);
            l[0]->data = packed.get();
            l[0]->flags |= kFlagRepacked;
        }
        g.set_batch_invariant(true);
        return g.mul_mat(l[0], l[1]);
    };
    cpu::CpuBackend cpu("CPU");
    cpu.set_threads(threads);
    return run_case(c, cpu, {&cpu});
}

}  // namespace

TEST_CASE("a matrix product's rows do not depend on the rest of the batch") {
    const int64_t K = 512, N = 48, M = 80;
    const Leaf x = random_leaf(DType::F32, {K, M}, 11);
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                    DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
        const Leaf w = random_leaf(t, {K, N}, 5);
        for (bool repack : {false, true}) {
            if (repack && !kernels::r16_fits(t, K, N)) continue;
            CAPTURE(std::string(type_name(t)));
            CAPTURE(repack);
            const std::vector<double> full = product(w, x, repack, 2);
            // Sub-batches of every size class the kernels tell apart, at several offsets.
            for (auto [r0, m] : {std::pair<int64_t, int64_t>{0, 1}, {7, 1}, {79, 1}, {3, 2}, {5, 3}, {9, 4},
                                 {10, 5}, {20, 7}, {1, 16}, {30, 17}, {40, 33}, {8, 64}, {0, 65}}) {
                CAPTURE(r0);
                CAPTURE(m);
                const std::vector<double> part = product(w, row_slice(x, r0, m), repack, 3);
                REQUIRE(part.size() == static_cast<size_t>(N * m));
                size_t differ = 0;
                for (size_t i = 0; i < part.size(); ++i)
                    differ += part[i] != full[static_cast<size_t>(r0 * N) + i];
                CHECK(differ == 0);
            }
        }
    }
}
