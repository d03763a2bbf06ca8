// The type traits table. Block sizes and byte counts follow the GGUF block layouts
// (see tensor/quant/blocks.h for the layouts themselves).
#include "tensor/dtype.h"

#include <array>
#include <cctype>

namespace tessera {
namespace {

constexpr uint32_t QK = 32;   // block size of the legacy formats
constexpr uint32_t QKK = 256; // block size of the k-quants and i-quants

constexpr std::array<TypeTraits, kTypeCount> make_table() {
    std::array<TypeTraits, kTypeCount> t{};
    auto set = [&](DType id, std::string_view name, uint32_t bs, uint32_t ts, bool q, bool ref) {
        t[static_cast<uint32_t>(id)] = TypeTraits{name, bs, ts, q, true, ref};
    };
    set(DType::F32, "F32", 1, 4, false, true);
    set(DType::F16, "F16", 1, 2, false, true);
    set(DType::Q4_0, "Q4_0", QK, 18, true, true);
    set(DType::Q4_1, "Q4_1", QK, 20, true, true);
    set(DType::Q5_0, "Q5_0", QK, 22, true, true);
    set(DType::Q5_1, "Q5_1", QK, 24, true, true);
    set(DType::Q8_0, "Q8_0", QK, 34, true, true);
    set(DType::Q8_1, "Q8_1", QK, 36, true, true);
    set(DType::Q2_K, "Q2_K", QKK, 84, true, true);
    set(DType::Q3_K, "Q3_K", QKK, 110, true, true);
    set(DType::Q4_K, "Q4_K", QKK, 144, true, true);
    set(DType::Q5_K, "Q5_K", QKK, 176, true, true);
    set(DType::Q6_K, "Q6_K", QKK, 210, true, true);
    set(DType::Q8_K, "Q8_K", QKK, 292, true, true);
    set(DType::IQ2_XXS, "IQ2_XXS", QKK, 66, true, false);
    set(DType::IQ2_XS, "IQ2_XS", QKK, 74, true, false);
    set(DType::IQ3_XXS, "IQ3_XXS", QKK, 98, true, false);
    set(DType::IQ1_S, "IQ1_S", QKK, 50, true, false);
    set(DType::IQ4_NL, "IQ4_NL", QK, 18, true, false);
    set(DType::IQ3_S, "IQ3_S", QKK, 110, true, false);
    set(DType::IQ2_S, "IQ2_S", QKK, 82, true, false);
    set(DType::IQ4_XS, "IQ4_XS", QKK, 136, true, false);
    set(DType::I8, "I8", 1, 1, false, false);
    set(DType::I16, "I16", 1, 2, false, false);
    set(DType::I32, "I32", 1, 4, false, false);
    set(DType::I64, "I64", 1, 8, false, false);
    set(DType::F64, "F64", 1, 8, false, false);
    set(DType::IQ1_M, "IQ1_M", QKK, 56, true, false);
    set(DType::BF16, "BF16", 1, 2, false, true);
    set(DType::TQ1_0, "TQ1_0", QKK, 54, true, false);
    set(DType::TQ2_0, "TQ2_0", QKK, 66, true, false);
    set(DType::MXFP4, "MXFP4", QK, 17, true, false);
    set(DType::NVFP4, "NVFP4", 64, 36, true, false);
    set(DType::Q1_0, "Q1_0", 128, 18, true, false);
    return t;
}

constexpr std::array<TypeTraits, kTypeCount> kTable = make_table();
const TypeTraits kUnknown{};

}  // namespace

const TypeTraits& type_traits(uint32_t id) {
    return id < kTypeCount ? kTable[id] : kUnknown;
}

bool type_from_name(std::string_view name, DType* out) {
    for (uint32_t id = 0; id < kTypeCount; ++id) {
        const TypeTraits& tr = kTable[id];
        if (!tr.known || tr.name.size() != name.size()) continue;
        bool same = true;
        for (size_t i = 0; i < name.size() && same; ++i)
            same = std::toupper(static_cast<unsigned char>(name[i])) == tr.name[i];
        if (same) {
            *out = static_cast<DType>(id);
            return true;
        }
    }
    return false;
}

}  // namespace tessera
