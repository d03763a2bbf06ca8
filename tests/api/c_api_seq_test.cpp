// Several sequences in one C API context (n_seq >= 1), with the real default model: each
// sequence decodes as it does alone, and a sequence's state saved from one context and loaded
// into another goes on the same way.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "tessera.h"
#include "tests/api/c_api_test_support.h"
#include "tests/test_support.h"

using namespace tessera::test;

namespace {

// Two contexts of 128 cells shared by two sequences.
tessera_context_params two_seq_params() {
    tessera_context_params cp = tessera_context_default_params();
    cp.n_ctx = 128;
    cp.n_seq = 2;
    cp.n_threads = 2;
    return cp;
}

void two_seq_contexts(tessera_model* m, tessera_context** a, tessera_context** b) {
    const tessera_context_params cp = two_seq_params();
    REQUIRE(tessera_context_new(m, &cp, a) == TESSERA_OK);
    REQUIRE(tessera_context_new(m, &cp, b) == TESSERA_OK);
}

}  // namespace

TEST_CASE("with the real model: several sequences in one context, each as it is alone") {
    if (!have_model()) return;
    LoadedModel lm;
    tessera_context *solo = nullptr, *both = nullptr;
    two_seq_contexts(lm.m, &solo, &both);
    CHECK(tessera_seq_cells(both) == 64);
    CHECK(tessera_context_free_cells(both) == 128);
    const int32_t n_vocab = tessera_vocab_size(lm.m);
    const std::vector<int32_t> p = {504, 3575, 282, 4649, 314}, q = {9038, 2114, 253, 655};

    // p alone as sequence 0, then p beside q (p as sequence 1, its tokens interleaved).
    std::vector<tessera_seq_token> batch;
    for (int32_t t : p) batch.push_back({t, 0, 1});
    REQUIRE(tessera_decode_seqs(solo, batch.data(), static_cast<int32_t>(batch.size())) == TESSERA_OK);
    batch.clear();
    for (size_t i = 0; i < p.size(); ++i) {
        if (i < q.size()) batch.push_back({q[i], 0, 0});
        batch.push_back({p[i], 1, 1});
    }
    REQUIRE(tessera_decode_seqs(both, batch.data(), static_cast<int32_t>(batch.size())) == TESSERA_OK);
    CHECK(tessera_seq_len(both, 0) == 4);
    CHECK(tessera_seq_len(both, 1) == 5);
    CHECK(tessera_context_free_cells(both) == 128 - 9);
    for (int32_t i = 0; i < static_cast<int32_t>(p.size()); ++i) {
        CAPTURE(i);
        const float* a = tessera_get_logits(solo, i);
        const float* b = tessera_get_logits(both, i);
        REQUIRE(a != nullptr);
        REQUIRE(b != nullptr);
        CHECK(std::memcmp(a, b, static_cast<size_t>(n_vocab) * sizeof(float)) == 0);
    }

    // A sequence's own cells bound it; a plain decode, a bad sequence: refused, nothing changes.
    std::vector<tessera_seq_token> big(60, tessera_seq_token{q[0], 1, 0});
    CHECK(tessera_decode_seqs(both, big.data(), 60) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(tessera_last_error()).find("sequence 1's 64 cells") != std::string::npos);
    tessera_seq_token bad = {q[0], 2, 1};
    CHECK(tessera_decode_seqs(both, &bad, 1) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_decode(both, p.data(), 1, 0) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_seq_len(both, 1) == 5);
    tessera_seq_truncate(both, 1, 2);
    CHECK(tessera_seq_len(both, 1) == 2);
    CHECK(tessera_context_free_cells(both) == 128 - 6);
    CHECK(tessera_seq_cells(nullptr) == 0);
    tessera_context_free(both);
    tessera_context_free(solo);
}

TEST_CASE("with the real model: a sequence's state saved and loaded into another context goes on alike") {
    if (!have_model()) return;
    LoadedModel lm;
    tessera_context *a = nullptr, *b = nullptr;
    two_seq_contexts(lm.m, &a, &b);
    const int32_t n_vocab = tessera_vocab_size(lm.m);
    const std::vector<int32_t> p = {504, 3575, 282, 4649, 314};
    std::vector<tessera_seq_token> batch;
    for (int32_t t : p) batch.push_back({t, 0, 0});
    REQUIRE(tessera_decode_seqs(a, batch.data(), static_cast<int32_t>(batch.size())) == TESSERA_OK);

    const size_t size = tessera_seq_state_size(a, 5);
    CHECK(size > 0);
    CHECK(size == 5 * tessera_seq_state_size(a, 1));
    std::vector<uint8_t> state(size);
    REQUIRE(tessera_seq_state_save(a, 0, 5, state.data(), size) == TESSERA_OK);
    // Refused, with nothing changed: more tokens than the sequence holds, a size that does not
    // match, a sequence out of range.
    CHECK(tessera_seq_state_save(a, 0, 6, state.data(), size) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_seq_state_load(b, 1, 5, state.data(), size - 1) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_seq_state_load(b, 2, 5, state.data(), size) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_seq_len(b, 1) == 0);
    CHECK(tessera_seq_state_size(nullptr, 5) == 0);
    CHECK(tessera_seq_state_size(a, 65) == 0);  // more than a sequence's cells

    // Into sequence 1 of the other context, beside a sequence that holds something else.
    tessera_seq_token other = {9038, 0, 0};
    REQUIRE(tessera_decode_seqs(b, &other, 1) == TESSERA_OK);
    REQUIRE(tessera_seq_state_load(b, 1, 5, state.data(), size) == TESSERA_OK);
    CHECK(tessera_seq_len(b, 1) == 5);
    tessera_seq_token next_a = {655, 0, 1}, next_b = {655, 1, 1};
    REQUIRE(tessera_decode_seqs(a, &next_a, 1) == TESSERA_OK);
    REQUIRE(tessera_decode_seqs(b, &next_b, 1) == TESSERA_OK);
    CHECK(std::memcmp(tessera_get_logits(a, 0), tessera_get_logits(b, 0), static_cast<size_t>(n_vocab) * sizeof(float)) ==
          0);

    // A context of one plain sequence has no per-sequence state.
    tessera_context* plain = nullptr;
    tessera_context_params cp = two_seq_params();
    cp.n_seq = 0;
    REQUIRE(tessera_context_new(lm.m, &cp, &plain) == TESSERA_OK);
    CHECK(tessera_seq_state_size(plain, 1) == 0);
    CHECK(tessera_seq_state_save(plain, 0, 0, state.data(), 0) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_context_free(plain);
    tessera_context_free(b);
    tessera_context_free(a);
}

// scripts/test.sh runs this case alone under ThreadSanitizer (build-tsan/): keep its name.
