// Whether oneDNN's own weight layout would make Tessera's prompt products faster: oneDNN's
// matmul on weights in the file's layout (what ops_matmul.cpp runs) against the same weights
// reordered into the layout oneDNN picks for the shape (format_tag::any), each two ways:
//  - "team":  each of T OpenMP threads multiplies its own range of weight rows, oneDNN on
//             the calling thread alone (Tessera's CPU team does this);
//  - "dnnl":  one call from outside a parallel region, oneDNN splitting the work itself.
// Prints GFLOP/s, the median of several runs, per type and shape.
//
//   onednn-layout-bench [--threads T] [--runs N] [--m M]
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <omp.h>

namespace {

using dnnl::memory;
using Clock = std::chrono::steady_clock;

struct Shape {
    const char* name;
    int64_t K, N;
};

// TinyLlama-1.1B's matrices (hidden 2048, FFN 5632, 4 KV heads of 64).
const Shape kShapes[] = {{"attn_q/o 2048x2048", 2048, 2048},
                         {"attn_k/v 256x2048", 2048, 256},
                         {"ffn_up/gate 5632x2048", 2048, 5632},
                         {"ffn_down 2048x5632", 5632, 2048}};

dnnl::engine& engine() {
    static dnnl::engine e(dnnl::engine::kind::cpu, 0);
    return e;
}

// One product: activations [M, K] (row-major, act type), weights [K, rows] as the file
// holds them (rows of K, ldw apart) or in `wei_any`'s layout, F32 results [M, rows].
struct Product {
    dnnl::matmul prim;
    memory src, wei, dst;
};

Product make(memory::data_type t, int64_t M, int64_t K, int64_t rows, int64_t ldw, void* x, void* w, float* y,
             bool reorder) {
    const memory::desc src_md({M, K}, t, memory::dims{K, 1});
    const memory::desc plain_md({K, rows}, t, memory::dims{1, ldw});
    const memory::desc dst_md({M, rows}, memory::data_type::f32, memory::dims{rows, 1});
    const memory::desc wei_md = reorder ? memory::desc({K, rows}, t, memory::format_tag::any) : plain_md;
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, wei_md, dst_md), engine());
    Product p;
    p.prim = dnnl::matmul(pd);
    p.src = memory(src_md, engine(), x);
    p.dst = memory(dst_md, engine(), y);
    memory plain(plain_md, engine(), w);
    if (reorder && pd.weights_desc() != plain_md) {
        p.wei = memory(pd.weights_desc(), engine());
        dnnl::stream s(engine());
        dnnl::reorder(plain, p.wei).execute(s, plain, p.wei);
        s.wait();
    } else {
        p.wei = plain;
    }
    return p;
}

void run(Product& p, dnnl::stream& s) {
    p.prim.execute(s, {{DNNL_ARG_SRC, p.src}, {DNNL_ARG_WEIGHTS, p.wei}, {DNNL_ARG_DST, p.dst}});
    s.wait();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// GFLOP/s of one way: `team` splits rows over T threads (multiples of 16), else one call.
double measure(memory::data_type t, const Shape& sh, int64_t M, int T, int runs, bool team, bool reorder,
               std::vector<uint16_t>& x16, std::vector<float>& x32, std::vector<uint16_t>& w16,
               std::vector<float>& w32, std::vector<float>& y, std::string* layout) {
    const bool f32 = t == memory::data_type::f32;
    void* x = f32 ? static_cast<void*>(x32.data()) : static_cast<void*>(x16.data());
    char* w = f32 ? reinterpret_cast<char*>(w32.data()) : reinterpret_cast<char*>(w16.data());
    const size_t esize = f32 ? 4 : 2;
    const int parts = team ? T : 1;
    const int64_t per = ((sh.N + parts - 1) / parts + 15) / 16 * 16;
    std::vector<Product> prods(static_cast<size_t>(parts));
    std::vector<std::vector<float>> ys(static_cast<size_t>(parts));
    for (int i = 0; i < parts; ++i) {
        const int64_t n0 = std::min(sh.N, per * i), n1 = std::min(sh.N, n0 + per);
        if (n1 <= n0) continue;
        ys[static_cast<size_t>(i)].resize(static_cast<size_t>(M * (n1 - n0)));
        prods[static_cast<size_t>(i)] =
            make(t, M, sh.K, n1 - n0, sh.K, x, w + static_cast<size_t>(n0 * sh.K) * esize,
                 ys[static_cast<size_t>(i)].data(), reorder);
    }
    if (layout) {
        const memory::desc d = prods[0].wei.get_desc();
        *layout = d.data.format_kind == dnnl_blocked && d.data.format_desc.blocking.inner_nblks > 0 ? "blocked"
                                                                                                   : "plain";
    }
    std::vector<double> times;
    for (int r = 0; r <= runs; ++r) {
        const auto t0 = Clock::now();
        if (team) {
#pragma omp parallel num_threads(T)
            {
                thread_local dnnl::stream s(engine());
                const int i = omp_get_thread_num();
                if (prods[static_cast<size_t>(i)].prim) run(prods[static_cast<size_t>(i)], s);
            }
        } else {
            dnnl::stream s(engine());
            run(prods[0], s);
        }
        const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
        if (r > 0) times.push_back(sec);  // the first run warms up
    }
    (void)y;
    return 2.0 * static_cast<double>(M) * static_cast<double>(sh.K) * static_cast<double>(sh.N) / median(times) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
    int T = omp_get_max_threads(), runs = 7;
    int64_t M = 512;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--threads")) T = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--m")) M = std::atoll(argv[i + 1]);
        else {
            std::fprintf(stderr, "usage: onednn-layout-bench [--threads T] [--runs N] [--m M]\n");
            return 2;
        }
    }
    if (T < 1 || runs < 1 || M < 1) {
        std::fprintf(stderr, "error: --threads, --runs and --m need positive numbers\n");
        return 2;
    }
    omp_set_num_threads(T);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    int64_t maxK = 0, maxN = 0;
    for (const Shape& s : kShapes) maxK = std::max(maxK, s.K), maxN = std::max(maxN, s.N);
    std::vector<float> x32(static_cast<size_t>(M * maxK)), w32(static_cast<size_t>(maxN * maxK)),
        y(static_cast<size_t>(M * maxN));
    for (float& v : x32) v = dist(rng);
    for (float& v : w32) v = dist(rng) * 0.05f;
    // 16-bit copies: bf16 by truncation, f16 through the hardware conversion; the bits do
    // not matter for speed as long as they are finite.
    std::vector<uint16_t> x16(x32.size()), w16(w32.size());
    const auto fill16 = [&](memory::data_type t) {
        for (size_t i = 0; i < x32.size(); ++i) x16[i] = t == memory::data_type::bf16 ? static_cast<uint16_t>(0x3f80) : 0x3c00;
        for (size_t i = 0; i < w32.size(); ++i) w16[i] = t == memory::data_type::bf16 ? static_cast<uint16_t>(0x3c00) : 0x2000;
    };
    std::printf("oneDNN %d.%d.%d, M=%lld, %d threads, median of %d runs, GFLOP/s\n", dnnl_version()->major,
                dnnl_version()->minor, dnnl_version()->patch, static_cast<long long>(M), T, runs);
    std::printf("| type | matrix | team, file layout | team, reordered | dnnl, file layout | dnnl, reordered | team layout |\n");
    std::printf("| --- | --- | ---: | ---: | ---: | ---: | --- |\n");
    const std::pair<const char*, memory::data_type> types[] = {
        {"BF16", memory::data_type::bf16}, {"F16", memory::data_type::f16}, {"F32", memory::data_type::f32}};
    for (const auto& [tname, t] : types) {
        if (t != memory::data_type::f32) fill16(t);
        for (const Shape& sh : kShapes) {
            std::string layout;
            double g[4];
            try {
                g[0] = measure(t, sh, M, T, runs, true, false, x16, x32, w16, w32, y, nullptr);
                g[1] = measure(t, sh, M, T, runs, true, true, x16, x32, w16, w32, y, &layout);
                g[2] = measure(t, sh, M, T, runs, false, false, x16, x32, w16, w32, y, nullptr);
                g[3] = measure(t, sh, M, T, runs, false, true, x16, x32, w16, w32, y, nullptr);
            } catch (const dnnl::error& e) {
                std::printf("| %s | %s | oneDNN: %s |\n", tname, sh.name, e.what());
                continue;
            }
            std::printf("| %s | %s | %.0f | %.0f | %.0f | %.0f | %s |\n", tname, sh.name, g[0], g[1], g[2], g[3],
                        layout.c_str());
            std::fflush(stdout);
        }
    }
    return 0;
}
