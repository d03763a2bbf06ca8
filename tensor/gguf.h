// GGUF v2/v3 reader over a read-only memory mapping.
//
// Everything the file claims is validated before use: counts and lengths against the
// bytes actually left, value and tensor type ids, array nesting depth, dimension
// products (overflow), tensor offsets (aligned, inside the data section), unique keys
// and tensor names, and the alignment value. A malformed file throws tessera::Error
// naming the file, the field and the byte offset; memory allocated while parsing is
// bounded by the file's real size, never by a count the file claims.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tensor/dtype.h"

namespace tessera::gguf {

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
inline constexpr uint64_t kDefaultAlignment = 32;
inline constexpr int kMaxDims = 4;
inline constexpr int kMaxArrayDepth = 8;  // nesting deeper than this is rejected

enum class ValueType : uint32_t {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
};
inline constexpr uint32_t kValueTypeCount = 13;

// "uint32", "string", ... as the GGUF spec names them; "?" for an unknown id.
std::string_view value_type_name(ValueType t);
// Bytes of one scalar of this type; 0 for STRING and ARRAY.
size_t value_type_size(ValueType t);
inline bool is_integer_type(ValueType t) {
    return t == ValueType::U8 || t == ValueType::I8 || t == ValueType::U16 || t == ValueType::I16 ||
           t == ValueType::U32 || t == ValueType::I32 || t == ValueType::U64 || t == ValueType::I64;
}
inline bool is_float_type(ValueType t) { return t == ValueType::F32 || t == ValueType::F64; }

// One metadata value. Strings and numeric arrays point into the file's mapping, so a
// Value lives as long as its File. Accessors throw tessera::Error on a type mismatch.
class Value {
public:
    ValueType type() const { return type_; }

    // Scalars. as_int/as_uint accept every integer type and bool, checking the range;
    // as_float accepts every numeric type.
    int64_t as_int() const;
    uint64_t as_uint() const;
    double as_float() const;
    bool as_bool() const;
    std::string_view as_string() const;

    // Arrays.
    ValueType array_type() const;
    uint64_t size() const;  // number of elements of an array
    int64_t int_at(uint64_t i) const;
    uint64_t uint_at(uint64_t i) const;
    double float_at(uint64_t i) const;
    bool bool_at(uint64_t i) const;
    std::string_view string_at(uint64_t i) const;
    const Value& array_at(uint64_t i) const;  // element of an array of arrays
    // Packed little-endian elements of a numeric array (nullptr for string/array arrays).
    const uint8_t* array_data() const;

private:
    friend class Parser;
    void expect_array(ValueType elem, const char* what) const;
    uint64_t raw_uint(ValueType t, const uint8_t* p) const;
    int64_t raw_int(ValueType t, const uint8_t* p) const;
    double raw_float(ValueType t, const uint8_t* p) const;

    ValueType type_ = ValueType::U8;
    ValueType elem_type_ = ValueType::U8;  // arrays only
    uint64_t count_ = 0;                   // arrays: element count; strings: byte length
    const uint8_t* data_ = nullptr;        // scalar bytes, string bytes or packed numeric array
    std::vector<std::string_view> strings_;  // array of strings
    std::vector<Value> items_;               // array of arrays
};

struct TensorInfo {
    std::string name;
    DType type = DType::F32;
    int n_dims = 0;
    int64_t ne[kMaxDims] = {1, 1, 1, 1};  // elements per dimension, ne[0] fastest
    uint64_t offset = 0;                  // from the start of the data section
    uint64_t n_bytes = 0;
    int64_t n_elements = 0;
    const uint8_t* data = nullptr;  // inside the mapping
};

struct KeyValue {
    std::string key;
    Value value;
};

class Mapping;

class File {
public:
    // Maps and validates a file; throws tessera::Error (kind Io or BadFile).
    static std::unique_ptr<File> open(const std::string& path);
    // Validates bytes the caller keeps alive (fuzzing, tests); `name` is used in errors.
    static std::unique_ptr<File> from_memory(const void* data, size_t size, std::string name);
    ~File();

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // start of the tensor data
    uint64_t file_size() const { return size_; }
    const uint8_t* bytes() const { return base_; }

    size_t n_kv() const { return kvs_.size(); }
    const KeyValue& kv(size_t i) const { return kvs_[i]; }
    const Value* find(std::string_view key) const;  // nullptr when absent
    int64_t find_index(std::string_view key) const;  // -1 when absent

    // Typed look-ups that name the key and the file in their error.
    const Value& require(std::string_view key) const;
    std::string_view get_string(std::string_view key) const;
    std::string_view get_string(std::string_view key, std::string_view fallback) const;
    int64_t get_int(std::string_view key) const;
    int64_t get_int(std::string_view key, int64_t fallback) const;
    double get_float(std::string_view key, double fallback) const;
    bool get_bool(std::string_view key, bool fallback) const;

    size_t n_tensors() const { return tensors_.size(); }
    const TensorInfo& tensor(size_t i) const { return tensors_[i]; }
    const TensorInfo* find_tensor(std::string_view name) const;  // nullptr when absent

private:
    friend class Parser;
    File() = default;

    std::string path_;
    std::unique_ptr<Mapping> mapping_;
    const uint8_t* base_ = nullptr;
    uint64_t size_ = 0;
    uint32_t version_ = 0;
    uint64_t alignment_ = kDefaultAlignment;
    uint64_t data_offset_ = 0;
    std::vector<KeyValue> kvs_;
    std::unordered_map<std::string_view, size_t> kv_index_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string_view, size_t> tensor_index_;
};

}  // namespace tessera::gguf
