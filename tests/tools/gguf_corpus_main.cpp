// gguf-corpus DIR: writes the valid sample (valid-sample.gguf) and every malformed file
// of the test corpus (NAME.gguf, with NAME.expected holding the error fragment) to DIR.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/tensor/gguf_corpus.h"

namespace {
bool write(const std::filesystem::path& p, const void* data, size_t n) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
    return static_cast<bool>(f);
}
}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: gguf-corpus DIR\n");
        return 2;
    }
    std::filesystem::path dir = argv[1];
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    auto sample = tessera::test::valid_sample_gguf();
    bool ok = write(dir / "valid-sample.gguf", sample.data(), sample.size());
    for (const auto& c : tessera::test::malformed_gguf_corpus()) {
        ok = ok && write(dir / (c.name + ".gguf"), c.bytes.data(), c.bytes.size());
        ok = ok && write(dir / (c.name + ".expected"), c.expected.data(), c.expected.size());
    }
    if (!ok) {
        std::fprintf(stderr, "error: cannot write to %s\n", argv[1]);
        return 1;
    }
    return 0;
}
