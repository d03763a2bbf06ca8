// `tessera run`: generate a continuation of a prompt, streaming only the generated text
// to stdout; load time and speeds go to stderr at the end.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "commands.h"
#include "common.h"
#include "tessera.h"

namespace tessera_cli {
namespace {

const char* kRunHelp =
    "usage: tessera run -m MODEL.gguf -p PROMPT [options]\n"
    "\n"
    "Generates a continuation of PROMPT and streams it to stdout (nothing else goes\n"
    "there). Load time and prompt/generation speeds are printed to stderr at the end.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE        the GGUF model\n"
    "  -p, --prompt TEXT       the prompt (control-token text such as <|im_start|> is parsed)\n"
    "  -f, --file FILE         read the prompt from FILE instead\n"
    "  -n, --n-predict N       tokens to generate (default 128; -1: until the end of text\n"
    "                          or a full context)\n"
    "  -c, --ctx-size N        context size in tokens (default: the model's, at most 4096)\n"
    "  -b, --batch-size N      prompt tokens per forward pass (default 512)\n"
    "  -t, --threads N         CPU threads (default: all cores)\n"
    "%s"
    "  --temp T                temperature (default 0.8; 0 is greedy)\n"
    "  --top-k K               keep the K most likely tokens (default 40; 0 off)\n"
    "  --top-p P               keep the smallest set with probability P (default 0.95; 1 off)\n"
    "  --min-p P               drop tokens below P x the top probability (default 0.05; 0 off)\n"
    "  --repeat-penalty R      penalize the last 64 tokens (default 1.0: off)\n"
    "  --repeat-last-n N       how many recent tokens the penalties see (default 64)\n"
    "  --presence-penalty P    (default 0)\n"
    "  --frequency-penalty P   (default 0)\n"
    "  --seed S                sampling seed (default: random; the seed used is printed)\n"
    "  --no-parse-special      keep control-token text in the prompt plain text (for\n"
    "                          untrusted input: it cannot inject <|im_end|> and the like)\n"
    "  --ignore-eos            keep generating past end-of-text and end-of-turn tokens\n"
    "  -h, --help              show this help\n";

struct RunOptions {
    const char* model = nullptr;
    std::string prompt;
    bool have_prompt = false;
    long n_predict = 128;
    long n_ctx = 0, n_batch = 512, n_threads = 0;
    bool have_seed = false;
    bool ignore_eos = false;
    bool parse_special = true;
    tessera_sampler_params sp = tessera_sampler_default_params();
    GpuOptions gpu;
};

// Returns 0 to go on, else the exit code.
int parse(int argc, char** argv, RunOptions& o) {
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        auto is = [&](const char* s1, const char* s2 = nullptr) {
            return !std::strcmp(a, s1) || (s2 && !std::strcmp(a, s2));
        };
        const char* v = nullptr;
        if (is("-h", "--help")) {
            std::printf(kRunHelp, kGpuHelp);
            return -1;
        } else if (is("--ignore-eos")) {
            o.ignore_eos = true;
            continue;
        } else if (is("--no-parse-special")) {
            o.parse_special = false;
            continue;
        } else if (parse_load_flag(a, &o.gpu)) {
            continue;
        }
        if (!(v = option_value(argc, argv, &i))) return 2;
        if (is("-m", "--model"))
            o.model = v;
        else if (is("-p", "--prompt"))
            o.prompt = v, o.have_prompt = true;
        else if (is("-f", "--file")) {
            if (!read_file(v, &o.prompt)) return 1;
            o.have_prompt = true;
        } else if (is("-n", "--n-predict")) {
            if (!parse_int(a, v, -1, 1 << 30, &o.n_predict)) return 2;
        } else if (is("-c", "--ctx-size")) {
            if (!parse_int(a, v, 0, 1 << 24, &o.n_ctx)) return 2;
        } else if (is("-b", "--batch-size")) {
            if (!parse_int(a, v, 1, 1 << 20, &o.n_batch)) return 2;
        } else if (is("-t", "--threads")) {
            if (!parse_int(a, v, 0, TESSERA_MAX_THREADS, &o.n_threads)) return 2;
        } else if (int r = parse_sampling_option(a, v, &o.sp, &o.have_seed); r != 0) {
            if (r < 0) return 2;
        } else if (int g = parse_gpu_option(a, v, &o.gpu); g != 0) {
            if (g < 0) return 2;
        } else {
            std::fprintf(stderr, "error: unknown option '%s' (see 'tessera run --help')\n", a);
            return 2;
        }
    }
    if (!o.model || !o.have_prompt) {
        std::fprintf(stderr, "error: tessera run needs -m MODEL and -p PROMPT (see 'tessera run --help')\n");
        return 2;
    }
    return 0;
}

}  // namespace

int cmd_run(int argc, char** argv) {
    RunOptions o;
    if (int rc = parse(argc, argv, o)) return rc < 0 ? 0 : rc;
    if (!o.have_seed) o.sp.seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());

    o.gpu.plan_n_ctx = static_cast<int32_t>(o.n_ctx);
    o.gpu.plan_threads = static_cast<int32_t>(o.n_threads);
    tessera_model* model = load_model_or_report(o.model, o.gpu);
    if (!model) return 1;
    int rc = 1;
    tessera_context* ctx = nullptr;
    tessera_sampler* smp = nullptr;
    tessera_detokenizer* detok = nullptr;
    std::vector<int32_t> prompt;
    tessera_context_params cp = tessera_context_default_params();
    cp.n_ctx = static_cast<int32_t>(o.n_ctx);
    cp.n_batch = static_cast<int32_t>(o.n_batch);
    cp.n_threads = static_cast<int32_t>(o.n_threads);
    int64_t generated = 0;
    tessera_timings prompt_t{};

    if (!tokenize(model, o.prompt, true, o.parse_special, &prompt)) goto done;
    if (prompt.empty()) {
        std::fprintf(stderr, "error: the prompt is empty\n");
        goto done;
    }
    if (tessera_context_new(model, &cp, &ctx) != TESSERA_OK || tessera_sampler_new(&o.sp, &smp) != TESSERA_OK ||
        tessera_detokenizer_new(model, &detok) != TESSERA_OK) {
        std::fprintf(stderr, "error: %s\n", tessera_last_error());
        goto done;
    }
    if (static_cast<int32_t>(prompt.size()) >= tessera_context_n_ctx(ctx)) {
        std::fprintf(stderr,
                     "error: the prompt is %zu tokens; it does not fit in the context of %d tokens (raise -c)\n",
                     prompt.size(), tessera_context_n_ctx(ctx));
        goto done;
    }
    if (tessera_decode(ctx, prompt.data(), static_cast<int32_t>(prompt.size()), 0) != TESSERA_OK) {
        std::fprintf(stderr, "error: %s\n", tessera_last_error());
        goto done;
    }
    for (int32_t t : prompt) tessera_sampler_accept(smp, t);
    // The prompt's timings (a one-token prompt too), then the generation's on their own.
    tessera_context_timings(ctx, &prompt_t);
    tessera_context_reset_timings(ctx);

    while (o.n_predict < 0 || generated < o.n_predict) {
        int32_t tok = 0;
        if (tessera_sampler_sample(smp, ctx, -1, &tok) != TESSERA_OK) {
            std::fprintf(stderr, "error: %s\n", tessera_last_error());
            goto done;
        }
        if (!o.ignore_eos && tessera_token_is_eog(model, tok)) break;
        tessera_sampler_accept(smp, tok);
        const char* text = nullptr;
        size_t len = 0;
        if (tessera_detokenizer_push(detok, tok, &text, &len) == TESSERA_OK && len) {
            std::fwrite(text, 1, len, stdout);
            std::fflush(stdout);
        }
        ++generated;
        if (tessera_context_n_past(ctx) >= tessera_context_n_ctx(ctx)) {
            std::fprintf(stderr, "\n[context of %d tokens is full]\n", tessera_context_n_ctx(ctx));
            break;
        }
        if (o.n_predict >= 0 && generated >= o.n_predict) break;
        if (tessera_decode(ctx, &tok, 1, 0) != TESSERA_OK) {
            std::fprintf(stderr, "error: %s\n", tessera_last_error());
            goto done;
        }
    }
    {
        const char* text = nullptr;
        size_t len = 0;
        if (tessera_detokenizer_flush(detok, &text, &len) == TESSERA_OK && len) std::fwrite(text, 1, len, stdout);
        std::fflush(stdout);
        tessera_timings t{};
        tessera_context_timings(ctx, &t);
        const double prompt_ms = prompt_t.prompt_ms + prompt_t.gen_ms;
        std::fprintf(stderr,
                     "\n\nload: %.0f ms | prompt: %zu tokens, %.1f tokens/s | generation: %lld tokens, "
                     "%.1f tokens/s | seed %llu\n",
                     t.load_ms, prompt.size(),
                     prompt_ms > 0 ? 1000.0 * static_cast<double>(prompt.size()) / prompt_ms : 0.0,
                     static_cast<long long>(generated),
                     t.gen_ms > 0 ? 1000.0 * static_cast<double>(t.gen_tokens) / t.gen_ms : 0.0,
                     static_cast<unsigned long long>(o.sp.seed));
        rc = 0;
    }
done:
    tessera_detokenizer_free(detok);
    tessera_sampler_free(smp);
    tessera_context_free(ctx);
    tessera_model_free(model);
    return rc;
}

}  // namespace tessera_cli
