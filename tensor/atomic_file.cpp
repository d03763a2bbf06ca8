// AtomicFile: a unique temporary beside the destination (fopen's exclusive "x" mode, so an
// existing file is never taken over), then flush, sync, rename.
#include "tensor/atomic_file.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>

#ifdef _WIN32
#include <io.h>
#else
#include <unistd.h>
#endif

#include "tensor/error.h"

namespace tessera {

namespace {

std::string folder_of(const std::string& path) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    return parent.empty() ? "." : parent.string();
}

// Opens a new file named after `path` with a random suffix; returns null with errno set
// when the folder does not take new files.
std::FILE* open_unique(const std::string& path, std::string* tmp) {
    std::random_device rd;
    std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^
                        static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
    const std::filesystem::path p(path);
    for (int attempt = 0; attempt < 100; ++attempt) {
        char suffix[24];
        std::snprintf(suffix, sizeof suffix, ".%016llx.tmp", static_cast<unsigned long long>(rng()));
        std::string name = ".";
        name += p.filename().string();
        name += suffix;
        *tmp = (p.parent_path() / name).string();
        std::FILE* f = std::fopen(tmp->c_str(), "wbx");
        if (f || errno != EEXIST) return f;
    }
    return nullptr;
}

bool sync_file(std::FILE* f) {
#ifdef _WIN32
    return _commit(_fileno(f)) == 0;
#else
    return fsync(fileno(f)) == 0;
#endif
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
    f_ = open_unique(path_, &tmp_);
    if (!f_)
        throw Error(path_ + ": cannot create a file in " + folder_of(path_) + ": " + std::strerror(errno),
                    ErrorKind::Io);
}

AtomicFile::~AtomicFile() {
    if (f_) std::fclose(f_);
    if (!committed_) std::remove(tmp_.c_str());
}

void AtomicFile::write(std::string_view bytes) {
    if (std::fwrite(bytes.data(), 1, bytes.size(), f_) != bytes.size())
        throw Error(path_ + ": write failed: " + std::strerror(errno), ErrorKind::Io);
}

void AtomicFile::commit() {
    if (std::fflush(f_) != 0 || !sync_file(f_))
        throw Error(path_ + ": write failed: " + std::strerror(errno), ErrorKind::Io);
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) throw Error(path_ + ": write failed: " + std::strerror(errno), ErrorKind::Io);
    std::error_code ec;
    std::filesystem::rename(tmp_, path_, ec);
    if (ec) throw Error(path_ + ": cannot rename the finished file into place: " + ec.message(), ErrorKind::Io);
    committed_ = true;
}

void AtomicFile::check_writable(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) throw Error(path + ": is a folder, not a file name", ErrorKind::Io);
    AtomicFile probe(path);  // removed again when it goes out of scope
}

}  // namespace tessera
