// random-models DIR: writes every random-weight test model to DIR/NAME.gguf and prints
// NAME, fingerprint and the reference prompt's token ids, one model per line (the
// input of tests/models/llama_reference.py).
#include <cstdio>
#include <filesystem>

#include "tests/models/random_model.h"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: random-models DIR\n");
        return 2;
    }
    std::filesystem::create_directories(argv[1]);
    for (const auto& c : tessera::test::random_llama_configs()) {
        std::string path = std::string(argv[1]) + "/" + c.name + ".gguf";
        tessera::test::write_random_llama(c, path);
        std::printf("%s %016llx", c.name.c_str(), static_cast<unsigned long long>(tessera::test::file_fingerprint(path)));
        for (int32_t t : tessera::test::reference_tokens(c)) std::printf(" %d", t);
        std::printf("\n");
    }
    return 0;
}
