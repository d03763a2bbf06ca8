// What the files of op-parity cases share (cases.cpp gathers them all).
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "tests/ops/harness.h"

namespace tessera::test {

std::string tname(DType t);
// "2x3x4"
std::string dims(std::initializer_list<int64_t> ne);
// The error bound of products of weights of type t (activations may be rounded to F16 or
// Q8 blocks; an indexing or layout error gives ~1).
double weight_bound(DType t);

// An attention mask [n_kv, n_q]: query q at position first_pos + q sees keys up to its own
// position, and with window > 0 only the last `window` of them; hidden entries are -inf.
std::vector<double> causal_mask(int64_t n_kv, int64_t n_q, int64_t first_pos, int64_t window);

// cases_attention.cpp: flash attention over every cache type, decoding and prompt shapes.
void add_attention(std::vector<OpCase>& cases);
// cases_decode.cpp: a decoding step's nodes that a GPU runs fused (norms, gated activations
// and the products around them).
void add_decode_steps(std::vector<OpCase>& cases);

}  // namespace tessera::test
