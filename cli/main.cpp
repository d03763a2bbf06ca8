// The `tessera` command: dispatches to one subcommand per file.
#include <cstdio>
#include <cstring>

#include "commands.h"
#include "tessera.h"

namespace {

struct Command {
    const char* name;
    int (*run)(int argc, char** argv);
    const char* summary;
};

const Command kCommands[] = {
    {"inspect", tessera_cli::cmd_inspect, "print a GGUF file's metadata and tensors"},
    {"template", tessera_cli::cmd_template, "render a chat template with a JSON request"},
    {"chat", tessera_cli::cmd_chat, "chat with a model in the terminal (the default model without -m)"},
    {"run", tessera_cli::cmd_run, "generate text from a prompt"},
    {"perplexity", tessera_cli::cmd_perplexity, "measure a model's perplexity on a text file"},
    {"bench", tessera_cli::cmd_bench, "measure prompt and generation speed (tokens/s)"},
    {"fit", tessera_cli::cmd_fit, "show where a model's layers would go and its predicted speed"},
    {"quantize", tessera_cli::cmd_quantize, "convert a model to another storage type (Q4_K_M, Q8_0, ...)"},
    {"tokenize", tessera_cli::cmd_tokenize, "turn text into token ids with a model's tokenizer"},
#ifdef TESSERA_HAVE_SERVER
    {"serve", tessera_cli::cmd_serve, "serve a model over an OpenAI-compatible HTTP API"},
#endif
};

void print_usage(std::FILE* out) {
    std::fprintf(out,
                 "tessera %s: a CPU-first LLM inference runtime\n\n"
                 "usage: tessera <command> [options]\n\ncommands:\n",
                 tessera_version());
    for (const Command& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
    std::fprintf(out, "\n'tessera <command> --help' describes a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    const char* name = argv[1];
    if (!std::strcmp(name, "--help") || !std::strcmp(name, "-h") || !std::strcmp(name, "help")) {
        print_usage(stdout);
        return 0;
    }
    if (!std::strcmp(name, "--version") || !std::strcmp(name, "version")) {
        std::printf("%s\n", tessera_system_info());
        return 0;
    }
    for (const Command& c : kCommands)
        if (!std::strcmp(name, c.name)) return c.run(argc - 1, argv + 1);
    std::fprintf(stderr, "error: unknown command '%s' (try 'tessera --help')\n", name);
    return 2;
}
