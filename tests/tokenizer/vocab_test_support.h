// Helpers for the tokenizer tests: where the shared vocabularies are, loading one.
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "runtime/vocab/vocab.h"
#include "tensor/gguf.h"
#include "tests/test_support.h"

namespace tessera::test {

// The shared vocabularies: $TESSERA_TEST_DATA (or ctest's default), else ../shared/data
// beside the source tree, so running the test binary by hand finds them too.
inline std::optional<std::filesystem::path> vocab_dir() {
    std::vector<std::filesystem::path> candidates;
    if (auto d = test::test_data_dir()) candidates.push_back(*d);
#ifdef TESSERA_SOURCE_DIR
    candidates.push_back(std::filesystem::path(TESSERA_SOURCE_DIR) / ".." / "shared" / "data");
#endif
    for (const auto& d : candidates)
        if (std::filesystem::exists(d / "vocab" / "ggml-vocab-gpt-2.gguf")) return d / "vocab";
    return std::nullopt;
}

inline std::string read_text(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    REQUIRE_MESSAGE(f.good(), "cannot read " << p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

struct Loaded {
    std::unique_ptr<gguf::File> file;
    std::unique_ptr<vocab::Vocab> vocab;
};

inline Loaded load(const std::filesystem::path& path, bool allow_unknown_pre = false) {
    Loaded l;
    l.file = gguf::File::open(path.string());
    vocab::LoadOptions o;
    o.allow_unknown_pre = allow_unknown_pre;
    l.vocab = vocab::Vocab::load(*l.file, o);
    return l;
}

inline std::string ids_to_string(const std::vector<int32_t>& v) {
    std::string s;
    for (int32_t id : v) {
        if (!s.empty()) s += ' ';
        s += std::to_string(id);
    }
    return s;
}

}  // namespace tessera::test
