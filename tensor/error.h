// The one exception type inside Tessera. Messages are meant for a user: they name
// the file, the field, the value and what was expected. The C API turns it into a
// status code plus tessera_last_error().
#pragma once

#include <stdexcept>
#include <string>

namespace tessera {

// What kind of failure; the C API maps each to a status code.
enum class ErrorKind {
    InvalidArgument,  // the caller passed something wrong
    Io,               // the file system said no (missing file, permission, short write)
    BadFile,          // a file is malformed or hostile
    Unsupported,      // well-formed but not something this build can run
    Internal,
    Aborted,          // the caller's abort callback asked to stop
};

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message, ErrorKind kind = ErrorKind::InvalidArgument)
        : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const { return kind_; }

private:
    ErrorKind kind_;
};

}  // namespace tessera
