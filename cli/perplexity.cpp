// `tessera perplexity`: the method of llama.cpp's perplexity tool, so figures compare:
// tokenize the whole text; cut it into chunks of N tokens; put BOS at the start of each
// chunk when the model adds BOS; score only the second half of each chunk.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "commands.h"
#include "common.h"
#include "tessera.h"

namespace tessera_cli {
namespace {

const char* kPerplexityHelp =
    "usage: tessera perplexity -m MODEL.gguf -f TEXT [options]\n"
    "\n"
    "Computes the perplexity of TEXT the way llama.cpp's perplexity tool does: the\n"
    "whole text is tokenized and cut into chunks of N tokens (BOS first when the model\n"
    "adds BOS), and the second half of each chunk is scored. Prints the running\n"
    "perplexity after each chunk and a final line\n"
    "  Final estimate: PPL = X +/- Y\n"
    "\n"
    "options:\n"
    "  -m, --model FILE     the GGUF model\n"
    "  -f, --file FILE      the text\n"
    "  -c, --ctx-size N     tokens per chunk (default 512)\n"
    "  --chunks K           score at most K chunks (default: all)\n"
    "  -b, --batch-size N   tokens per forward pass (default: the chunk size, at most 512)\n"
    "  -t, --threads N      CPU threads (default: all cores)\n"
    "%s"
    "  -h, --help           show this help\n";

}  // namespace

int cmd_perplexity(int argc, char** argv) {
    const char* model_path = nullptr;
    const char* text_path = nullptr;
    long n_ctx = 512, chunks = -1, n_batch = 0, n_threads = 0;
    GpuOptions gpu;
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        if (!std::strcmp(a, "-h") || !std::strcmp(a, "--help")) {
            std::printf(kPerplexityHelp, kGpuHelp);
            return 0;
        }
        if (parse_load_flag(a, &gpu)) continue;
        const char* v = option_value(argc, argv, &i);
        if (!v) return 2;
        if (!std::strcmp(a, "-m") || !std::strcmp(a, "--model")) model_path = v;
        else if (!std::strcmp(a, "-f") || !std::strcmp(a, "--file")) text_path = v;
        else if (!std::strcmp(a, "-c") || !std::strcmp(a, "--ctx-size")) {
            if (!parse_int(a, v, 16, 1 << 20, &n_ctx)) return 2;
        } else if (!std::strcmp(a, "--chunks")) {
            if (!parse_int(a, v, 1, 1 << 30, &chunks)) return 2;
        } else if (!std::strcmp(a, "-b") || !std::strcmp(a, "--batch-size")) {
            if (!parse_int(a, v, 1, 1 << 20, &n_batch)) return 2;
        } else if (!std::strcmp(a, "-t") || !std::strcmp(a, "--threads")) {
            if (!parse_int(a, v, 0, TESSERA_MAX_THREADS, &n_threads)) return 2;
        } else if (int g = parse_gpu_option(a, v, &gpu); g != 0) {
            if (g < 0) return 2;
        } else {
            std::fprintf(stderr, "error: unknown option '%s' (see 'tessera perplexity --help')\n", a);
            return 2;
        }
    }
    if (!model_path || !text_path) {
        std::fprintf(stderr, "error: tessera perplexity needs -m MODEL and -f TEXT (see --help)\n");
        return 2;
    }
    std::string text;
    if (!read_file(text_path, &text)) return 1;
    gpu.plan_n_ctx = static_cast<int32_t>(n_ctx);
    gpu.plan_threads = static_cast<int32_t>(n_threads);
    tessera_model* model = load_model_or_report(model_path, gpu);
    if (!model) return 1;

    int rc = 1;
    tessera_context* ctx = nullptr;
    std::vector<int32_t> tokens, probe;
    tessera_context_params cp = tessera_context_default_params();
    cp.n_ctx = static_cast<int32_t>(n_ctx);
    cp.n_batch = static_cast<int32_t>(n_batch > 0 ? n_batch : std::min<long>(n_ctx, 512));
    cp.n_threads = static_cast<int32_t>(n_threads);
    const int32_t n_vocab = tessera_vocab_size(model);
    const int32_t bos = tessera_token_bos(model);
    bool add_bos = false;
    long n_chunks = 0;
    double nll = 0, nll2 = 0;
    long count = 0;

    if (!tokenize(model, text, true, false, &tokens)) goto done;
    // Whether the model adds BOS: tokenizing nothing with specials on says.
    if (!tokenize(model, "", true, false, &probe)) goto done;
    add_bos = !probe.empty() && probe.front() == bos;
    n_chunks = static_cast<long>(tokens.size()) / n_ctx;
    if (chunks > 0 && chunks < n_chunks) n_chunks = chunks;
    if (n_chunks == 0) {
        std::fprintf(stderr, "error: %s has %zu tokens; a chunk needs %ld (lower -c)\n", text_path, tokens.size(),
                     n_ctx);
        goto done;
    }
    if (tessera_context_new(model, &cp, &ctx) != TESSERA_OK) {
        std::fprintf(stderr, "error: %s\n", tessera_last_error());
        goto done;
    }
    std::fprintf(stderr, "perplexity: %zu tokens, %ld chunks of %ld, scoring the second half of each\n",
                 tokens.size(), n_chunks, n_ctx);
    for (long c = 0; c < n_chunks; ++c) {
        std::vector<int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
        if (add_bos) chunk[0] = bos;
        tessera_context_truncate(ctx, 0);
        if (tessera_decode(ctx, chunk.data(), static_cast<int32_t>(n_ctx), 1) != TESSERA_OK) {
            std::fprintf(stderr, "error: %s\n", tessera_last_error());
            goto done;
        }
        for (long j = n_ctx / 2; j < n_ctx - 1; ++j) {
            const float* l = tessera_get_logits(ctx, static_cast<int32_t>(j));
            float mx = l[0];
            for (int32_t v = 1; v < n_vocab; ++v) mx = std::max(mx, l[v]);
            double sum = 0;
            for (int32_t v = 0; v < n_vocab; ++v) sum += std::exp(static_cast<double>(l[v] - mx));
            // Scored against the text's own next token, not the BOS that replaced it.
            const int32_t next = tokens[static_cast<size_t>(c * n_ctx + j + 1)];
            const double x = mx + std::log(sum) - l[next];
            nll += x;
            nll2 += x * x;
            ++count;
        }
        std::printf("[%ld]%.4f,", c + 1, std::exp(nll / static_cast<double>(count)));
        std::fflush(stdout);
    }
    {
        const double mean = nll / static_cast<double>(count);
        const double var = nll2 / static_cast<double>(count) - mean * mean;
        const double ppl = std::exp(mean);
        const double err = count > 1 ? ppl * std::sqrt(std::max(0.0, var) / static_cast<double>(count - 1)) : 0.0;
        std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", ppl, err);
        tessera_timings t{};
        tessera_context_timings(ctx, &t);
        std::fprintf(stderr, "perplexity: %lld tokens in %.1f s (%.1f tokens/s)\n",
                     static_cast<long long>(t.prompt_tokens), t.prompt_ms / 1000.0,
                     t.prompt_ms > 0 ? 1000.0 * static_cast<double>(t.prompt_tokens) / t.prompt_ms : 0.0);
        rc = 0;
    }
done:
    tessera_context_free(ctx);
    tessera_model_free(model);
    return rc;
}

}  // namespace tessera_cli
