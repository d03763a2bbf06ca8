// The GGUF inspection part of the C API: a small file with a key of every value type,
// arrays of numbers, strings and arrays, and two tensors, written here and read back
// through tessera_gguf_*; then every accessor's error path (null handles, indices out of
// range, values read as the wrong type) and files that are missing, not files, garbage
// or cut short.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "tensor/gguf_writer.h"
#include "tessera.h"
#include "tests/test_support.h"

namespace {

namespace gguf = tessera::gguf;

const float kWeights[8] = {1.0f, -2.0f, 3.5f, 0.25f, 5.0f, 6.0f, -7.0f, 8.0f};  // "w": [2 rows, 4]
const float kBias[3] = {0.5f, 1.5f, 2.5f};                                      // "b": [3]

// Every scalar type, each kind of array, 64-byte alignment; keys in this order.
gguf::Writer sample_writer() {
    gguf::Writer w;
    w.set("t.u8", gguf::OwnedValue::u8(255));
    w.set("t.i8", gguf::OwnedValue::i8(-5));
    w.set("t.u16", gguf::OwnedValue::u16(65535));
    w.set("t.i16", gguf::OwnedValue::i16(-300));
    w.set("t.u32", gguf::OwnedValue::u32(4000000000u));
    w.set("t.i32", gguf::OwnedValue::i32(-70000));
    w.set("t.f32", gguf::OwnedValue::f32(1.5f));
    w.set("t.bool", gguf::OwnedValue::boolean(true));
    w.set("t.string", gguf::OwnedValue::string(std::string("a\0b", 3)));  // bytes, not a C string
    w.set("t.u64", gguf::OwnedValue::u64(std::numeric_limits<uint64_t>::max()));
    w.set("t.i64", gguf::OwnedValue::i64(std::numeric_limits<int64_t>::min()));
    w.set("t.f64", gguf::OwnedValue::f64(-0.125));
    const int32_t ints[4] = {-1, 0, 7, 2147483647};
    w.set("a.i32", gguf::OwnedValue::numeric_array(gguf::ValueType::I32, ints, 4));
    const float floats[2] = {0.5f, -4.0f};
    w.set("a.f32", gguf::OwnedValue::numeric_array(gguf::ValueType::F32, floats, 2));
    w.set("a.string", gguf::OwnedValue::string_array({"alpha", "", "gamma"}));
    const uint8_t row0[2] = {1, 2}, row1[1] = {3};
    w.set("a.nested",
          gguf::OwnedValue::array_of_arrays({gguf::OwnedValue::numeric_array(gguf::ValueType::U8, row0, 2),
                                             gguf::OwnedValue::numeric_array(gguf::ValueType::U8, row1, 1)}));
    w.set_alignment(64);
    const int64_t ne_w[2] = {4, 2}, ne_b[1] = {3};
    w.add_tensor("w", tessera::DType::F32, ne_w, kWeights);
    w.add_tensor("b", tessera::DType::F32, ne_b, kBias);
    return w;
}

const int64_t kUserKeys = 16;  // the keys above; set_alignment adds general.alignment

// The sample file on disk, opened through the C API.
struct OpenSample {
    tessera::test::ScratchDir dir;
    std::vector<uint8_t> bytes;
    tessera_gguf* f = nullptr;
    OpenSample() {
        bytes = sample_writer().to_bytes();
        const std::string path = dir.file("sample.gguf").string();
        tessera::test::write_file_bytes(path, bytes);
        REQUIRE(tessera_gguf_open(path.c_str(), &f) == TESSERA_OK);
        REQUIRE(f != nullptr);
    }
    ~OpenSample() { tessera_gguf_close(f); }
    const tessera_gguf_value* value(const char* key) const {
        const int64_t i = tessera_gguf_find_key(f, key);
        REQUIRE(i >= 0);
        return tessera_gguf_kv_value(f, i);
    }
};

std::string string_of(const char* data, size_t len) { return std::string(data, len); }

}  // namespace

TEST_CASE("gguf: file facts, keys in order, find_key") {
    OpenSample s;
    CHECK(tessera_gguf_version(s.f) == 3);
    CHECK(tessera_gguf_alignment(s.f) == 64);
    CHECK(tessera_gguf_data_offset(s.f) % 64 == 0);
    CHECK(tessera_gguf_data_offset(s.f) < tessera_gguf_file_size(s.f));
    CHECK(tessera_gguf_file_size(s.f) == s.bytes.size());

    REQUIRE(tessera_gguf_kv_count(s.f) == kUserKeys + 1);
    CHECK(std::string(tessera_gguf_kv_key(s.f, 0)) == "t.u8");
    CHECK(std::string(tessera_gguf_kv_key(s.f, 8)) == "t.string");
    CHECK(std::string(tessera_gguf_kv_key(s.f, kUserKeys)) == "general.alignment");
    CHECK(tessera_gguf_kv_key(s.f, -1) == nullptr);
    CHECK(tessera_gguf_kv_key(s.f, kUserKeys + 1) == nullptr);
    CHECK(tessera_gguf_kv_value(s.f, 0) != nullptr);
    CHECK(tessera_gguf_kv_value(s.f, -1) == nullptr);
    CHECK(tessera_gguf_kv_value(s.f, kUserKeys + 1) == nullptr);

    CHECK(tessera_gguf_find_key(s.f, "t.f64") == 11);
    CHECK(tessera_gguf_find_key(s.f, "t.absent") == -1);
    CHECK(tessera_gguf_find_key(s.f, nullptr) == -1);
    CHECK(tessera_gguf_find_key(nullptr, "t.f64") == -1);
}

TEST_CASE("gguf: value types and their names") {
    OpenSample s;
    const tessera_gguf_type want[kUserKeys] = {
        TESSERA_GGUF_UINT8,  TESSERA_GGUF_INT8,   TESSERA_GGUF_UINT16,  TESSERA_GGUF_INT16,
        TESSERA_GGUF_UINT32, TESSERA_GGUF_INT32,  TESSERA_GGUF_FLOAT32, TESSERA_GGUF_BOOL,
        TESSERA_GGUF_STRING, TESSERA_GGUF_UINT64, TESSERA_GGUF_INT64,   TESSERA_GGUF_FLOAT64,
        TESSERA_GGUF_ARRAY,  TESSERA_GGUF_ARRAY,  TESSERA_GGUF_ARRAY,   TESSERA_GGUF_ARRAY};
    for (int64_t i = 0; i < kUserKeys; ++i) {
        CAPTURE(i);
        CHECK(tessera_gguf_value_type(tessera_gguf_kv_value(s.f, i)) == want[i]);
    }
    CHECK(tessera_gguf_value_type(s.value("general.alignment")) == TESSERA_GGUF_UINT32);
    CHECK(std::string(tessera_gguf_type_name(TESSERA_GGUF_UINT32)) == "uint32");
    CHECK(std::string(tessera_gguf_type_name(TESSERA_GGUF_STRING)) == "string");
    CHECK(std::string(tessera_gguf_type_name(TESSERA_GGUF_ARRAY)) == "array");
    CHECK(std::string(tessera_gguf_type_name(TESSERA_GGUF_FLOAT64)) == "float64");
    CHECK(std::string(tessera_gguf_type_name(static_cast<tessera_gguf_type>(99))) == "?");
    CHECK(tessera_gguf_value_type(nullptr) == TESSERA_GGUF_UINT8);
}

TEST_CASE("gguf: scalars read as int, uint, float and string, with range and type checks") {
    OpenSample s;
    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;
    const char* str = nullptr;
    size_t len = 0;

    REQUIRE(tessera_gguf_value_int(s.value("t.u8"), &i) == TESSERA_OK);
    CHECK(i == 255);
    REQUIRE(tessera_gguf_value_int(s.value("t.i8"), &i) == TESSERA_OK);
    CHECK(i == -5);
    REQUIRE(tessera_gguf_value_int(s.value("t.i16"), &i) == TESSERA_OK);
    CHECK(i == -300);
    REQUIRE(tessera_gguf_value_int(s.value("t.i32"), &i) == TESSERA_OK);
    CHECK(i == -70000);
    REQUIRE(tessera_gguf_value_int(s.value("t.i64"), &i) == TESSERA_OK);
    CHECK(i == std::numeric_limits<int64_t>::min());
    REQUIRE(tessera_gguf_value_int(s.value("t.bool"), &i) == TESSERA_OK);
    CHECK(i == 1);
    // uint64 max does not fit in int64; a float is not an integer.
    CHECK(tessera_gguf_value_int(s.value("t.u64"), &i) == TESSERA_ERROR_TYPE_MISMATCH);
    CHECK(std::string(tessera_last_error()).find("does not fit") != std::string::npos);
    CHECK(tessera_gguf_value_int(s.value("t.f32"), &i) == TESSERA_ERROR_TYPE_MISMATCH);
    CHECK(tessera_gguf_value_int(s.value("t.string"), &i) == TESSERA_ERROR_TYPE_MISMATCH);

    REQUIRE(tessera_gguf_value_uint(s.value("t.u16"), &u) == TESSERA_OK);
    CHECK(u == 65535);
    REQUIRE(tessera_gguf_value_uint(s.value("t.u32"), &u) == TESSERA_OK);
    CHECK(u == 4000000000u);
    REQUIRE(tessera_gguf_value_uint(s.value("t.u64"), &u) == TESSERA_OK);
    CHECK(u == std::numeric_limits<uint64_t>::max());
    CHECK(tessera_gguf_value_uint(s.value("t.i8"), &u) == TESSERA_ERROR_TYPE_MISMATCH);
    CHECK(std::string(tessera_last_error()).find("negative") != std::string::npos);
    CHECK(tessera_gguf_value_uint(s.value("a.i32"), &u) == TESSERA_ERROR_TYPE_MISMATCH);

    REQUIRE(tessera_gguf_value_float(s.value("t.f32"), &d) == TESSERA_OK);
    CHECK(d == 1.5);
    REQUIRE(tessera_gguf_value_float(s.value("t.f64"), &d) == TESSERA_OK);
    CHECK(d == -0.125);
    REQUIRE(tessera_gguf_value_float(s.value("t.i32"), &d) == TESSERA_OK);  // every numeric type
    CHECK(d == -70000.0);
    CHECK(tessera_gguf_value_float(s.value("t.string"), &d) == TESSERA_ERROR_TYPE_MISMATCH);
    CHECK(tessera_gguf_value_float(s.value("a.f32"), &d) == TESSERA_ERROR_TYPE_MISMATCH);

    REQUIRE(tessera_gguf_value_string(s.value("t.string"), &str, &len) == TESSERA_OK);
    CHECK(string_of(str, len) == std::string("a\0b", 3));
    CHECK(tessera_gguf_value_string(s.value("t.u8"), &str, &len) == TESSERA_ERROR_TYPE_MISMATCH);
    CHECK(std::string(tessera_last_error()).find("expected string") != std::string::npos);
}

TEST_CASE("gguf: arrays of numbers, strings and arrays") {
    OpenSample s;
    const tessera_gguf_value* ints = s.value("a.i32");
    CHECK(tessera_gguf_array_type(ints) == TESSERA_GGUF_INT32);
    REQUIRE(tessera_gguf_array_length(ints) == 4);
    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;
    REQUIRE(tessera_gguf_array_int(ints, 0, &i) == TESSERA_OK);
    CHECK(i == -1);
    REQUIRE(tessera_gguf_array_int(ints, 3, &i) == TESSERA_OK);
    CHECK(i == 2147483647);
    REQUIRE(tessera_gguf_array_uint(ints, 2, &u) == TESSERA_OK);
    CHECK(u == 7);
    CHECK(tessera_gguf_array_uint(ints, 0, &u) == TESSERA_ERROR_TYPE_MISMATCH);  // -1
    REQUIRE(tessera_gguf_array_float(ints, 2, &d) == TESSERA_OK);
    CHECK(d == 7.0);

    const tessera_gguf_value* floats = s.value("a.f32");
    CHECK(tessera_gguf_array_type(floats) == TESSERA_GGUF_FLOAT32);
    CHECK(tessera_gguf_array_length(floats) == 2);
    REQUIRE(tessera_gguf_array_float(floats, 1, &d) == TESSERA_OK);
    CHECK(d == -4.0);
    CHECK(tessera_gguf_array_int(floats, 0, &i) == TESSERA_ERROR_TYPE_MISMATCH);

    const tessera_gguf_value* strings = s.value("a.string");
    CHECK(tessera_gguf_array_type(strings) == TESSERA_GGUF_STRING);
    REQUIRE(tessera_gguf_array_length(strings) == 3);
    const char* str = nullptr;
    size_t len = 99;
    REQUIRE(tessera_gguf_array_string(strings, 0, &str, &len) == TESSERA_OK);
    CHECK(string_of(str, len) == "alpha");
    REQUIRE(tessera_gguf_array_string(strings, 1, &str, &len) == TESSERA_OK);
    CHECK(len == 0);
    REQUIRE(tessera_gguf_array_string(strings, 2, &str, &len) == TESSERA_OK);
    CHECK(string_of(str, len) == "gamma");
    CHECK(tessera_gguf_array_string(ints, 0, &str, &len) == TESSERA_ERROR_TYPE_MISMATCH);
    CHECK(tessera_gguf_array_int(strings, 0, &i) == TESSERA_ERROR_TYPE_MISMATCH);

    const tessera_gguf_value* nested = s.value("a.nested");
    CHECK(tessera_gguf_array_type(nested) == TESSERA_GGUF_ARRAY);
    REQUIRE(tessera_gguf_array_length(nested) == 2);
    const tessera_gguf_value* row0 = tessera_gguf_array_item(nested, 0);
    const tessera_gguf_value* row1 = tessera_gguf_array_item(nested, 1);
    REQUIRE(row0 != nullptr);
    REQUIRE(row1 != nullptr);
    CHECK(tessera_gguf_value_type(row0) == TESSERA_GGUF_ARRAY);
    CHECK(tessera_gguf_array_type(row0) == TESSERA_GGUF_UINT8);
    CHECK(tessera_gguf_array_length(row0) == 2);
    CHECK(tessera_gguf_array_length(row1) == 1);
    REQUIRE(tessera_gguf_array_uint(row0, 1, &u) == TESSERA_OK);
    CHECK(u == 2);
    REQUIRE(tessera_gguf_array_int(row1, 0, &i) == TESSERA_OK);
    CHECK(i == 3);
    CHECK(tessera_gguf_array_item(ints, 0) == nullptr);  // not an array of arrays
    CHECK(std::string(tessera_last_error()).find("expected an array of arrays") != std::string::npos);
    CHECK(tessera_gguf_array_int(nested, 0, &i) == TESSERA_ERROR_TYPE_MISMATCH);

    // A scalar is not an array: type UINT8, length 0, and every element read fails.
    const tessera_gguf_value* scalar = s.value("t.u32");
    CHECK(tessera_gguf_array_type(scalar) == TESSERA_GGUF_UINT8);
    CHECK(tessera_gguf_array_length(scalar) == 0);
    CHECK(tessera_gguf_array_int(scalar, 0, &i) == TESSERA_ERROR_TYPE_MISMATCH);
    CHECK(tessera_gguf_array_uint(scalar, 0, &u) == TESSERA_ERROR_TYPE_MISMATCH);
    CHECK(tessera_gguf_array_float(scalar, 0, &d) == TESSERA_ERROR_TYPE_MISMATCH);
    CHECK(tessera_gguf_array_string(scalar, 0, &str, &len) == TESSERA_ERROR_TYPE_MISMATCH);
    CHECK(tessera_gguf_array_item(scalar, 0) == nullptr);
}

TEST_CASE("gguf: an index past the end of an array is an invalid argument") {
    OpenSample s;
    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;
    const char* str = nullptr;
    size_t len = 0;
    CHECK(tessera_gguf_array_int(s.value("a.i32"), 4, &i) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(tessera_last_error()).find("out of range") != std::string::npos);
    CHECK(tessera_gguf_array_uint(s.value("a.i32"), 100, &u) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_array_float(s.value("a.f32"), 2, &d) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_array_string(s.value("a.string"), 3, &str, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_array_item(s.value("a.nested"), 2) == nullptr);
    CHECK(std::string(tessera_last_error()).find("out of range") != std::string::npos);
    CHECK(tessera_gguf_array_int(s.value("a.i32"), std::numeric_limits<uint64_t>::max(), &i) ==
          TESSERA_ERROR_INVALID_ARGUMENT);
}

TEST_CASE("gguf: null values and null outputs are invalid arguments") {
    OpenSample s;
    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;
    const char* str = nullptr;
    size_t len = 0;
    CHECK(tessera_gguf_value_int(nullptr, &i) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_value_uint(nullptr, &u) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_value_float(nullptr, &d) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_value_string(nullptr, &str, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_array_type(nullptr) == TESSERA_GGUF_UINT8);
    CHECK(tessera_gguf_array_length(nullptr) == 0);
    CHECK(tessera_gguf_array_int(nullptr, 0, &i) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_array_uint(nullptr, 0, &u) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_array_float(nullptr, 0, &d) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_array_string(nullptr, 0, &str, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_array_item(nullptr, 0) == nullptr);

    CHECK(tessera_gguf_value_int(s.value("t.i8"), nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_value_uint(s.value("t.u8"), nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_value_float(s.value("t.f32"), nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_value_string(s.value("t.string"), nullptr, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_value_string(s.value("t.string"), &str, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_array_int(s.value("a.i32"), 0, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_array_uint(s.value("a.i32"), 0, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_array_float(s.value("a.f32"), 0, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_array_string(s.value("a.string"), 0, nullptr, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_array_string(s.value("a.string"), 0, &str, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);

    // A null file has no keys, no tensors and zero for every fact.
    CHECK(tessera_gguf_version(nullptr) == 0);
    CHECK(tessera_gguf_alignment(nullptr) == 0);
    CHECK(tessera_gguf_data_offset(nullptr) == 0);
    CHECK(tessera_gguf_file_size(nullptr) == 0);
    CHECK(tessera_gguf_kv_count(nullptr) == 0);
    CHECK(tessera_gguf_kv_key(nullptr, 0) == nullptr);
    CHECK(tessera_gguf_kv_value(nullptr, 0) == nullptr);
    CHECK(tessera_gguf_tensor_count(nullptr) == 0);
    CHECK(tessera_gguf_find_tensor(nullptr, "w") == -1);
    tessera_tensor_info t;
    CHECK(tessera_gguf_tensor(nullptr, 0, &t) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_gguf_close(nullptr);
}

TEST_CASE("gguf: tensors, their shapes and their data") {
    OpenSample s;
    REQUIRE(tessera_gguf_tensor_count(s.f) == 2);
    tessera_tensor_info t{};
    REQUIRE(tessera_gguf_tensor(s.f, 0, &t) == TESSERA_OK);
    CHECK(std::string(t.name) == "w");
    CHECK(t.type == 0);
    CHECK(std::string(tessera_type_name(t.type)) == "F32");
    CHECK(t.n_dims == 2);
    CHECK(t.ne[0] == 4);
    CHECK(t.ne[1] == 2);
    CHECK(t.ne[2] == 1);
    CHECK(t.ne[3] == 1);
    CHECK(t.offset == 0);
    CHECK(t.size == sizeof kWeights);
    REQUIRE(t.data != nullptr);
    CHECK(std::memcmp(t.data, kWeights, sizeof kWeights) == 0);

    REQUIRE(tessera_gguf_tensor(s.f, 1, &t) == TESSERA_OK);
    CHECK(std::string(t.name) == "b");
    CHECK(t.n_dims == 1);
    CHECK(t.ne[0] == 3);
    CHECK(t.offset % 64 == 0);  // the file's alignment
    CHECK(t.offset >= sizeof kWeights);
    CHECK(t.size == sizeof kBias);
    CHECK(std::memcmp(t.data, kBias, sizeof kBias) == 0);
    tessera_tensor_info w{};
    REQUIRE(tessera_gguf_tensor(s.f, 0, &w) == TESSERA_OK);
    CHECK(static_cast<const uint8_t*>(t.data) - static_cast<const uint8_t*>(w.data) ==
          static_cast<std::ptrdiff_t>(t.offset - w.offset));

    CHECK(tessera_gguf_find_tensor(s.f, "b") == 1);
    CHECK(tessera_gguf_find_tensor(s.f, "w") == 0);
    CHECK(tessera_gguf_find_tensor(s.f, "missing") == -1);
    CHECK(tessera_gguf_find_tensor(s.f, nullptr) == -1);

    CHECK(tessera_gguf_tensor(s.f, 2, &t) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(tessera_last_error()).find("out of range") != std::string::npos);
    CHECK(tessera_gguf_tensor(s.f, -1, &t) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_gguf_tensor(s.f, 0, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
}

TEST_CASE("gguf: bad paths and bad files fail to open, naming the file") {
    tessera::test::ScratchDir dir;
    tessera_gguf* f = reinterpret_cast<tessera_gguf*>(1);
    CHECK(tessera_gguf_open(nullptr, &f) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(f == nullptr);
    CHECK(tessera_gguf_open("x.gguf", nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);

    const std::string missing = dir.file("missing.gguf").string();
    f = reinterpret_cast<tessera_gguf*>(1);
    CHECK(tessera_gguf_open(missing.c_str(), &f) == TESSERA_ERROR_IO);
    CHECK(f == nullptr);
    CHECK(std::string(tessera_last_error()).find(missing) != std::string::npos);

    CHECK(tessera_gguf_open(dir.path().string().c_str(), &f) == TESSERA_ERROR_IO);  // a folder
    CHECK(f == nullptr);

    const std::string empty = dir.file("empty.gguf").string();
    tessera::test::write_file_bytes(empty, {});
    CHECK(tessera_gguf_open(empty.c_str(), &f) == TESSERA_ERROR_BAD_FILE);

    const std::string garbage = dir.file("garbage.gguf").string();
    std::vector<uint8_t> noise(4096);
    for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<uint8_t>(i * 131 + 7);
    tessera::test::write_file_bytes(garbage, noise);
    CHECK(tessera_gguf_open(garbage.c_str(), &f) == TESSERA_ERROR_BAD_FILE);
    CHECK(f == nullptr);
    CHECK(std::string(tessera_last_error()).find("garbage.gguf: invalid GGUF") != std::string::npos);

    // The sample cut short at several points: in the header, the metadata, the first
    // tensor's info (just after its name) and the last tensor's data.
    const std::vector<uint8_t> whole = sample_writer().to_bytes();
    const uint8_t name_w[9] = {1, 0, 0, 0, 0, 0, 0, 0, 'w'};
    const auto info_w = std::search(whole.begin(), whole.end(), std::begin(name_w), std::end(name_w));
    REQUIRE(info_w != whole.end());
    const std::string good = dir.file("good.gguf").string();
    tessera::test::write_file_bytes(good, whole);
    REQUIRE(tessera_gguf_open(good.c_str(), &f) == TESSERA_OK);
    tessera_tensor_info bias{};
    REQUIRE(tessera_gguf_tensor(f, 1, &bias) == TESSERA_OK);
    const size_t in_bias = static_cast<size_t>(tessera_gguf_data_offset(f) + bias.offset + 6);
    tessera_gguf_close(f);
    for (size_t cut :
         {size_t{6}, size_t{30}, whole.size() / 3, static_cast<size_t>(info_w - whole.begin()) + 11, in_bias}) {
        CAPTURE(cut);
        const std::string truncated = dir.file("truncated.gguf").string();
        tessera::test::write_file_bytes(truncated, std::vector<uint8_t>(whole.begin(), whole.begin() + cut));
        f = reinterpret_cast<tessera_gguf*>(1);
        CHECK(tessera_gguf_open(truncated.c_str(), &f) == TESSERA_ERROR_BAD_FILE);
        CHECK(f == nullptr);
        CHECK(std::string(tessera_last_error()).find("truncated.gguf") != std::string::npos);
    }
}
