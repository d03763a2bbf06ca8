// The tessera command's subcommands. Each lives in its own file and uses only tessera.h.
#pragma once

namespace tessera_cli {

// Each returns the process exit code: 0 on success, 1 on a failure it reported, 2 on a
// usage error.
int cmd_inspect(int argc, char** argv);
int cmd_template(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_chat(int argc, char** argv);
int cmd_perplexity(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_fit(int argc, char** argv);
#ifdef TESSERA_HAVE_SERVER
int cmd_serve(int argc, char** argv);
#endif

}  // namespace tessera_cli
