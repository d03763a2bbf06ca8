// What the files of op-parity cases share (cases.cpp gathers them all).
#pragma once

#include <string>
#include <vector>

#include "tests/ops/harness.h"

namespace tessera::test {

std::string tname(DType t);

// An attention mask [n_kv, n_q]: query q at position first_pos + q sees keys up to its own
// position, and with window > 0 only the last `window` of them; hidden entries are -inf.
std::vector<double> causal_mask(int64_t n_kv, int64_t n_q, int64_t first_pos, int64_t window);

// cases_attention.cpp: flash attention over every cache type, decoding and prompt shapes.
void add_attention(std::vector<OpCase>& cases);

}  // namespace tessera::test
