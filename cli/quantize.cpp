// `tessera quantize`: converts a GGUF model to another storage type or mix.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "commands.h"
#include "common.h"
#include "tessera.h"

namespace tessera_cli {
namespace {

const char* kQuantizeHelp =
    "usage: tessera quantize [options] IN.gguf OUT.gguf TYPE\n"
    "\n"
    "Writes a copy of IN.gguf with its matrices stored as TYPE. Norms and biases stay F32;\n"
    "metadata is copied. OUT.gguf appears only when the conversion succeeded.\n"
    "\n"
    "types:\n"
    "  Q4_0, Q4_1, Q5_0, Q5_1   legacy blocks of 32 (4.5, 5, 5.5, 6 bits per weight)\n"
    "  Q8_0                     8.5 bits per weight, nearly lossless\n"
    "  Q2_K, Q3_K_M             small k-quant mixes (about 2.6 and 3.9 bits per weight)\n"
    "  Q4_K_S, Q5_K_S           Q4_K / Q5_K everywhere but the output head (Q6_K)\n"
    "  Q4_K_M, Q5_K_M           the usual mixes: Q6_K for the output head and for attn_v and\n"
    "                           ffn_down in the first and last eighth of the layers and\n"
    "                           every third layer between\n"
    "  Q6_K                     6.6 bits per weight\n"
    "  F16, BF16, F32           plain floats\n"
    "Except for Q8_0 and the floats, the output head is stored as Q6_K; a matrix whose rows\n"
    "do not fit the type's block gets the nearest legacy type (or F16).\n"
    "\n"
    "options:\n"
    "  -t, --threads N   threads (default: all cores)\n"
    "  --pure            every matrix gets the base type, no mix rules\n"
    "  -q, --quiet       no progress line\n"
    "  -h, --help        show this help\n";

int32_t show_progress(float f, void* user) {
    const bool* quiet = static_cast<const bool*>(user);
    if (!*quiet) std::fprintf(stderr, "\rquantizing: %5.1f%%", 100.0 * f);
    return 1;
}

}  // namespace

int cmd_quantize(int argc, char** argv) {
    const char* positional[3] = {};
    int n_pos = 0;
    long threads = 0;
    bool pure = false, quiet = false;
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        if (!std::strcmp(a, "-h") || !std::strcmp(a, "--help")) {
            std::fputs(kQuantizeHelp, stdout);
            return 0;
        }
        if (!std::strcmp(a, "--pure")) {
            pure = true;
        } else if (!std::strcmp(a, "-q") || !std::strcmp(a, "--quiet")) {
            quiet = true;
        } else if (!std::strcmp(a, "-t") || !std::strcmp(a, "--threads")) {
            const char* v = option_value(argc, argv, &i);
            if (!v || !parse_int(a, v, 1, TESSERA_MAX_THREADS, &threads)) return 2;
        } else if (a[0] == '-' && a[1] != '\0') {
            std::fprintf(stderr, "error: unknown option '%s' (see 'tessera quantize --help')\n", a);
            return 2;
        } else if (n_pos < 3) {
            positional[n_pos++] = a;
        } else {
            std::fprintf(stderr, "error: too many arguments (usage: tessera quantize IN.gguf OUT.gguf TYPE)\n");
            return 2;
        }
    }
    if (n_pos != 3) {
        std::fprintf(stderr, "error: tessera quantize needs IN.gguf OUT.gguf TYPE (see --help)\n");
        return 2;
    }
    tessera_quantize_params p = tessera_quantize_default_params();
    p.type = positional[2];
    p.n_threads = static_cast<int32_t>(threads);
    p.pure = pure ? 1 : 0;
    p.progress = show_progress;
    p.progress_user = &quiet;
    const auto t0 = std::chrono::steady_clock::now();
    const tessera_status st = tessera_quantize(positional[0], positional[1], &p);
    if (!quiet) std::fprintf(stderr, "\n");
    if (st != TESSERA_OK) {
        std::fprintf(stderr, "error: %s\n", tessera_last_error());
        return 1;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::error_code ec;
    const double in_mib = static_cast<double>(std::filesystem::file_size(positional[0], ec)) / (1 << 20);
    const double out_mib = static_cast<double>(std::filesystem::file_size(positional[1], ec)) / (1 << 20);
    std::printf("%s: %.1f MiB -> %s %s: %.1f MiB in %.1f s\n", positional[0], in_mib, positional[1], positional[2],
                out_mib, s);
    return 0;
}

}  // namespace tessera_cli
