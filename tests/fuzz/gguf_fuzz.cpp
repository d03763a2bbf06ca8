// libFuzzer target for the GGUF reader: any input either parses, and then every value
// and tensor byte it exposes can be read, or fails with tessera::Error.
#include <cstddef>
#include <cstdint>

#include "tensor/error.h"
#include "tensor/gguf.h"

namespace {

uint64_t visit(const tessera::gguf::Value& v) {
    using tessera::gguf::ValueType;
    uint64_t h = 0;
    if (v.type() == ValueType::STRING) return v.as_string().size();
    if (v.type() != ValueType::ARRAY) return v.as_float() != 0;
    for (uint64_t i = 0; i < v.size(); ++i) {
        if (v.array_type() == ValueType::ARRAY) h += visit(v.array_at(i));
        else if (v.array_type() == ValueType::STRING) h += v.string_at(i).size();
        else h += v.float_at(i) != 0;
    }
    return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto f = tessera::gguf::File::from_memory(data, size, "fuzz.gguf");
        volatile uint64_t h = 0;
        for (size_t i = 0; i < f->n_kv(); ++i) h = h + visit(f->kv(i).value);
        for (size_t i = 0; i < f->n_tensors(); ++i) {
            const auto& t = f->tensor(i);
            if (t.n_bytes) h = h + t.data[0] + t.data[t.n_bytes - 1];
        }
    } catch (const tessera::Error&) {
    }
    return 0;
}
