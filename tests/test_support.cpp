// Helpers shared by the tests.
#include "tests/test_support.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>

namespace tessera::test {

std::optional<std::filesystem::path> test_data_dir() {
    namespace fs = std::filesystem;
    for (const char* var : {"TESSERA_TEST_DATA", "TESSERA_TEST_DATA_DEFAULT"}) {
        const char* v = std::getenv(var);
        if (v && *v && fs::is_directory(v)) return fs::path(v);
    }
    return std::nullopt;
}

void skip_because(const std::string& why) {
    std::fprintf(stderr, "SKIPPED: %s\n", why.c_str());
}

ScratchDir::ScratchDir() {
    namespace fs = std::filesystem;
    std::random_device rd;
    for (int attempt = 0; attempt < 100; ++attempt) {
        fs::path p = fs::temp_directory_path() / ("tessera-test-" + std::to_string(rd()));
        if (fs::create_directory(p)) {
            path_ = p;
            return;
        }
    }
    throw std::runtime_error("cannot create a scratch directory");
}

ScratchDir::~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::vector<uint8_t> read_file_bytes(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + p.string());
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void write_file_bytes(const std::filesystem::path& p, const std::vector<uint8_t>& bytes) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!f) throw std::runtime_error("cannot write " + p.string());
}

}  // namespace tessera::test
