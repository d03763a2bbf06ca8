// `tessera bench`: prompt-processing and generation speed in the style of llama-bench:
// a markdown table (or JSON) of tokens/s, mean and standard deviation over repetitions.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>

#include "commands.h"
#include "common.h"
#include "tessera.h"

namespace tessera_cli {
namespace {

const char* kBenchHelp =
    "usage: tessera bench -m MODEL.gguf [options]\n"
    "\n"
    "Measures prompt processing (pp: one decode of N tokens) and text generation (tg: N\n"
    "decodes of one token) in tokens per second, as llama-bench does, and prints a\n"
    "markdown table (or JSON) with the mean and standard deviation over repetitions.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE        the GGUF model\n"
    "  -p, --n-prompt N[,N..]  prompt lengths to test (default 512; 0 skips)\n"
    "  -n, --n-gen N[,N..]     generation lengths to test (default 128; 0 skips)\n"
    "  -d, --n-depth N[,N..]   tokens already in the context when each test starts\n"
    "                          (default 0): the test reads as 'tg128 @ d4096', and the\n"
    "                          context is filled once per test, untimed\n"
    "  -t, --threads N[,N..]   thread counts (default: all cores)\n"
    "  -ngl, --gpu-layers N[,N..]\n"
    "                          layers on the GPU, counted from the last (default: the\n"
    "                          automatic count, as 'tessera fit' shows it; 0: CPU only);\n"
    "                          each value loads the model again\n"
    "  --device NAME[,NAME...] the GPUs to use, e.g. CUDA0 or CUDA0,CUDA1 (default: the first\n"
    "                          and every other of its kind)\n"
    "  -sm, --split-mode MODE  layer (default) or none, as for run\n"
    "  -ts, --tensor-split A,B each GPU's share of the GPU layers, as for run\n"
    "  -ot, --override-tensor PATTERN=DEVICE, --gpu-mem SIZE\n"
    "                          as for 'tessera run' (see its --help)\n"
    "  -b, --batch-size N      tokens per forward pass for pp (default 512)\n"
    "  -r, --repetitions N     runs per test (default 5); a warm-up run comes first\n"
    "  -o, --output FORMAT     md (default) or json\n"
    "      --json              the same as -o json\n"
    "  -nr, --no-repack        keep every weight in the file's layout (no interleaved\n"
    "                          copies for prompt processing)\n"
    "      --membw             also measure this machine's memory read bandwidth with each\n"
    "                          thread count (with every layer on a GPU: the GPU's copy\n"
    "                          bandwidth), and report generation as achieved GB/s (weight\n"
    "                          bytes read per token x tokens/s) and as % of that limit;\n"
    "                          without -m, only the CPU's bandwidth is measured\n"
    "  -h, --help              show this help\n"
    "\n"
    "Generation reads every weight once per token except the token embedding (one row),\n"
    "unless the embedding is also the output head. The peak resident memory of the run\n"
    "is printed last (to stderr).\n";

bool parse_list(const char* option, const char* text, long min, std::vector<long>* out) {
    out->clear();
    std::string s(text);
    size_t start = 0;
    while (start <= s.size()) {
        size_t comma = s.find(',', start);
        std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        long v = 0;
        if (!parse_int(option, item.c_str(), min, 1 << 20, &v)) return false;
        out->push_back(v);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return true;
}

struct Result {
    std::string test;
    std::string backend;  // CPU, CUDA0, or CUDA0+CPU for a split
    int32_t n_gpu_layers = 0;
    long threads = 0;
    long n = 0;
    long depth = 0;
    std::vector<double> tps;
    double membw_gbs = 0;  // measured read bandwidth with these threads (0: not measured)
    uint64_t gpu_bytes = 0;  // weights, KV cache and compute buffers on the GPU after the test
    double mean() const {
        double s = 0;
        for (double v : tps) s += v;
        return tps.empty() ? 0 : s / static_cast<double>(tps.size());
    }
    double stdev() const {
        if (tps.size() < 2) return 0;
        double m = mean(), s = 0;
        for (double v : tps) s += (v - m) * (v - m);
        return std::sqrt(s / static_cast<double>(tps.size() - 1));
    }
};

// Read bandwidth: `threads` threads each sum their part of a buffer much larger than the
// caches; the median of 7 passes, in GB/s (1e9 bytes/s).
double measure_read_bandwidth(long threads) {
    const size_t n = size_t{1} << 27;  // 1 GiB of uint64_t
    std::vector<uint64_t> buf(n);
    for (size_t i = 0; i < n; ++i) buf[i] = i;
    std::vector<double> gbs;
    std::vector<uint64_t> sums(static_cast<size_t>(threads));
    for (int pass = 0; pass < 7; ++pass) {
        std::vector<std::thread> pool;
        const auto t0 = std::chrono::steady_clock::now();
        for (long t = 0; t < threads; ++t)
            pool.emplace_back([&, t] {
                const size_t begin = n * static_cast<size_t>(t) / static_cast<size_t>(threads);
                const size_t end = n * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
                uint64_t a = 0, b = 0, c = 0, d = 0;
                size_t i = begin;
                for (; i + 4 <= end; i += 4) {
                    a += buf[i];
                    b += buf[i + 1];
                    c += buf[i + 2];
                    d += buf[i + 3];
                }
                for (; i < end; ++i) a += buf[i];
                sums[static_cast<size_t>(t)] = a + b + c + d;
            });
        for (auto& th : pool) th.join();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        gbs.push_back(static_cast<double>(n * sizeof(uint64_t)) / s / 1e9);
    }
    uint64_t check = 0;
    for (uint64_t v : sums) check += v;
    if (check != static_cast<uint64_t>(n) * (n - 1) / 2) std::fprintf(stderr, "warning: bandwidth probe sum is off\n");
    std::sort(gbs.begin(), gbs.end());
    return gbs[gbs.size() / 2];
}

// Bytes of weights one generated token reads: every tensor but the token embedding, which
// is gathered one row at a time, unless it is the output head too.
uint64_t weight_bytes_per_token(const tessera_model* model) {
    const tessera_gguf* g = tessera_model_gguf(model);
    if (!g) return 0;
    const bool tied = tessera_gguf_find_tensor(g, "output.weight") < 0;
    uint64_t total = 0;
    for (int64_t i = 0; i < tessera_gguf_tensor_count(g); ++i) {
        tessera_tensor_info ti;
        if (tessera_gguf_tensor(g, i, &ti) != TESSERA_OK) continue;
        if (!tied && !std::strcmp(ti.name, "token_embd.weight")) continue;
        total += ti.size;
    }
    return total;
}

long default_threads() { return static_cast<long>(std::max(1u, std::thread::hardware_concurrency())); }

void report_peak_rss() {
    struct rusage ru {};
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        std::fprintf(stderr, "peak resident memory: %.1f MiB\n", static_cast<double>(ru.ru_maxrss) / 1024.0);
}

double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int cmd_bench(int argc, char** argv) {
    const char* model_path = nullptr;
    std::vector<long> n_prompt = {512}, n_gen = {128}, threads = {0}, depths = {0}, gpu_layers = {-1};
    GpuOptions placement;  // --device, -ot, --gpu-mem, -nr (-ngl is a list here)
    long n_batch = 512, reps = 5;
    bool json = false, membw = false;
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        if (!std::strcmp(a, "-h") || !std::strcmp(a, "--help")) {
            std::fputs(kBenchHelp, stdout);
            return 0;
        }
        if (!std::strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (parse_load_flag(a, &placement)) continue;
        if (!std::strcmp(a, "--membw")) {
            membw = true;
            continue;
        }
        const char* v = option_value(argc, argv, &i);
        if (!v) return 2;
        if (!std::strcmp(a, "-m") || !std::strcmp(a, "--model"))
            model_path = v;
        else if (!std::strcmp(a, "-p") || !std::strcmp(a, "--n-prompt")) {
            if (!parse_list(a, v, 0, &n_prompt)) return 2;
        } else if (!std::strcmp(a, "-n") || !std::strcmp(a, "--n-gen")) {
            if (!parse_list(a, v, 0, &n_gen)) return 2;
        } else if (!std::strcmp(a, "-d") || !std::strcmp(a, "--n-depth")) {
            if (!parse_list(a, v, 0, &depths)) return 2;
        } else if (!std::strcmp(a, "-t") || !std::strcmp(a, "--threads")) {
            if (!parse_list(a, v, 1, &threads)) return 2;
        } else if (!std::strcmp(a, "-ngl") || !std::strcmp(a, "--gpu-layers") || !std::strcmp(a, "--n-gpu-layers")) {
            if (!parse_list(a, v, 0, &gpu_layers)) return 2;
        } else if (int r = parse_gpu_option(a, v, &placement, false); r != 0) {
            if (r < 0) return 2;
        } else if (!std::strcmp(a, "-b") || !std::strcmp(a, "--batch-size")) {
            if (!parse_int(a, v, 1, 1 << 20, &n_batch)) return 2;
        } else if (!std::strcmp(a, "-r") || !std::strcmp(a, "--repetitions")) {
            if (!parse_int(a, v, 1, 1000, &reps)) return 2;
        } else if (!std::strcmp(a, "-o") || !std::strcmp(a, "--output")) {
            if (!std::strcmp(v, "json"))
                json = true;
            else if (std::strcmp(v, "md")) {
                std::fprintf(stderr, "error: --output must be md or json (got '%s')\n", v);
                return 2;
            }
        } else {
            std::fprintf(stderr, "error: unknown option '%s' (see 'tessera bench --help')\n", a);
            return 2;
        }
    }
    if (!model_path && membw) {
        // The bandwidth alone.
        if (json) std::printf("[\n");
        for (size_t i = 0; i < threads.size(); ++i) {
            const long t = threads[i] > 0 ? threads[i] : default_threads();
            const double gbs = measure_read_bandwidth(t);
            if (json)
                std::printf("  {\"test\": \"membw\", \"n_threads\": %ld, \"read_gbs\": %.2f}%s\n", t, gbs,
                            i + 1 < threads.size() ? "," : "");
            else
                std::printf("memory read bandwidth, %ld thread%s: %.2f GB/s\n", t, t == 1 ? "" : "s", gbs);
        }
        if (json) std::printf("]\n");
        return 0;
    }
    if (!model_path) {
        std::fprintf(stderr, "error: tessera bench needs -m MODEL (see --help)\n");
        return 2;
    }
    std::vector<Result> results;
    int rc = 0;
    tessera_model* model = nullptr;
    uint64_t bytes_per_token = 0;
    for (long ngl : gpu_layers) {
        if (model) tessera_model_free(model);
        GpuOptions gpu = placement;
        gpu.n_gpu_layers = static_cast<int32_t>(ngl);
        gpu.plan_threads = static_cast<int32_t>(threads.front());
        // The largest context a test below takes.
        gpu.plan_n_ctx = static_cast<int32_t>(*std::max_element(depths.begin(), depths.end()) +
                                              std::max(*std::max_element(n_prompt.begin(), n_prompt.end()),
                                                       *std::max_element(n_gen.begin(), n_gen.end())) +
                                              1);
        model = load_model_or_report(model_path, gpu);
        if (!model) return 1;
        const int32_t n_vocab = tessera_vocab_size(model);
        std::mt19937 rng(1234);
        bytes_per_token = weight_bytes_per_token(model);
        const int32_t on_gpu = tessera_model_n_gpu_layers(model);
        const bool all_on_gpu = on_gpu > 0 && on_gpu == tessera_model_n_layer(model);
        const double gpu_bw = membw && all_on_gpu ? tessera_model_gpu_bandwidth(model) : 0.0;
        if (membw && all_on_gpu)
            std::fprintf(stderr, "%s copy bandwidth: %.1f GB/s\n", tessera_model_gpu(model), gpu_bw);
        const std::string backend = on_gpu == 0 ? std::string("CPU")
                                    : on_gpu == tessera_model_n_layer(model)
                                        ? std::string(tessera_model_gpu(model))
                                        : std::string(tessera_model_gpu(model)) + "+CPU";
        for (long t : threads) {
            // With every layer on a GPU the limit is the GPU's: its copy bandwidth.
            const double bw = !membw ? 0 : all_on_gpu ? gpu_bw : measure_read_bandwidth(t > 0 ? t : default_threads());
            auto run = [&](const char* kind, long n, long depth, bool prompt) -> bool {
                if (n <= 0) return true;
                tessera_context_params cp = tessera_context_default_params();
                cp.n_ctx = static_cast<int32_t>(depth + n + 1);
                cp.n_batch = static_cast<int32_t>(n_batch);
                cp.n_threads = static_cast<int32_t>(t);
                tessera_context* ctx = nullptr;
                if (tessera_context_new(model, &cp, &ctx) != TESSERA_OK) {
                    std::fprintf(stderr, "error: %s\n", tessera_last_error());
                    return false;
                }
                Result r;
                r.test = std::string(kind) + std::to_string(n) + (depth > 0 ? " @ d" + std::to_string(depth) : "");
                r.depth = depth;
                r.threads = t > 0 ? t : static_cast<long>(std::max(1u, std::thread::hardware_concurrency()));
                r.n = n;
                r.membw_gbs = bw;
                r.backend = backend;
                r.n_gpu_layers = on_gpu;
                // The depth: random tokens decoded once, in batches; every run starts after them.
                std::vector<int32_t> toks(static_cast<size_t>(std::max(n, depth)));
                for (long done = 0; done < depth;) {
                    const long m = std::min(n_batch, depth - done);
                    for (long i = 0; i < m; ++i)
                        toks[static_cast<size_t>(i)] = static_cast<int32_t>(rng() % static_cast<uint32_t>(n_vocab));
                    if (tessera_decode(ctx, toks.data(), static_cast<int32_t>(m), 0) != TESSERA_OK) {
                        std::fprintf(stderr, "error: %s\n", tessera_last_error());
                        tessera_context_free(ctx);
                        return false;
                    }
                    done += m;
                }
                for (long rep = -1; rep < reps; ++rep) {  // rep -1 warms up
                    for (long i = 0; i < n; ++i)
                        toks[static_cast<size_t>(i)] = static_cast<int32_t>(rng() % static_cast<uint32_t>(n_vocab));
                    tessera_context_truncate(ctx, static_cast<int32_t>(depth));
                    double t0 = now_ms();
                    bool ok = true;
                    if (prompt)
                        ok = tessera_decode(ctx, toks.data(), static_cast<int32_t>(n), 0) == TESSERA_OK;
                    else
                        for (long i = 0; i < n && ok; ++i)
                            ok = tessera_decode(ctx, &toks[static_cast<size_t>(i)], 1, 0) == TESSERA_OK;
                    double ms = now_ms() - t0;
                    if (!ok) {
                        std::fprintf(stderr, "error: %s\n", tessera_last_error());
                        tessera_context_free(ctx);
                        return false;
                    }
                    if (rep >= 0) r.tps.push_back(1000.0 * static_cast<double>(n) / ms);
                }
                tessera_memory mem;
                if (tessera_context_memory(ctx, &mem) == TESSERA_OK)
                    r.gpu_bytes = mem.gpu_weight_bytes + mem.gpu_kv_bytes + mem.gpu_compute_bytes;
                tessera_context_free(ctx);
                results.push_back(r);
                return true;
            };
            for (long d : depths) {
                for (long n : n_prompt)
                    if (!run("pp", n, d, true)) rc = 1;
                for (long n : n_gen)
                    if (!run("tg", n, d, false)) rc = 1;
            }
        }
    }

    char size[32], params[32];
    std::snprintf(size, sizeof size, "%.2f MiB", static_cast<double>(tessera_model_size(model)) / (1 << 20));
    std::snprintf(params, sizeof params, "%.2f M", static_cast<double>(tessera_model_n_params(model)) / 1e6);
    std::string name = std::string(tessera_model_architecture(model)) + " " + tessera_model_name(model);
    std::fprintf(stderr, "%s\n", tessera_system_info());
    if (json) {
        std::printf("[\n");
        for (size_t i = 0; i < results.size(); ++i) {
            const Result& r = results[i];
            std::printf(
                "  {\"model\": \"%s\", \"model_size\": %llu, \"model_n_params\": %llu, \"backend\": \"%s\", "
                "\"n_gpu_layers\": %d, \"n_threads\": %ld, \"test\": \"%s\", \"n_tokens\": %ld, \"n_depth\": %ld, "
                "\"gpu_bytes\": %llu, \"avg_ts\": %.3f, \"stddev_ts\": %.3f, "
                "\"samples_ts\": [",
                tessera_model_name(model), static_cast<unsigned long long>(tessera_model_size(model)),
                static_cast<unsigned long long>(tessera_model_n_params(model)), r.backend.c_str(), r.n_gpu_layers,
                r.threads, r.test.c_str(), r.n, r.depth, static_cast<unsigned long long>(r.gpu_bytes), r.mean(),
                r.stdev());
            for (size_t k = 0; k < r.tps.size(); ++k) std::printf("%s%.3f", k ? ", " : "", r.tps[k]);
            std::printf("]");
            if (r.test[0] == 't') {
                const double gbs = r.mean() * static_cast<double>(bytes_per_token) / 1e9;
                std::printf(", \"bytes_per_token\": %llu, \"avg_gbs\": %.3f",
                            static_cast<unsigned long long>(bytes_per_token), gbs);
                if (r.membw_gbs > 0)
                    std::printf(", \"membw_gbs\": %.3f, \"membw_pct\": %.1f", r.membw_gbs, 100.0 * gbs / r.membw_gbs);
            }
            std::printf("}%s\n", i + 1 < results.size() ? "," : "");
        }
        std::printf("]\n");
    } else {
        std::printf("| model | size | params | backend | ngl | threads | test | t/s |%s\n",
                    membw ? " GB/s | % of membw |" : " GB/s |");
        std::printf("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |%s\n", membw ? " ---: |" : "");
        for (const Result& r : results) {
            std::printf("| %s | %s | %s | %s | %d | %ld | %s | %.2f ± %.2f |", name.c_str(), size, params,
                        r.backend.c_str(), r.n_gpu_layers, r.threads, r.test.c_str(), r.mean(), r.stdev());
            if (r.test[0] != 't') {
                std::printf(membw ? " | |\n" : " |\n");
                continue;
            }
            const double gbs = r.mean() * static_cast<double>(bytes_per_token) / 1e9;
            std::printf(" %.1f |", gbs);
            if (membw) std::printf(" %.0f%% of %.1f |", 100.0 * gbs / r.membw_gbs, r.membw_gbs);
            std::printf("\n");
        }
        std::printf("\nGB/s: weight bytes read per generated token (%.1f MiB) x tokens/s.\n",
                    static_cast<double>(bytes_per_token) / (1 << 20));
    }
    report_peak_rss();
    tessera_model_free(model);
    return rc;
}

}  // namespace tessera_cli
