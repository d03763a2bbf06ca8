// Helpers the subcommands share: option parsing, model loading with progress, tokenizing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tessera.h"

namespace tessera_cli {

// Strict number parsing: the whole string must be a number in range. On failure prints
// "error: OPTION needs ..." and returns false.
bool parse_int(const char* option, const char* text, long min, long max, long* out);
bool parse_float(const char* option, const char* text, double min, double max, double* out);

// Sampling options shared by run and chat (--temp, --top-k, --top-p, --min-p,
// --repeat-penalty, --repeat-last-n, --presence-penalty, --frequency-penalty, --seed).
// Returns 1 when `option` was one of them and its value parsed, 0 when it is not a
// sampling option, -1 on a bad value (the error is printed). *seeded is set by --seed.
int parse_sampling_option(const char* option, const char* value, tessera_sampler_params* sp, bool* seeded);

// Where the weights go: -ngl / --gpu-layers N|all|auto and --device NAME.
struct GpuOptions {
    int32_t n_gpu_layers = -1;                 // -1: auto (all that fit when there is a GPU)
    std::string device;                        // empty: the first GPU (and the others of its kind, split by layer)
    int32_t split_mode = TESSERA_SPLIT_LAYER;  // -sm
    std::vector<float> tensor_split;           // -ts: each GPU's share of the GPU layers
    std::vector<std::string> overrides;        // -ot PATTERN=DEVICE, in order
    uint64_t gpu_mem = 0;                      // --gpu-mem: bytes the automatic placement may fill (0: free memory)
    bool repack = true;                        // -nr/--no-repack clears it: weights stay in the file's layout
    int32_t plan_n_ctx = 0;  // the context and CPU threads -ngl auto plans for (the command's -c and -t)
    int32_t plan_threads = 0;
};
// Returns true when `option` is one of the loading flags that take no value (-nr, --no-repack)
// and records it.
bool parse_load_flag(const char* option, GpuOptions* g);
// Returns 1 when `option` was one of the GPU options (-ngl, --device, -ot/--override-tensor,
// --gpu-mem) and its value parsed, 0 when it is not one, -1 on a bad value (the error is
// printed). With `layers` false, -ngl is left to the caller (bench takes a list); --device
// is taken either way.
int parse_gpu_option(const char* option, const char* value, GpuOptions* g, bool layers = true);
// The help lines of the GPU options, for the commands that take them.
extern const char* const kGpuHelp;

// The next argument of an option, or an error message and nullptr.
const char* option_value(int argc, char** argv, int* i);

// Loads a model with its weights, showing progress on stderr when it is a terminal, and
// says on stderr which layers went to a GPU. On failure prints "error: ..." and returns
// nullptr.
tessera_model* load_model_or_report(const char* path, const GpuOptions& gpu = {});

// Tokenizes `text`; on failure prints "error: ..." and returns false.
bool tokenize(const tessera_model* model, const std::string& text, bool add_special, bool parse_special,
              std::vector<int32_t>* out);

// Reads a whole file's bytes; on failure prints "error: ..." and returns false.
bool read_file(const char* path, std::string* out);

// How a model's conversations are written: its chat template (from template_file when not
// empty, else the model's metadata, else Gemma's turn format for a vocabulary with its
// markers, else ChatML), the BOS and EOS texts the template may use, and the tokens that
// end an assistant turn. `fallback` is a warning (a printf format taking the model path)
// when no template was found, else null. False, having printed why, when the file
// cannot be read.
struct ChatFormat {
    std::string tmpl, bos, eos;
    std::vector<int32_t> end_ids;
    const char* fallback = nullptr;
};
bool chat_format(const tessera_model* model, const std::string& template_file, ChatFormat* out);
// A token's text as the vocabulary stores it ("" for an id out of range).
std::string token_text(const tessera_model* model, int32_t token);

// Appends `s` as the inside of a JSON string: control characters escaped, invalid UTF-8
// bytes replaced by U+FFFD so the output is always valid JSON.
void json_escape(std::string& out, const char* s, size_t n);
// Appends `s` as a quoted JSON string.
void json_quote(std::string& out, const std::string& s);

// Where scripts/get-model.sh puts model NAME: $TESSERA_MODELS or ~/.cache/tessera/models.
std::string default_model_path(const std::string& name);

}  // namespace tessera_cli
