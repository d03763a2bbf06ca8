// The tiled-attention kernels (backends/cpu/kernels/attn_kernels.cpp) on every code path
// this CPU runs, against their scalar twins: the two products are the same multiply-adds in
// the same order, so bit-identical where the code path fuses them (FMA), within rounding of
// the separate product where it does not (SSE4); the exponentials within 2e-7 relative; the
// gated activations (gate_kernels.cpp) within 2e-6 relative (or 1e-12 absolute).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/kernels/kernels.h"
#include "backends/cpu/kernels/ref_kernels.h"

namespace kernels = tessera::cpu::kernels;

TEST_CASE("tiled attention kernels match their scalar twins on every code path") {
    std::mt19937 rng(5);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    const auto fill = [&](std::vector<float>& v) {
        for (float& x : v) x = dist(rng);
    };
    int paths = 0;
    // Equal bits, or (no FMA) equal to rounding: every compared value is a sum of a few
    // hundred products of standard normals at most.
    const auto close = [](const std::vector<float>& a, const std::vector<float>& b, bool exact) {
        if (exact) return std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
        for (size_t i = 0; i < a.size(); ++i)
            if (std::fabs(a[i] - b[i]) > 2e-5f * (1.0f + std::fabs(a[i]))) return false;
        return true;
    };
    for (const kernels::TargetInfo& target : kernels::compiled_targets()) {
        if (!target.supported) continue;
        REQUIRE(kernels::select_target(target.name));
        const kernels::KernelTable& kt = kernels::active();
        CAPTURE(target.name);
        const bool fma = target.name != "sse4" && target.name != "emu128";
        ++paths;
        for (int64_t D : {32, 64, 80, 128}) {
            CAPTURE(D);
            const int64_t nq = 5;
            std::vector<float> q(static_cast<size_t>(nq * (D + 3))), ktile(static_cast<size_t>(D * kernels::kAttnTile));
            fill(q);
            fill(ktile);
            std::vector<float> want(static_cast<size_t>(nq * 70), 0.5f), got(want);
            kernels::ref::attn_scores(q.data(), static_cast<size_t>(D + 3), nq, ktile.data(), D, want.data(), 70);
            kt.attn_scores(q.data(), static_cast<size_t>(D + 3), nq, ktile.data(), D, got.data(), 70);
            CHECK(close(want, got, fma));

            for (int64_t nk : {1, 17, 64}) {
                std::vector<float> w(static_cast<size_t>(nk)), v(static_cast<size_t>(nk * D)), a(static_cast<size_t>(D));
                fill(w);
                fill(v);
                fill(a);
                std::vector<float> b = a;
                kernels::ref::attn_accumulate(a.data(), D, w.data(), nk, v.data());
                kt.attn_accumulate(b.data(), D, w.data(), nk, v.data());
                CHECK(close(a, b, fma));
            }
        }
        for (int64_t n : {1, 15, 64, 100}) {
            std::vector<float> x(static_cast<size_t>(n));
            fill(x);
            x[0] = -INFINITY;  // a masked score
            std::vector<float> y = x;
            const float s_ref = kernels::ref::exp_sum(x.data(), n, 1.5f);
            const float s = kt.exp_sum(y.data(), n, 1.5f);
            CHECK(y[0] == 0.0f);
            for (int64_t i = 0; i < n; ++i) CHECK(std::fabs(y[i] - x[i]) <= 2e-7f * std::fabs(x[i]) + 1e-30f);
            CHECK(std::fabs(s - s_ref) <= 1e-6f * s_ref);
        }
        // The gated activations: Highway's exp and tanh against the C library's, over the
        // range where both products matter, with the saturated tails and a partial vector.
        for (int64_t n : {1, 7, 64, 203}) {
            CAPTURE(n);
            std::vector<float> g(static_cast<size_t>(n)), u(g.size());
            for (float& x : g) x = 6.0f * dist(rng);
            fill(u);
            g[0] = -100.0f;
            if (n > 1) g[1] = 100.0f;
            for (bool swi : {true, false}) {
                std::vector<float> want(g.size()), got(g.size(), -1.0f);
                (swi ? kernels::ref::swiglu : kernels::ref::geglu)(g.data(), u.data(), want.data(), n);
                (swi ? kt.swiglu : kt.geglu)(g.data(), u.data(), got.data(), n);
                for (size_t i = 0; i < g.size(); ++i) {
                    CAPTURE(g[i]);
                    // Relative, down to products far below anything that reaches the next
                    // matmul (deep in the tails an exponential of a large argument carries
                    // that argument's rounding, on both sides).
                    CHECK(std::fabs(got[i] - want[i]) <= 2e-6f * std::fabs(want[i]) + 1e-12f);
                }
            }
        }
    }
    REQUIRE(kernels::select_target("best"));
    CHECK(paths >= 1);
}
