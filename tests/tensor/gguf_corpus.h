// GGUF test files made by our own code: one valid sample that uses every metadata value
// type and several tensor types, and a corpus of malformed files, each a class of damage
// a reader must refuse. Shared by the reader's unit tests, the CLI test and the fuzzer's
// seed corpus (through the gguf-corpus tool).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::test {

struct CorpusCase {
    std::string name;            // a file name: what is wrong
    std::vector<uint8_t> bytes;  // the whole file
    std::string expected;        // a fragment the reader's error message must contain
};

// A valid GGUF v3 file: every value type, arrays of each, nested arrays, and tensors of
// types F32, F16, BF16, Q4_0, Q8_0 and Q4_K, with a non-default alignment of 64.
// Its last tensor ends at the last byte of the file.
std::vector<uint8_t> valid_sample_gguf();

// The malformed files. Each must fail to open with an error containing `expected`.
std::vector<CorpusCase> malformed_gguf_corpus();

}  // namespace tessera::test
