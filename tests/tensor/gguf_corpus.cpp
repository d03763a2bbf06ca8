// The GGUF test corpus: a valid sample and malformed files built byte by byte.
#include "tests/tensor/gguf_corpus.h"

#include <cstring>
#include <string_view>

#include "tensor/gguf_writer.h"

namespace tessera::test {
namespace {

using gguf::OwnedValue;
using gguf::ValueType;

// Little-endian GGUF bytes, written field by field.
struct Bytes {
    std::vector<uint8_t> b;
    Bytes& u8(uint8_t v) { return raw(&v, 1); }
    Bytes& u32(uint32_t v) { return raw(&v, 4); }
    Bytes& u64(uint64_t v) { return raw(&v, 8); }
    Bytes& raw(const void* p, size_t n) {
        const uint8_t* c = static_cast<const uint8_t*>(p);
        for (size_t i = 0; i < n; ++i) b.push_back(c[i]);
        return *this;
    }
    Bytes& str(std::string_view s) {
        u64(s.size());
        return raw(s.data(), s.size());
    }
    Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
        u32(0x46554747);
        u32(version);
        u64(n_tensors);
        return u64(n_kv);
    }
    Bytes& kv_u32(std::string_view key, uint32_t v) {
        str(key);
        u32(static_cast<uint32_t>(ValueType::U32));
        return u32(v);
    }
    // One tensor info with n_dims = ne.size().
    Bytes& tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
        str(name);
        u32(static_cast<uint32_t>(ne.size()));
        for (uint64_t d : ne) u64(d);
        u32(type);
        return u64(offset);
    }
    Bytes& pad(size_t alignment = 32) {
        while (b.size() % alignment) b.push_back(0);
        return *this;
    }
    Bytes& zeros(size_t n) {
        b.insert(b.end(), n, 0);
        return *this;
    }
};

// A file with one F32 tensor of `ne` elements and correct data after `prefix` kvs.
std::vector<uint8_t> one_tensor(std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data_bytes) {
    Bytes f;
    f.header(1, 0).tensor("t", std::move(ne), type, offset).pad().zeros(data_bytes);
    return f.b;
}

}  // namespace

std::vector<uint8_t> valid_sample_gguf() {
    gguf::Writer w;
    w.set_alignment(64);
    w.set("v.u8", OwnedValue::u8(200));
    w.set("v.i8", OwnedValue::i8(-100));
    w.set("v.u16", OwnedValue::u16(60000));
    w.set("v.i16", OwnedValue::i16(-30000));
    w.set("v.u32", OwnedValue::u32(4000000000u));
    w.set("v.i32", OwnedValue::i32(-2000000000));
    w.set("v.f32", OwnedValue::f32(0.15625f));
    w.set("v.bool", OwnedValue::boolean(true));
    w.set("v.string", OwnedValue::string("h\xc3\xa9llo \"w\"\n\x01"));
    w.set("v.u64", OwnedValue::u64(18000000000000000000ull));
    w.set("v.i64", OwnedValue::i64(-9000000000000000000ll));
    w.set("v.f64", OwnedValue::f64(-2.5e300));
    const int32_t ints[] = {1, -2, 3, -4, 5, -6, 7, -8, 9, -10};
    w.set("a.i32", OwnedValue::numeric_array(ValueType::I32, ints, 10));
    const float floats[] = {0.5f, -1.25f, 3.0f};
    w.set("a.f32", OwnedValue::numeric_array(ValueType::F32, floats, 3));
    const uint8_t bools[] = {1, 0, 1};
    w.set("a.bool", OwnedValue::numeric_array(ValueType::BOOL, bools, 3));
    w.set("a.string", OwnedValue::string_array({"a", "", "\xe2\x96\x81token", "<0xE2>"}));
    std::vector<OwnedValue> inner;
    const uint16_t u16s[] = {7, 8};
    inner.push_back(OwnedValue::numeric_array(ValueType::U16, u16s, 2));
    inner.push_back(OwnedValue::string_array({"x", "y"}));
    inner.push_back(OwnedValue::array_of_arrays({OwnedValue::string_array({"deep"})}));
    w.set("a.nested", OwnedValue::array_of_arrays(std::move(inner)));
    w.set("a.empty", OwnedValue::numeric_array(ValueType::U64, nullptr, 0));

    // Tensor data: deterministic bytes; the reader checks shapes and offsets, not values.
    static std::vector<uint8_t> data(1 << 16);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 131 + 7);
    const int64_t s_f32[] = {5, 3};
    const int64_t s_f16[] = {7};
    const int64_t s_bf16[] = {2, 2, 2, 2};
    const int64_t s_q4_0[] = {64, 3};
    const int64_t s_q8_0[] = {32, 1, 2};
    const int64_t s_q4_k[] = {256, 2};
    w.add_tensor("weights.f32", DType::F32, s_f32, data.data());
    w.add_tensor("weights.f16", DType::F16, s_f16, data.data());
    w.add_tensor("weights.bf16", DType::BF16, s_bf16, data.data());
    w.add_tensor("weights.q4_0", DType::Q4_0, s_q4_0, data.data());
    w.add_tensor("weights.q8_0", DType::Q8_0, s_q8_0, data.data());
    w.add_tensor("weights.q4_k", DType::Q4_K, s_q4_k, data.data());
    return w.to_bytes();
}

std::vector<CorpusCase> malformed_gguf_corpus() {
    std::vector<CorpusCase> c;
    auto add = [&](std::string name, std::vector<uint8_t> bytes, std::string expected) {
        c.push_back(CorpusCase{std::move(name), std::move(bytes), std::move(expected)});
    };
    const uint64_t huge = 1ull << 62;

    // Header.
    add("tiny", {'G', 'G'}, "truncated");
    add("bad-magic", Bytes{}.u32(0x4c4d4747).u32(3).u64(0).u64(0).b, "not a GGUF file");
    add("version-1", Bytes{}.header(0, 0, 1).b, "version 1 is not supported");
    add("version-4", Bytes{}.header(0, 0, 4).b, "version 4 is not supported");
    add("big-endian", Bytes{}.header(0, 0, 0x03000000).b, "big-endian");
    add("header-truncated", Bytes{}.u32(0x46554747).u32(3).u64(0).b, "truncated");
    add("tensor-count-huge", Bytes{}.header(huge, 0).b, "tensors cannot fit");
    add("kv-count-huge", Bytes{}.header(0, huge).b, "cannot fit");
    add("kv-count-max", Bytes{}.header(0, ~0ull).b, "cannot fit");

    // Metadata.
    add("key-length-huge", Bytes{}.header(0, 1).u64(~0ull - 3).zeros(16).b, "string length");
    add("key-empty", Bytes{}.header(0, 1).str("").u32(4).u32(1).b, "empty key");
    add("key-truncated", Bytes{}.header(0, 1).u64(20).raw("abcdefghijk", 11).b, "string length");
    add("value-type-unknown", Bytes{}.header(0, 1).str("k").u32(13).u32(0).b, "unknown value type id 13");
    add("value-type-max", Bytes{}.header(0, 1).str("k").u32(0xffffffff).u32(0).b, "unknown value type id");
    add("value-truncated", Bytes{}.header(0, 1).str("k").u32(10).u32(0).b, "truncated");
    add("string-length-huge", Bytes{}.header(0, 1).str("k").u32(8).u64(huge).b, "string length");
    add("bool-is-2", Bytes{}.header(0, 1).str("k").u32(7).u8(2).b, "neither 0 nor 1");
    add("array-type-unknown", Bytes{}.header(0, 1).str("k").u32(9).u32(99).u64(1).u32(0).b,
        "unknown value type id 99");
    add("array-count-huge", Bytes{}.header(0, 1).str("k").u32(9).u32(4).u64(huge).b, "cannot fit");
    add("array-count-max", Bytes{}.header(0, 1).str("k").u32(9).u32(12).u64(~0ull).b, "cannot fit");
    add("string-array-count-huge", Bytes{}.header(0, 1).str("k").u32(9).u32(8).u64(huge).b, "cannot fit");
    add("string-array-item-huge",
        Bytes{}.header(0, 1).str("k").u32(9).u32(8).u64(2).str("ok").u64(huge).zeros(8).b, "string length");
    add("nested-array-count-huge", Bytes{}.header(0, 1).str("k").u32(9).u32(9).u64(huge).b, "cannot fit");
    add("bool-array-has-7", Bytes{}.header(0, 1).str("k").u32(9).u32(7).u64(3).u8(1).u8(7).u8(0).b,
        "neither 0 nor 1");
    {
        Bytes f;
        f.header(0, 1).str("k").u32(9);
        for (int i = 0; i < 9; ++i) f.u32(9).u64(1);  // nine levels of arrays of arrays
        f.u32(4).u64(0);
        add("array-nesting-too-deep", f.b, "nested deeper than 8");
    }
    {
        Bytes f;
        f.header(0, 1).str("k").u32(9);
        for (int i = 0; i < 100000; ++i) f.u32(9).u64(1);
        add("array-nesting-100000", f.b, "nested deeper than 8");
    }
    add("duplicate-key", Bytes{}.header(0, 2).kv_u32("a.b", 1).kv_u32("a.b", 2).b, "duplicate key 'a.b'");
    add("alignment-zero", Bytes{}.header(0, 1).kv_u32("general.alignment", 0).b, "not a power of two");
    add("alignment-3", Bytes{}.header(0, 1).kv_u32("general.alignment", 3).b, "not a power of two");
    add("alignment-not-u32", Bytes{}.header(0, 1).str("general.alignment").u32(10).u64(32).b, "expected uint32");

    // Tensor infos.
    add("tensor-name-empty", Bytes{}.header(1, 0).tensor("", {4}, 0, 0).pad().zeros(16).b, "empty tensor name");
    add("tensor-name-huge", Bytes{}.header(1, 0).u64(huge).zeros(40).b, "string length");
    add("tensor-n-dims-0", Bytes{}.header(1, 0).tensor("t", {}, 0, 0).pad().zeros(32).b, "0 dimensions");
    add("tensor-n-dims-5", Bytes{}.header(1, 0).tensor("t", {1, 1, 1, 1, 1}, 0, 0).pad().zeros(32).b,
        "5 dimensions");
    add("tensor-n-dims-huge", Bytes{}.header(1, 0).str("t").u32(0xffffffff).zeros(40).b, "dimensions");
    add("tensor-dim-negative", one_tensor({1ull << 63}, 0, 0, 64), "too large");
    add("tensor-dims-overflow", one_tensor({1ull << 32, 1ull << 32}, 0, 0, 64), "overflows");
    add("tensor-dims-overflow-4d", one_tensor({1ull << 20, 1ull << 20, 1ull << 20, 1ull << 20}, 0, 0, 64),
        "overflows");
    add("tensor-bytes-overflow", one_tensor({1ull << 31, 1ull << 31}, 28, 0, 64), "byte size overflows");
    add("tensor-type-4", one_tensor({32}, 4, 0, 64), "unknown tensor type id 4");
    add("tensor-type-31", one_tensor({32}, 31, 0, 64), "unknown tensor type id 31");
    add("tensor-type-42", one_tensor({32}, 42, 0, 64), "unknown tensor type id 42");
    add("tensor-type-max", one_tensor({32}, 0xffffffff, 0, 64), "unknown tensor type id");
    add("tensor-row-not-block-multiple", one_tensor({33}, 2, 0, 64), "not a multiple of the Q4_0 block size");
    add("tensor-offset-misaligned", one_tensor({4}, 0, 1, 64), "not a multiple of the alignment");
    add("tensor-offset-out-of-range", one_tensor({4}, 0, 1024, 64), "outside the data section");
    add("tensor-offset-wraps", one_tensor({8}, 0, ~0ull - 31, 64), "outside the data section");
    add("tensor-data-truncated", one_tensor({64}, 0, 0, 100), "outside the data section");
    add("tensor-duplicate-name",
        Bytes{}.header(2, 0).tensor("w", {4}, 0, 0).tensor("w", {4}, 0, 32).pad().zeros(64).b,
        "duplicate tensor name 'w'");
    add("tensor-info-truncated", Bytes{}.header(1, 0).str("t").u32(2).u64(4).u64(4).u32(0).b, "truncated");
    add("data-section-missing", Bytes{}.header(1, 0).tensor("t", {0}, 0, 0).b, "before the data section");
    {
        // Alignment 4096 pushes the data section past the end of a small file.
        Bytes f;
        f.header(1, 1).kv_u32("general.alignment", 4096).tensor("t", {4}, 0, 0).zeros(64);
        add("data-section-past-end", f.b, "before the data section");
    }
    return c;
}

}  // namespace tessera::test
