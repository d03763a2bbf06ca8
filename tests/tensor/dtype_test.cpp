// The type traits table: ids, names, block sizes and bytes per block as GGUF defines them.
#include <doctest/doctest.h>

#include "tensor/dtype.h"

using namespace tessera;

TEST_CASE("type ids equal GGUF's") {
    CHECK(static_cast<uint32_t>(DType::F32) == 0);
    CHECK(static_cast<uint32_t>(DType::Q8_0) == 8);
    CHECK(static_cast<uint32_t>(DType::Q6_K) == 14);
    CHECK(static_cast<uint32_t>(DType::BF16) == 30);
    CHECK(static_cast<uint32_t>(DType::MXFP4) == 39);
}

TEST_CASE("block sizes and bytes per block") {
    struct Row { DType t; uint32_t block; uint32_t bytes; bool quantized; };
    const Row rows[] = {
        {DType::F32, 1, 4, false},    {DType::F16, 1, 2, false},    {DType::BF16, 1, 2, false},
        {DType::Q4_0, 32, 18, true},  {DType::Q4_1, 32, 20, true},  {DType::Q5_0, 32, 22, true},
        {DType::Q5_1, 32, 24, true},  {DType::Q8_0, 32, 34, true},  {DType::Q8_1, 32, 36, true},
        {DType::Q2_K, 256, 84, true}, {DType::Q3_K, 256, 110, true}, {DType::Q4_K, 256, 144, true},
        {DType::Q5_K, 256, 176, true}, {DType::Q6_K, 256, 210, true}, {DType::Q8_K, 256, 292, true},
        {DType::IQ4_NL, 32, 18, true}, {DType::IQ2_XXS, 256, 66, true}, {DType::MXFP4, 32, 17, true},
    };
    for (const Row& r : rows) {
        CAPTURE(type_name(r.t));
        const TypeTraits& tr = type_traits(r.t);
        CHECK(tr.known);
        CHECK(tr.block_size == r.block);
        CHECK(tr.type_size == r.bytes);
        CHECK(tr.quantized == r.quantized);
    }
    CHECK(row_size(DType::Q4_K, 512) == 288);
    CHECK(row_size(DType::F16, 7) == 14);
}

TEST_CASE("unused and out-of-range ids are unknown") {
    for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 42u, 1000u, 0xffffffffu}) {
        CAPTURE(id);
        CHECK_FALSE(type_known(id));
        CHECK(type_traits(id).block_size == 0);
    }
}

TEST_CASE("names round-trip, case-insensitively") {
    for (uint32_t id = 0; id < kTypeCount; ++id) {
        if (!type_known(id)) continue;
        DType t{};
        REQUIRE(type_from_name(type_traits(id).name, &t));
        CHECK(static_cast<uint32_t>(t) == id);
    }
    DType t{};
    CHECK(type_from_name("q4_k", &t));
    CHECK(t == DType::Q4_K);
    CHECK_FALSE(type_from_name("Q4_2", &t));
    CHECK_FALSE(type_from_name("", &t));
}
