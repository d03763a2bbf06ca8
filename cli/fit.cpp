// tessera fit: where a model's layers would go and how fast it would run, without loading it.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "commands.h"
#include "common.h"
#include "tessera.h"

namespace tessera_cli {

namespace {

const char* const kFitHelp =
    "usage: tessera fit -m MODEL.gguf [options]\n"
    "\n"
    "Prints the placement that loading MODEL would choose: the layers on the GPU, the memory\n"
    "each device would hold (weights, KV cache, compute buffer) and the predicted prompt and\n"
    "generation speeds. Only the file's header is read. The predictions come from a cost\n"
    "model fed by this machine's measured speeds: the first run measures the CPU and the GPU\n"
    "for the model's weight types (a second or two) and keeps them in\n"
    "~/.cache/tessera/rates.tsv ($TESSERA_RATES_FILE overrides it).\n"
    "\n"
    "options:\n"
    "  -m, --model FILE        the GGUF model\n"
    "  -c, --ctx-size N        KV cache cells to make room for (default: the model's training\n"
    "                          context, at most 4096)\n"
    "  -b, --batch-size N      tokens per prompt step (default 512)\n"
    "  -t, --threads N         CPU threads (default: all cores)\n"
    "  -ngl, --gpu-layers L    'auto' (the default: the count loading would choose), 'all', a\n"
    "                          count, or a list such as 0,8,16,24 (one line each)\n"
    "  --device NAME[,NAME...] the GPUs (default: the first and every other of its kind)\n"
    "  -sm, --split-mode MODE  layer (default: the GPU layers spread over the GPUs) or none\n"
    "  -ts, --tensor-split A,B each GPU's share of the GPU layers (default: by free memory)\n"
    "  --gpu-mem SIZE          GPU memory the placement may fill (e.g. 1.5G; default: its free\n"
    "                          memory less 512 MiB)\n"
    "  --no-measure            predict from the speeds measured before only\n"
    "  -h, --help              show this help\n";

std::string size_text(uint64_t bytes) {
    char buf[32];
    const double b = static_cast<double>(bytes);
    if (bytes >= (uint64_t{1} << 30))
        std::snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824.0);
    else if (bytes >= (uint64_t{1} << 20))
        std::snprintf(buf, sizeof buf, "%.0f MiB", b / 1048576.0);
    else
        std::snprintf(buf, sizeof buf, "%.0f KiB", b / 1024.0);
    return buf;
}

std::string speed_text(double tps) {
    if (tps <= 0) return "unknown";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", tps);
    return buf;
}

}  // namespace

int cmd_fit(int argc, char** argv) {
    const char* model_path = nullptr;
    tessera_fit_params fp = tessera_fit_default_params();
    std::vector<long> layers = {-1};
    GpuOptions gpu;
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        if (!std::strcmp(a, "-h") || !std::strcmp(a, "--help")) {
            std::fputs(kFitHelp, stdout);
            return 0;
        }
        if (!std::strcmp(a, "--no-measure")) {
            fp.measure = 0;
            continue;
        }
        const char* v = option_value(argc, argv, &i);
        if (!v) return 2;
        long n = 0;
        if (!std::strcmp(a, "-m") || !std::strcmp(a, "--model")) {
            model_path = v;
        } else if (!std::strcmp(a, "-c") || !std::strcmp(a, "--ctx-size")) {
            if (!parse_int(a, v, 0, 1 << 24, &n)) return 2;
            fp.n_ctx = static_cast<int32_t>(n);
        } else if (!std::strcmp(a, "-b") || !std::strcmp(a, "--batch-size")) {
            if (!parse_int(a, v, 1, 1 << 16, &n)) return 2;
            fp.n_batch = static_cast<int32_t>(n);
        } else if (!std::strcmp(a, "-t") || !std::strcmp(a, "--threads")) {
            if (!parse_int(a, v, 0, TESSERA_MAX_THREADS, &n)) return 2;
            fp.n_threads = static_cast<int32_t>(n);
        } else if (!std::strcmp(a, "-ngl") || !std::strcmp(a, "--gpu-layers") || !std::strcmp(a, "--n-gpu-layers")) {
            layers.clear();
            std::string list = v;
            for (size_t start = 0; start <= list.size();) {
                const size_t comma = std::min(list.find(',', start), list.size());
                const std::string item = list.substr(start, comma - start);
                if (item == "auto") {
                    layers.push_back(-1);
                } else if (item == "all") {
                    layers.push_back(1 << 20);
                } else {
                    if (!parse_int(a, item.c_str(), 0, 1 << 20, &n)) return 2;
                    layers.push_back(n);
                }
                start = comma + 1;
            }
        } else if (int g = parse_gpu_option(a, v, &gpu, false); g != 0) {
            if (g < 0) return 2;
        } else {
            std::fprintf(stderr, "error: unknown option '%s' (see 'tessera fit --help')\n", a);
            return 2;
        }
    }
    if (!model_path) {
        std::fprintf(stderr, "error: tessera fit needs -m MODEL (see --help)\n");
        return 2;
    }
    if (!gpu.overrides.empty()) {
        std::fprintf(stderr, "error: tessera fit does not take -ot (it plans whole layers)\n");
        return 2;
    }
    fp.device = gpu.device.empty() ? nullptr : gpu.device.c_str();
    fp.split_mode = gpu.split_mode;
    fp.tensor_split = gpu.tensor_split.empty() ? nullptr : gpu.tensor_split.data();
    fp.n_tensor_split = static_cast<int32_t>(gpu.tensor_split.size());
    fp.gpu_mem = gpu.gpu_mem;

    std::vector<tessera_fit_plan> plans;
    for (long ngl : layers) {
        fp.n_gpu_layers = static_cast<int32_t>(ngl);
        tessera_fit_plan p;
        if (tessera_fit(model_path, &fp, &p) != TESSERA_OK) {
            std::fprintf(stderr, "error: %s\n", tessera_last_error());
            return 1;
        }
        plans.push_back(p);
        fp.measure = 0;  // measured once is enough
    }
    const tessera_fit_plan& first = plans.front();
    std::printf("model: %s (%d layers), context %d, prompt steps of %d tokens\n", model_path, first.n_layer,
                first.n_ctx, fp.n_batch);
    if (first.gpu[0])
        std::printf("GPU%s: %s, budget %s\n", first.n_gpus > 1 ? "s" : "", first.gpu,
                    size_text(first.gpu_budget).c_str());
    else
        std::printf("GPU: none (the CPU runs every layer)\n");
    if (plans.size() == 1) {
        const tessera_fit_plan& p = first;
        if (p.n_gpu_layers > 0)
            std::printf("plan: %d of %d layers on %s (and the output head), the rest on the CPU\n", p.n_gpu_layers,
                        p.n_layer, p.gpu);
        else
            std::printf("plan: every layer on the CPU\n");
        std::printf("  %-8s %10s %10s %10s %10s\n", "device", "weights", "KV cache", "compute", "total");
        // A row per GPU: its layers (split by layer), memory and budget.
        for (int32_t g = 0; p.n_gpu_layers > 0 && g < p.n_gpus; ++g) {
            const tessera_fit_gpu& d = p.gpus[g];
            const uint64_t total = d.weight_bytes + d.kv_bytes + d.compute_bytes;
            std::string layers = p.n_gpus > 1 ? "  " + std::to_string(d.n_layers) + " layers" : "";
            std::printf("  %-8s %10s %10s %10s %10s%s%s\n", d.name, size_text(d.weight_bytes).c_str(),
                        size_text(d.kv_bytes).c_str(), size_text(d.compute_bytes).c_str(), size_text(total).c_str(),
                        layers.c_str(), total > d.budget ? "  (over the budget)" : "");
        }
        const uint64_t cpu_total = p.cpu_weight_bytes + p.cpu_kv_bytes + p.cpu_compute_bytes + p.cpu_pinned_bytes;
        std::printf("  %-8s %10s %10s %10s %10s\n", "CPU", size_text(p.cpu_weight_bytes).c_str(),
                    size_text(p.cpu_kv_bytes).c_str(), size_text(p.cpu_compute_bytes).c_str(),
                    size_text(cpu_total).c_str());
        if (p.cpu_pinned_bytes > 0)
            std::printf(
                "  (the CPU's total holds %s of page-locked copies of its layers' weights, streamed to %s "
                "for prompts)\n",
                size_text(p.cpu_pinned_bytes).c_str(), p.gpu);
        std::printf("predicted: prompt %s tokens/s, generation %s tokens/s\n", speed_text(p.pp_tokens_per_s).c_str(),
                    speed_text(p.tg_tokens_per_s).c_str());
        return 0;
    }
    std::printf("%6s %12s %12s %5s %12s %12s\n", "ngl", "GPU memory", "CPU memory", "fits", "pp t/s", "tg t/s");
    for (const tessera_fit_plan& p : plans)
        std::printf("%6d %12s %12s %5s %12s %12s\n", p.n_gpu_layers,
                    size_text(p.gpu_weight_bytes + p.gpu_kv_bytes + p.gpu_compute_bytes).c_str(),
                    size_text(p.cpu_weight_bytes + p.cpu_kv_bytes + p.cpu_compute_bytes + p.cpu_pinned_bytes).c_str(),
                    p.fits ? "yes" : "no", speed_text(p.pp_tokens_per_s).c_str(),
                    speed_text(p.tg_tokens_per_s).c_str());
    return 0;
}

}  // namespace tessera_cli
