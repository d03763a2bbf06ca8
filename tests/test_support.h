// Helpers shared by the tests: where the shared test data lives, scratch files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace tessera::test {

// The shared test data folder: $TESSERA_TEST_DATA, else ../shared/data beside the
// source tree. Empty when absent; callers skip with a message that says so.
std::optional<std::filesystem::path> test_data_dir();

// Prints why a test is skipped, in one line that ctest's log keeps.
void skip_because(const std::string& why);

// A fresh folder under the system temp dir, removed when the object dies.
class ScratchDir {
public:
    ScratchDir();
    ~ScratchDir();
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path file(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

std::vector<uint8_t> read_file_bytes(const std::filesystem::path& p);
void write_file_bytes(const std::filesystem::path& p, const std::vector<uint8_t>& bytes);

}  // namespace tessera::test
