// Converting a GGUF model to another storage type: `tessera quantize` and
// tessera_quantize(). Every matrix is dequantized to F32 and quantized again with the
// reference quantizers of tensor/quant; vectors (norms, biases) stay F32; metadata is
// copied and general.file_type updated.
//
// The named mixes are the ones users know from llama.cpp: "Q4_K_M" stores most matrices
// as Q4_K but gives the value projections and FFN down projections of the first and last
// eighth of the layers (and every third layer between) Q6_K, and the output head Q6_K.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/dtype.h"

namespace tessera {

struct QuantMix {
    const char* name;      // as the user spells it: "Q4_K_M"
    DType base;            // most matrices
    DType more_bits;       // attn_v / ffn_down in the favoured layers (= base: no rule)
    DType output;          // output head (and a tied embedding)
    uint32_t file_type;    // general.file_type (llama.cpp's numbering)
    const char* summary;
};

// Every mix `tessera quantize` accepts, in the order --help lists them.
const std::vector<QuantMix>& quant_mixes();
// The mix named `name` (case-insensitive), or nullptr.
const QuantMix* find_quant_mix(std::string_view name);

// The storage type the mix gives one tensor. `layer` is the block index parsed from
// "blk.N." (-1 for global tensors); `has_output` says whether the model has a separate
// output.weight (if not, token_embd.weight is the output head too). With `pure`, every
// matrix gets the base type. Falls back to a type whose block fits ne[0] when the
// chosen one does not (a k-quant needs rows that are multiples of 256).
DType choose_quant_type(const QuantMix& mix, std::string_view name, int n_dims, const int64_t* ne,
                        int layer, int n_layer, bool has_output, bool pure);

struct QuantizeOptions {
    std::string type = "Q4_K_M";
    int n_threads = 0;  // 0: all cores
    bool pure = false;
    // Called after each tensor with the fraction done; returning false cancels.
    std::function<bool(float)> progress;
};

struct QuantizeReport {
    uint64_t bytes_in = 0, bytes_out = 0;
    int64_t n_tensors = 0, n_quantized = 0;
    double seconds = 0;
};

// Reads `in_path`, writes `out_path` (atomically: a failure leaves no partial file and
// never touches the input). Throws tessera::Error: unknown type, unreadable or malformed
// input, a tensor type with no reference conversion, cancelled, or a write failure.
// `in_path` and `out_path` must differ.
QuantizeReport quantize_file(const std::string& in_path, const std::string& out_path, const QuantizeOptions& opt);

}  // namespace tessera
