// Benchmarks the CPU matrix-product kernels, printing medians of several runs:
//  - memory read bandwidth (the bound for decoding);
//  - the decode mat-vec (one activation row) on a 4096 x 4096 weight matrix per type, the
//    old reference path (dequantize each weight row, then a float dot, as ops_matmul.cpp did
//    before the kernels) side by side with the new one (the real mul_mat op through a
//    Scheduler), with 1 and 2 threads; "hot" repeats one matrix (it stays in cache), "cold"
//    streams through copies larger than the last-level cache;
//  - prompt processing (64 activation rows at once), the same two paths, in GFLOP/s;
//  - with --model, a model's decode speed (greedy, one token per decode) and the bound that
//    the measured bandwidth puts on it.
//
//   kernel-bench [--runs N] [--threads 1,2] [--types Q4_0,F16] [--new-only] [--no-matvec]
//                [--no-prompt] [--model PATH] [--tokens N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_info.h"
#include "backends/cpu/kernels/kernels.h"
#include "backends/cpu/ops.h"
#include "runtime/context.h"
#include "runtime/loader.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"
#include "tensor/scheduler.h"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace tessera;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kK = 4096, kN = 4096;
constexpr size_t kColdBytes = size_t{1} << 30;  // streamed per cold measurement

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

// Runs body(ith, nth) on n threads.
template <class F>
void parallel(int n, F&& body) {
#ifdef _OPENMP
#pragma omp parallel num_threads(n)
    body(omp_get_thread_num(), omp_get_num_threads());
#else
    (void)n;
    body(0, 1);
#endif
}

// Read bandwidth over a buffer much larger than the caches, GB/s: each thread streams its part
// through the SIMD dot product of the attention helpers (one stream, no software prefetch).
double read_bandwidth(int threads, int runs) {
    const size_t n = kColdBytes / sizeof(float);
    std::vector<float> buf(n);
    parallel(threads, [&](int ith, int nth) {  // first touch by the threads that read
        int64_t b, e;
        cpu::split_rows(static_cast<int64_t>(n), ith, nth, &b, &e);
        for (int64_t i = b; i < e; ++i) buf[static_cast<size_t>(i)] = 1.0f;
    });
    const auto dot = cpu::kernels::active().dot_f32;
    std::vector<double> t;
    std::vector<float> sink(static_cast<size_t>(threads));
    for (int r = 0; r < runs; ++r) {
        const auto t0 = Clock::now();
        parallel(threads, [&](int ith, int nth) {
            int64_t b, e;
            cpu::split_rows(static_cast<int64_t>(n), ith, nth, &b, &e);
            sink[static_cast<size_t>(ith)] = dot(buf.data() + b, buf.data() + b, e - b);
        });
        t.push_back(seconds_since(t0));
    }
    return static_cast<double>(kColdBytes) / median(t) / 1e9;
}

// One weight matrix: random floats through the reference quantizer (only the first four rows
// for the quantized types, whose reference quantizers are slow; the rest repeat them).
std::vector<uint8_t> random_matrix(DType t, std::mt19937& rng) {
    const size_t row = row_size(t, kK);
    std::vector<uint8_t> w(row * kN);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(kK));
    for (int64_t r = 0; r < kN; ++r) {
        if (r < 4 || !type_traits(t).quantized) {
            for (float& v : x) v = u(rng);
            quant::quantize_row(t, x.data(), w.data() + static_cast<size_t>(r) * row, kK);
        } else {  // the reference k-quant quantizers are slow: copy earlier rows instead
            std::memcpy(w.data() + static_cast<size_t>(r) * row, w.data() + static_cast<size_t>(r % 4) * row, row);
        }
    }
    return w;
}

// The old path: per weight row, dequantize into scratch and dot with every activation row.
// x: [m][kK], y: [m][kN].
void reference_matmul(DType t, const uint8_t* w, const float* x, float* y, int64_t m, int threads) {
    const size_t row = row_size(t, kK);
    parallel(threads, [&](int ith, int nth) {
        std::vector<float> scratch(static_cast<size_t>(kK));
        int64_t b, e;
        cpu::split_rows(kN, ith, nth, &b, &e);
        for (int64_t n = b; n < e; ++n) {
            quant::dequantize_row(t, w + static_cast<size_t>(n) * row, scratch.data(), kK);
            for (int64_t j = 0; j < m; ++j) {
                float sum = 0.0f;
                for (int64_t k = 0; k < kK; ++k) sum += scratch[static_cast<size_t>(k)] * x[j * kK + k];
                y[j * kN + n] = sum;
            }
        }
    });
}

// The new path: `copies` mul_mat nodes (one per weight copy, m activation rows each) in one
// graph on the CPU backend.
struct NewPath {
    cpu::CpuBackend backend{"CPU"};
    Graph g;
    std::vector<Tensor*> weights;
    Tensor* x = nullptr;
    std::unique_ptr<Buffer> buffer;
    std::unique_ptr<Scheduler> sched;

    NewPath(DType t, const std::vector<uint8_t>& bytes, int copies, int threads, int64_t m = 1) {
        for (int i = 0; i < copies; ++i) weights.push_back(g.new_tensor(t, {kK, kN}));
        buffer = allocate_tensors(backend, weights, BufferUsage::Weights);
        for (Tensor* w : weights) backend.upload(w, bytes.data(), 0, bytes.size());
        x = g.input(DType::F32, {kK, m}, "x");
        for (Tensor* w : weights) g.mark_output(g.mul_mat(w, x));
        sched = std::make_unique<Scheduler>(std::vector<Backend*>{&backend});
        sched->set_threads(threads);
        sched->plan(g);
        std::mt19937 rng(3);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        for (int64_t k = 0; k < kK * m; ++k) static_cast<float*>(x->data)[k] = u(rng);
    }
    void run() { sched->compute(g); }
};

// Prompt processing: kPromptRows activation rows at once (one quantized chunk), compute-bound.
constexpr int64_t kPromptRows = 64;

void bench_prompt(const std::vector<DType>& types, const std::vector<int>& thread_counts, int runs, bool old_path) {
    std::printf("\nPrompt processing, %lld x %lld weights x %lld activation rows; median of %d runs\n",
                static_cast<long long>(kN), static_cast<long long>(kK), static_cast<long long>(kPromptRows), runs);
    std::printf("%-5s %3s | %9s %7s | %9s %7s | %7s\n", "type", "thr", "old ms", "GFLOP/s", "new ms", "GFLOP/s",
                "speedup");
    std::mt19937 rng(2);
    std::vector<float> x(static_cast<size_t>(kK * kPromptRows)), y(static_cast<size_t>(kN * kPromptRows));
    for (float& v : x) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
    const double flop = 2.0 * kN * kK * kPromptRows;
    for (DType t : types) {
        const std::vector<uint8_t> w = random_matrix(t, rng);
        for (int threads : thread_counts) {
            NewPath fast(t, w, 1, threads, kPromptRows);
            std::vector<double> t_old, t_new;
            for (int r = 0; r < runs + 1; ++r) {
                auto t0 = Clock::now();
                if (old_path) reference_matmul(t, w.data(), x.data(), y.data(), kPromptRows, threads);
                const double old_s = seconds_since(t0);
                t0 = Clock::now();
                fast.run();
                const double new_s = seconds_since(t0);
                if (r > 0) {
                    t_old.push_back(old_s);
                    t_new.push_back(new_s);
                }
            }
            const double to = median(t_old), tn = median(t_new);
            if (old_path)
                std::printf("%-5s %3d | %9.2f %7.2f | %9.2f %7.2f | %6.1fx\n", std::string(type_name(t)).c_str(),
                            threads, to * 1e3, flop / to / 1e9, tn * 1e3, flop / tn / 1e9, to / tn);
            else  // --new-only: no old figures
                std::printf("%-5s %3d | %9s %7s | %9.2f %7.2f | %7s\n", std::string(type_name(t)).c_str(), threads, "-",
                            "-", tn * 1e3, flop / tn / 1e9, "-");
            std::fflush(stdout);
        }
    }
}

void bench_matvec(const std::vector<DType>& types, const std::vector<int>& thread_counts, int runs, bool old_path) {
    std::printf("\nDecode mat-vec, %lld x %lld weights x 1 activation row; median of %d runs\n",
                static_cast<long long>(kN), static_cast<long long>(kK), runs);
    std::printf("%-5s %8s %3s %5s | %9s %7s %7s | %9s %7s %7s | %7s\n", "type", "MiB", "thr", "cache", "old ms", "GB/s",
                "GFLOP/s", "new ms", "GB/s", "GFLOP/s", "speedup");
    std::mt19937 rng(1);
    std::vector<float> x(static_cast<size_t>(kK)), y(static_cast<size_t>(kN));
    for (float& v : x) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
    for (DType t : types) {
        const std::vector<uint8_t> w = random_matrix(t, rng);
        const double bytes = static_cast<double>(w.size());
        const int cold_copies = static_cast<int>(std::max<size_t>(2, kColdBytes / w.size()));
        std::vector<uint8_t> cold(w.size() * static_cast<size_t>(cold_copies));
        for (int c = 0; c < cold_copies; ++c) std::memcpy(cold.data() + c * w.size(), w.data(), w.size());
        for (int threads : thread_counts) {
            for (bool hot : {true, false}) {
                const int copies = hot ? 1 : cold_copies;
                NewPath fast(t, w, copies, threads);
                std::vector<double> t_old, t_new;
                for (int r = 0; r < runs + 1; ++r) {  // run 0 warms up
                    auto t0 = Clock::now();
                    for (int c = 0; c < copies && old_path; ++c)
                        reference_matmul(t, hot ? w.data() : cold.data() + c * w.size(), x.data(), y.data(), 1,
                                         threads);
                    const double old_s = old_path ? seconds_since(t0) / copies : 0.0;
                    t0 = Clock::now();
                    fast.run();
                    const double new_s = seconds_since(t0) / copies;
                    if (r > 0) {
                        t_old.push_back(old_s);
                        t_new.push_back(new_s);
                    }
                }
                const double to = median(t_old), tn = median(t_new), flop = 2.0 * kN * kK;
                if (!old_path) {  // --new-only: no old figures
                    std::printf("%-5s %8.2f %3d %5s | %9s %7s %7s | %9.3f %7.2f %7.2f | %7s\n",
                                std::string(type_name(t)).c_str(), bytes / (1 << 20), threads, hot ? "hot" : "cold", "-",
                                "-", "-", tn * 1e3, bytes / tn / 1e9, flop / tn / 1e9, "-");
                    std::fflush(stdout);
                    continue;
                }
                std::printf("%-5s %8.2f %3d %5s | %9.3f %7.2f %7.2f | %9.3f %7.2f %7.2f | %6.1fx\n",
                            std::string(type_name(t)).c_str(), bytes / (1 << 20), threads, hot ? "hot" : "cold",
                            to * 1e3, bytes / to / 1e9, flop / to / 1e9, tn * 1e3, bytes / tn / 1e9, flop / tn / 1e9,
                            to / tn);
                std::fflush(stdout);
            }
        }
    }
}

void bench_model(const std::string& path, const std::vector<int>& thread_counts, int n_tokens, int runs,
                 const std::vector<double>& bandwidth) {
    runtime::LoadOptions lo;
    lo.n_gpu_layers = 0;  // the CPU kernels are what this measures
    auto model = runtime::load_model(gguf::File::open(path), lo);
    const double mib = static_cast<double>(model->weight_bytes) / (1 << 20);
    std::printf("\nModel %s: %.1f MiB of weights; greedy decode of %d tokens after an 8-token prompt\n", path.c_str(),
                mib, n_tokens);
    std::printf("%3s | %9s %9s | %s\n", "thr", "tok/s", "ms/tok", "bound: read GB/s / weight bytes");
    for (size_t i = 0; i < thread_counts.size(); ++i) {
        std::vector<double> rates;
        for (int r = 0; r < runs; ++r) {
            runtime::ContextOptions opt;
            opt.n_ctx = 256;
            opt.n_threads = thread_counts[i];
            runtime::Context ctx(*model, opt);
            std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8};
            ctx.decode(prompt, false);
            const float* l = ctx.logits(-1);
            const auto t0 = Clock::now();
            for (int k = 0; k < n_tokens; ++k) {
                int32_t best = 0;
                for (int32_t v = 1; v < model->hp.n_vocab; ++v)
                    if (l[v] > l[best]) best = v;
                ctx.decode(std::span<const int32_t>(&best, 1), false);
                l = ctx.logits(-1);
            }
            rates.push_back(n_tokens / seconds_since(t0));
        }
        const double tps = median(rates);
        std::printf("%3d | %9.2f %9.2f | %.1f tok/s (%.2f GB/s)\n", thread_counts[i], tps, 1e3 / tps,
                    bandwidth[i] * 1e9 / static_cast<double>(model->weight_bytes), bandwidth[i]);
    }
}

std::vector<int> parse_list(const char* s) {
    std::vector<int> v;
    for (const char* p = s; *p;) {
        v.push_back(std::atoi(p));
        while (*p && *p != ',') ++p;
        if (*p == ',') ++p;
    }
    return v;
}

std::vector<DType> parse_types(const char* s) {
    std::vector<DType> v;
    std::string list = s;
    for (size_t b = 0; b <= list.size();) {
        size_t e = list.find(',', b);
        if (e == std::string::npos) e = list.size();
        DType t;
        if (type_from_name(list.substr(b, e - b), &t))
            v.push_back(t);
        else
            std::fprintf(stderr, "unknown type '%s' ignored\n", list.substr(b, e - b).c_str());
        b = e + 1;
    }
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    int runs = 7, tokens = 64;
    std::vector<int> threads = {1, 2};
    std::vector<DType> types = {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::F16};
    std::string model;
    bool matvec = true, prompt = true, old_path = true;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--runs" && i + 1 < argc)
            runs = std::max(1, std::atoi(argv[++i]));
        else if (a == "--threads" && i + 1 < argc)
            threads = parse_list(argv[++i]);
        else if (a == "--model" && i + 1 < argc)
            model = argv[++i];
        else if (a == "--tokens" && i + 1 < argc)
            tokens = std::max(1, std::atoi(argv[++i]));
        else if (a == "--no-matvec")
            matvec = false;
        else if (a == "--new-only")
            old_path = false;
        else if (a == "--no-prompt")
            prompt = false;
        else if (a == "--types" && i + 1 < argc)
            types = parse_types(argv[++i]);
        else {
            std::fprintf(stderr,
                         "usage: %s [--runs N] [--threads 1,2] [--types Q4_0,F16] [--new-only] [--no-matvec] "
                         "[--no-prompt] [--model PATH] [--tokens N]\n",
                         argv[0]);
            return 2;
        }
    }
    std::printf("CPU code path: %s\nCPU features: %s\n", cpu::cpu_target_name(), cpu::cpu_features().c_str());
    std::vector<double> bandwidth;
    for (int t : threads) {
        bandwidth.push_back(read_bandwidth(t, runs));
        std::printf("read bandwidth, %d thread%s: %.2f GB/s (1 GiB buffer)\n", t, t == 1 ? "" : "s", bandwidth.back());
    }
    if (matvec) bench_matvec(types, threads, runs, old_path);
    if (prompt) bench_prompt(types, threads, std::max(1, runs / 2), old_path);
    if (!model.empty()) bench_model(model, threads, tokens, std::max(1, runs / 2), bandwidth);
    return 0;
}
