// The tiled-attention kernels (backends/cpu/kernels/attn_kernels.cpp) on every code path
// this CPU runs, against their scalar twins: the two products are the same multiply-adds in
// the same order, so bit-identical where the code path fuses them (FMA), within rounding of
// the separate product where it does not (SSE4); the exponentials within 2e-7 relative; the
// half-to-float conversion exactly; the gated activations (gate_kernels.cpp) within 2e-6
// relative (or 1e-12 absolute).
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
            const size_t qs = static_cast<size_t>(D + 3);
            std::vector<float> q(static_cast<size_t>(5) * qs), ktile(static_cast<size_t>(D * kernels::kAttnTile));
            fill(q);
            fill(ktile);
            // Pairs of rows and a last odd one; whole tiles and partial ones. Only the first nk
            // columns are defined.
            for (int64_t nq : {1, 2, 5})
                for (int64_t nk : {1, 17, 33, 64}) {
                    CAPTURE(nq);
                    CAPTURE(nk);
                    std::vector<float> want(static_cast<size_t>(nq * 70), 0.5f), got(want);
                    kernels::ref::attn_scores(q.data(), qs, nq, ktile.data(), D, nk, want.data(), 70);
                    kt.attn_scores(q.data(), qs, nq, ktile.data(), D, nk, got.data(), 70);
                    for (int64_t r = 0; r < nq; ++r)
                        for (int64_t j = nk; j < 70; ++j) want[r * 70 + j] = got[r * 70 + j] = 0.0f;
                    CHECK(close(want, got, fma));
                }

            for (int64_t nr : {1, 2, 3, 6})
                for (int64_t nk : {1, 17, 64}) {
                    CAPTURE(nr);
                    CAPTURE(nk);
                    const size_t as = static_cast<size_t>(D + 5), ws = 67;
                    std::vector<float> w(static_cast<size_t>(nr) * ws), v(static_cast<size_t>(nk * D)),
                        a(static_cast<size_t>(nr) * as);
                    fill(w);
                    fill(v);
                    fill(a);
                    std::vector<float> b = a;
                    kernels::ref::attn_accumulate(a.data(), as, nr, D, w.data(), ws, nk, v.data());
                    kt.attn_accumulate(b.data(), as, nr, D, w.data(), ws, nk, v.data());
                    CHECK(close(a, b, fma));  // the padding between rows is left alone too
                }
        }
        for (int64_t n : {1, 15, 64}) {
            CAPTURE(n);
            std::vector<float> s(static_cast<size_t>(n)), mask(s.size(), 0.0f);
            fill(s);
            for (size_t i = 0; i < mask.size(); i += 3) mask[i] = -INFINITY;
            if (n > 1) mask[1] = -0.75f;
            std::vector<float> t = s;
            const float m_ref = kernels::ref::scale_mask_max(s.data(), mask.data(), n, 0.125f);
            const float m = kt.scale_mask_max(t.data(), mask.data(), n, 0.125f);
            CHECK(close(s, t, fma));
            CHECK((m == m_ref || std::fabs(m - m_ref) <= 2e-5f * (1.0f + std::fabs(m_ref))));
            CHECK(s[0] == -INFINITY);
        }
        {
            // Halves: normal, subnormal, zeros, infinities, the largest; a partial vector.
            std::vector<uint16_t> h;
            for (uint16_t x : {0x0000, 0x8000, 0x0001, 0x03ff, 0x8200, 0x0400, 0x3c00, 0xbc00, 0x7bff, 0xfbff, 0x7c00,
                               0xfc00, 0x3555, 0x4248})
                h.push_back(x);
            for (int i = 0; i < 37; ++i) h.push_back(static_cast<uint16_t>(rng() & 0x7bff));  // positive and finite
            std::vector<float> want(h.size()), got(h.size(), -1.0f);
            kernels::ref::f16_to_f32(h.data(), want.data(), static_cast<int64_t>(h.size()));
            kt.f16_to_f32(h.data(), got.data(), static_cast<int64_t>(h.size()));
            for (size_t i = 0; i < h.size(); ++i) {
                CAPTURE(h[i]);
                CHECK(std::memcmp(&want[i], &got[i], sizeof(float)) == 0);
            }
        }
        {
            // Floats to halves: normal, subnormal and underflowing, ties at both ends of a
            // mantissa, the largest half and what rounds past it, infinities, signed zeros;
            // a partial vector. A NaN stays a NaN of its sign.
            std::vector<float> x = {0.0f, -0.0f, 1.0f, -2.5f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 0x1p-14f,
                                    0x1p-24f, 0x1p-25f, 0x1.8p-25f, 3e-6f, -7.1e-5f, 65504.0f, 65519.0f, 65520.0f,
                                    -1e6f, INFINITY, -INFINITY, 0.1f, 333.3f, NAN, -NAN};
            std::uniform_real_distribution<float> wide(-3e4f, 3e4f);
            for (int i = 0; i < 45; ++i) x.push_back(i % 3 ? wide(rng) * 1e-3f : wide(rng));
            std::vector<uint16_t> want(x.size()), got(x.size(), 0x5555);
            kernels::ref::f32_to_f16(x.data(), want.data(), static_cast<int64_t>(x.size()));
            kt.f32_to_f16(x.data(), got.data(), static_cast<int64_t>(x.size()));
            for (size_t i = 0; i < x.size(); ++i) {
                CAPTURE(x[i]);
                if (std::isnan(x[i]))
                    CHECK(((got[i] & 0x7c00) == 0x7c00 && (got[i] & 0x3ff) != 0 && (got[i] >> 15) == (want[i] >> 15)));
                else
                    CHECK(got[i] == want[i]);
            }
        }
        for (int64_t n : {1, 15, 64, 100}) {
            std::vector<float> x(static_cast<size_t>(n));
            fill(x);
            x[0] = -INFINITY;  // a masked score
            std::vector<float> y = x, z = x;
            const float s_ref = kernels::ref::exp_sum(x.data(), n, 1.5f);
            const float s = kt.exp_sum(y.data(), n, 1.5f);
            CHECK(y[0] == 0.0f);
            for (int64_t i = 0; i < n; ++i) CHECK(std::fabs(y[i] - x[i]) <= 2e-7f * std::fabs(x[i]) + 1e-30f);
            CHECK(std::fabs(s - s_ref) <= 1e-6f * s_ref);
            // Masked scores after the last visible one change nothing, bit for bit (a row's
            // softmax must not depend on how far the other rows of its tile see).
            z.resize(static_cast<size_t>(n + 29), -INFINITY);
            const float sz = kt.exp_sum(z.data(), n + 29, 1.5f);
            CHECK(std::memcmp(&sz, &s, sizeof s) == 0);
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
