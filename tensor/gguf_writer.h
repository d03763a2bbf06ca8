// GGUF v3 writer: metadata of every value type (nested arrays too) and aligned tensor
// data. The file is written to a temporary name and renamed into place, so a failed
// write never leaves a half-written file where the user expects a good one.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/gguf.h"

namespace tessera::gguf {

// A metadata value that owns its bytes, for writing.
struct OwnedValue {
    ValueType type = ValueType::U8;
    ValueType elem_type = ValueType::U8;  // arrays only
    std::vector<uint8_t> bytes;           // scalar, or packed elements of a numeric array
    std::string str;                      // string
    std::vector<std::string> strings;     // array of strings
    std::vector<OwnedValue> items;        // array of arrays
    uint64_t count = 0;                   // array length

    static OwnedValue u8(uint8_t v) { return scalar(ValueType::U8, &v, 1); }
    static OwnedValue i8(int8_t v) { return scalar(ValueType::I8, &v, 1); }
    static OwnedValue u16(uint16_t v) { return scalar(ValueType::U16, &v, 2); }
    static OwnedValue i16(int16_t v) { return scalar(ValueType::I16, &v, 2); }
    static OwnedValue u32(uint32_t v) { return scalar(ValueType::U32, &v, 4); }
    static OwnedValue i32(int32_t v) { return scalar(ValueType::I32, &v, 4); }
    static OwnedValue f32(float v) { return scalar(ValueType::F32, &v, 4); }
    static OwnedValue boolean(bool v) {
        uint8_t b = v ? 1 : 0;
        return scalar(ValueType::BOOL, &b, 1);
    }
    static OwnedValue u64(uint64_t v) { return scalar(ValueType::U64, &v, 8); }
    static OwnedValue i64(int64_t v) { return scalar(ValueType::I64, &v, 8); }
    static OwnedValue f64(double v) { return scalar(ValueType::F64, &v, 8); }
    static OwnedValue string(std::string_view v);
    // An array of numbers (or bools as uint8 0/1) of element type `elem`.
    static OwnedValue numeric_array(ValueType elem, const void* data, uint64_t count);
    static OwnedValue string_array(std::vector<std::string> v);
    static OwnedValue array_of_arrays(std::vector<OwnedValue> v);
    // A deep copy of a value read from a file.
    static OwnedValue copy_of(const Value& v);

private:
    static OwnedValue scalar(ValueType t, const void* p, size_t n);
};

class Writer {
public:
    // Sets (or replaces) a key; keys keep the order of their first setting.
    void set(std::string_view key, OwnedValue value);
    void set_string(std::string_view key, std::string_view v) { set(key, OwnedValue::string(v)); }
    void set_u32(std::string_view key, uint32_t v) { set(key, OwnedValue::u32(v)); }
    void set_i32(std::string_view key, int32_t v) { set(key, OwnedValue::i32(v)); }
    void set_f32(std::string_view key, float v) { set(key, OwnedValue::f32(v)); }
    void set_bool(std::string_view key, bool v) { set(key, OwnedValue::boolean(v)); }
    void remove(std::string_view key);
    // Sets general.alignment too; must be a power of two.
    void set_alignment(uint32_t alignment);

    // Adds a tensor. `data` (row_size(type, ne[0]) * rows bytes) is not copied: it must
    // stay valid until write() returns.
    void add_tensor(std::string_view name, DType type, std::span<const int64_t> ne, const void* data);
    size_t n_tensors() const { return tensors_.size(); }

    // Writes the file (atomically, through a temporary file). Throws tessera::Error.
    void write(const std::string& path) const;
    // The bytes write() would put in the file.
    std::vector<uint8_t> to_bytes() const;

private:
    struct Tensor {
        std::string name;
        DType type;
        std::vector<int64_t> ne;
        const void* data;
        uint64_t n_bytes;
        uint64_t offset;
    };
    template <typename Sink>
    void emit(Sink& sink) const;

    std::vector<std::pair<std::string, OwnedValue>> kvs_;
    std::vector<Tensor> tensors_;
    uint64_t alignment_ = kDefaultAlignment;
    uint64_t data_size_ = 0;
};

}  // namespace tessera::gguf
