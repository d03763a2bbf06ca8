// Shared plumbing of the C API's implementation files: the thread's last error and the
// guard that turns C++ exceptions into status codes.
#pragma once

#include <exception>
#include <memory>
#include <new>
#include <string>
#include <string_view>

#include "tensor/error.h"
#include "tensor/gguf.h"
#include "tessera.h"

// A GGUF file handle: owns the file when opened by tessera_gguf_open, or views the file
// of a loaded model (tessera_model_gguf).
struct tessera_gguf {
    std::unique_ptr<tessera::gguf::File> owned;
    const tessera::gguf::File* file = nullptr;
};

namespace tessera::capi {

// Records `message` as the calling thread's last error and returns `status`. Never
// throws: when even the message cannot be stored, the last error says so.
tessera_status set_error(tessera_status status, std::string_view message) noexcept;

tessera_status status_of(ErrorKind kind);
const char* last_error();

// Runs `f`, turning any exception into a status and the thread's message.
template <typename F>
tessera_status guard(F&& f) {
    try {
        f();
        return TESSERA_OK;
    } catch (const Error& e) {
        return set_error(status_of(e.kind()), e.what());
    } catch (const std::bad_alloc&) {
        return set_error(TESSERA_ERROR_OUT_OF_MEMORY, "out of memory");
    } catch (const std::exception& e) {
        return set_error(TESSERA_ERROR_INTERNAL, e.what());
    } catch (...) {
        return set_error(TESSERA_ERROR_INTERNAL, "unknown internal error");
    }
}

}  // namespace tessera::capi
