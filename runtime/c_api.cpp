// Implements include/tessera.h (errors, types, GGUF inspection): C++ exceptions become status codes plus a thread-local
// message; nothing throws across the boundary.
#include "tessera.h"

#include <exception>
#include <new>
#include <string>
#include <utility>

#include "runtime/c_api_internal.h"
#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/gguf.h"

#ifndef TESSERA_VERSION_STRING
#define TESSERA_VERSION_STRING "0.0.0"
#endif

using tessera::capi::guard;
using tessera::capi::set_error;

namespace tessera::capi {

namespace {
thread_local std::string g_last_error;
thread_local bool g_last_error_lost = false;  // out of memory while storing it
}  // namespace

tessera_status set_error(tessera_status status, std::string_view message) noexcept {
    try {
        g_last_error.assign(message);
        g_last_error_lost = false;
    } catch (...) {
        g_last_error_lost = true;
    }
    return status;
}

tessera_status status_of(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::InvalidArgument:
            return TESSERA_ERROR_INVALID_ARGUMENT;
        case ErrorKind::Io:
            return TESSERA_ERROR_IO;
        case ErrorKind::BadFile:
            return TESSERA_ERROR_BAD_FILE;
        case ErrorKind::Unsupported:
            return TESSERA_ERROR_UNSUPPORTED;
        case ErrorKind::Internal:
            return TESSERA_ERROR_INTERNAL;
        case ErrorKind::Aborted:
            return TESSERA_ERROR_ABORTED;
    }
    return TESSERA_ERROR_INTERNAL;
}

const char* last_error() {
    return g_last_error_lost ? "out of memory (while recording an error)" : g_last_error.c_str();
}

}  // namespace tessera::capi

namespace {

const tessera::gguf::Value* unwrap(const tessera_gguf_value* v) {
    return reinterpret_cast<const tessera::gguf::Value*>(v);
}
const tessera_gguf_value* wrap(const tessera::gguf::Value* v) { return reinterpret_cast<const tessera_gguf_value*>(v); }

// Value accessors: a null value or output is an invalid argument; what the value itself
// refuses (wrong type, out of the asked type's range) is a type mismatch.
template <typename F>
tessera_status value_call(const tessera_gguf_value* v, const void* out, F&& f) {
    if (!v) return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "null GGUF value");
    if (!out) return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "null output pointer");
    try {
        f(*unwrap(v));
        return TESSERA_OK;
    } catch (const tessera::Error& e) {
        return set_error(TESSERA_ERROR_TYPE_MISMATCH, e.what());
    } catch (const std::bad_alloc&) {
        return set_error(TESSERA_ERROR_OUT_OF_MEMORY, "out of memory");
    }
}

// Array element accessors: as value_call, and an index past the end of an array is an
// invalid argument (the header's rule for every index), not a type mismatch.
template <typename F>
tessera_status element_call(const tessera_gguf_value* v, uint64_t i, const void* out, F&& f) {
    if (v && unwrap(v)->type() == tessera::gguf::ValueType::ARRAY && i >= unwrap(v)->size()) {
        return guard([&] {
            throw tessera::Error("array index " + std::to_string(i) + " out of range (the array has " +
                                 std::to_string(unwrap(v)->size()) + " elements)");
        });
    }
    return value_call(v, out, std::forward<F>(f));
}

}  // namespace

extern "C" {

const char* tessera_last_error(void) { return tessera::capi::last_error(); }

const char* tessera_status_name(tessera_status status) {
    switch (status) {
        case TESSERA_OK:
            return "ok";
        case TESSERA_ERROR_INVALID_ARGUMENT:
            return "invalid argument";
        case TESSERA_ERROR_IO:
            return "i/o error";
        case TESSERA_ERROR_BAD_FILE:
            return "bad file";
        case TESSERA_ERROR_UNSUPPORTED:
            return "unsupported";
        case TESSERA_ERROR_TYPE_MISMATCH:
            return "type mismatch";
        case TESSERA_ERROR_OUT_OF_MEMORY:
            return "out of memory";
        case TESSERA_ERROR_INTERNAL:
            return "internal error";
        case TESSERA_ERROR_TEMPLATE_RAISED:
            return "template raised an exception";
        case TESSERA_ERROR_ABORTED:
            return "aborted";
    }
    return "unknown status";
}

const char* tessera_version(void) { return TESSERA_VERSION_STRING; }

const char* tessera_type_name(int32_t type) {
    if (type < 0) return nullptr;
    const tessera::TypeTraits& tr = tessera::type_traits(static_cast<uint32_t>(type));
    return tr.known ? tr.name.data() : nullptr;  // the table's names are string literals
}

int32_t tessera_type_block_size(int32_t type) {
    return type < 0 ? 0 : static_cast<int32_t>(tessera::type_traits(static_cast<uint32_t>(type)).block_size);
}

int32_t tessera_type_size(int32_t type) {
    return type < 0 ? 0 : static_cast<int32_t>(tessera::type_traits(static_cast<uint32_t>(type)).type_size);
}

tessera_status tessera_gguf_open(const char* path, tessera_gguf** out) {
    if (!out) return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_gguf_open: out is NULL");
    *out = nullptr;
    if (!path) return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_gguf_open: path is NULL");
    return guard([&] {
        auto g = std::make_unique<tessera_gguf>();
        g->owned = tessera::gguf::File::open(path);
        g->file = g->owned.get();
        *out = g.release();
    });
}

void tessera_gguf_close(tessera_gguf* file) { delete file; }

uint32_t tessera_gguf_version(const tessera_gguf* f) { return f ? f->file->version() : 0; }
uint64_t tessera_gguf_alignment(const tessera_gguf* f) { return f ? f->file->alignment() : 0; }
uint64_t tessera_gguf_data_offset(const tessera_gguf* f) { return f ? f->file->data_offset() : 0; }
uint64_t tessera_gguf_file_size(const tessera_gguf* f) { return f ? f->file->file_size() : 0; }

int64_t tessera_gguf_kv_count(const tessera_gguf* f) { return f ? static_cast<int64_t>(f->file->n_kv()) : 0; }

const char* tessera_gguf_kv_key(const tessera_gguf* f, int64_t i) {
    if (!f || i < 0 || static_cast<uint64_t>(i) >= f->file->n_kv()) return nullptr;
    return f->file->kv(static_cast<size_t>(i)).key.c_str();
}

const tessera_gguf_value* tessera_gguf_kv_value(const tessera_gguf* f, int64_t i) {
    if (!f || i < 0 || static_cast<uint64_t>(i) >= f->file->n_kv()) return nullptr;
    return wrap(&f->file->kv(static_cast<size_t>(i)).value);
}

int64_t tessera_gguf_find_key(const tessera_gguf* f, const char* key) {
    return (f && key) ? f->file->find_index(key) : -1;
}

tessera_gguf_type tessera_gguf_value_type(const tessera_gguf_value* v) {
    return v ? static_cast<tessera_gguf_type>(unwrap(v)->type()) : TESSERA_GGUF_UINT8;
}

const char* tessera_gguf_type_name(tessera_gguf_type t) {
    return tessera::gguf::value_type_name(static_cast<tessera::gguf::ValueType>(t)).data();
}

tessera_status tessera_gguf_value_int(const tessera_gguf_value* v, int64_t* out) {
    return value_call(v, out, [&](const auto& x) { *out = x.as_int(); });
}
tessera_status tessera_gguf_value_uint(const tessera_gguf_value* v, uint64_t* out) {
    return value_call(v, out, [&](const auto& x) { *out = x.as_uint(); });
}
tessera_status tessera_gguf_value_float(const tessera_gguf_value* v, double* out) {
    return value_call(v, out, [&](const auto& x) { *out = x.as_float(); });
}
tessera_status tessera_gguf_value_string(const tessera_gguf_value* v, const char** data, size_t* len) {
    if (!data || !len) return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "null output pointer");
    return value_call(v, data, [&](const auto& x) {
        std::string_view s = x.as_string();
        *data = s.data();
        *len = s.size();
    });
}

tessera_gguf_type tessera_gguf_array_type(const tessera_gguf_value* v) {
    if (!v || unwrap(v)->type() != tessera::gguf::ValueType::ARRAY) return TESSERA_GGUF_UINT8;
    return static_cast<tessera_gguf_type>(unwrap(v)->array_type());
}

uint64_t tessera_gguf_array_length(const tessera_gguf_value* v) {
    if (!v || unwrap(v)->type() != tessera::gguf::ValueType::ARRAY) return 0;
    return unwrap(v)->size();
}

tessera_status tessera_gguf_array_int(const tessera_gguf_value* v, uint64_t i, int64_t* out) {
    return element_call(v, i, out, [&](const auto& x) { *out = x.int_at(i); });
}
tessera_status tessera_gguf_array_uint(const tessera_gguf_value* v, uint64_t i, uint64_t* out) {
    return element_call(v, i, out, [&](const auto& x) { *out = x.uint_at(i); });
}
tessera_status tessera_gguf_array_float(const tessera_gguf_value* v, uint64_t i, double* out) {
    return element_call(v, i, out, [&](const auto& x) { *out = x.float_at(i); });
}
tessera_status tessera_gguf_array_string(const tessera_gguf_value* v, uint64_t i, const char** data, size_t* len) {
    if (!data || !len) return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "null output pointer");
    return element_call(v, i, data, [&](const auto& x) {
        std::string_view s = x.string_at(i);
        *data = s.data();
        *len = s.size();
    });
}

const tessera_gguf_value* tessera_gguf_array_item(const tessera_gguf_value* v, uint64_t i) {
    const tessera::gguf::Value* item = nullptr;
    if (element_call(v, i, &item, [&](const auto& x) { item = &x.array_at(i); }) != TESSERA_OK) return nullptr;
    return wrap(item);
}

int64_t tessera_gguf_tensor_count(const tessera_gguf* f) { return f ? static_cast<int64_t>(f->file->n_tensors()) : 0; }

tessera_status tessera_gguf_tensor(const tessera_gguf* f, int64_t i, tessera_tensor_info* out) {
    if (!f || !out) return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_gguf_tensor: null argument");
    if (i < 0 || static_cast<uint64_t>(i) >= f->file->n_tensors())
        return guard(
            [&] { throw tessera::Error("tessera_gguf_tensor: index " + std::to_string(i) + " out of range"); });
    const tessera::gguf::TensorInfo& t = f->file->tensor(static_cast<size_t>(i));
    out->name = t.name.c_str();
    out->type = static_cast<int32_t>(t.type);
    out->n_dims = t.n_dims;
    for (int d = 0; d < 4; ++d) out->ne[d] = t.ne[d];
    out->offset = t.offset;
    out->size = t.n_bytes;
    out->data = t.data;
    return TESSERA_OK;
}

int64_t tessera_gguf_find_tensor(const tessera_gguf* f, const char* name) {
    if (!f || !name) return -1;
    const tessera::gguf::TensorInfo* t = f->file->find_tensor(name);
    return t ? static_cast<int64_t>(t - &f->file->tensor(0)) : -1;
}

}  // extern "C"
