// Writing a file so that a reader (or a crash) never sees half of it: the bytes go to a
// temporary file with a unique name in the destination's folder, which is flushed, synced
// to disk and renamed over the destination only when everything was written. Until then
// the destination keeps its old content; on any failure the temporary is removed.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace tessera {

class AtomicFile {
public:
    // Creates the temporary (PATH's folder, a name no other file has). Throws
    // tessera::Error (Io) naming the folder when it cannot.
    explicit AtomicFile(std::string path);
    // Removes the temporary unless commit() succeeded.
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    std::FILE* file() const { return f_; }
    const std::string& path() const { return path_; }
    // Writes all of `bytes`; throws Error (Io) on a short write (disk full, file size limit).
    void write(std::string_view bytes);
    // Flushes, syncs and renames the temporary over the destination. Throws Error (Io).
    void commit();

    // Throws Error (Io) unless a file can be created beside PATH: the check a long job
    // makes before it starts, so that a bad output path fails at once, not at the end.
    static void check_writable(const std::string& path);

private:
    std::string path_, tmp_;
    std::FILE* f_ = nullptr;
    bool committed_ = false;
};

}  // namespace tessera
