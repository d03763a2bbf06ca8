// Element and block types. Ids equal GGUF's (and ggml's) type ids, so a type id read
// from a file is a DType without translation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tessera {

enum class DType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    // 4 and 5 were Q4_2 and Q4_3, removed from the format.
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    // 31..33 were the interleaved Q4_0_4_4 / Q4_0_4_8 / Q4_0_8_8, removed from the format.
    TQ1_0 = 34,
    TQ2_0 = 35,
    // 36..38 were the interleaved IQ4_NL variants, removed from the format.
    MXFP4 = 39,
    NVFP4 = 40,
    Q1_0 = 41,
};

// What the runtime knows about a type. A type with `known == false` is an unused id.
// `has_reference` says whether tensor/quant/ can convert it to and from F32.
struct TypeTraits {
    std::string_view name;
    uint32_t block_size = 0;  // elements per block (1 for plain types)
    uint32_t type_size = 0;   // bytes per block
    bool quantized = false;
    bool known = false;
    bool has_reference = false;
};

inline constexpr uint32_t kTypeCount = 42;  // one past the largest id

// Traits of a type id; an unknown id (including ids past the table) gives
// a value with `known == false`.
const TypeTraits& type_traits(uint32_t id);
inline const TypeTraits& type_traits(DType t) { return type_traits(static_cast<uint32_t>(t)); }

inline bool type_known(uint32_t id) { return type_traits(id).known; }
inline std::string_view type_name(DType t) { return type_traits(t).name; }

// Looks a type up by its name ("Q4_K", case-insensitive). Returns false if none matches.
bool type_from_name(std::string_view name, DType* out);

// Bytes taken by one row of `n` elements; `n` must be a multiple of the block size.
inline size_t row_size(DType t, int64_t n) {
    const TypeTraits& tr = type_traits(t);
    return static_cast<size_t>(n / tr.block_size) * tr.type_size;
}

}  // namespace tessera
