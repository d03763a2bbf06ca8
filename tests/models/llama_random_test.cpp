// Random-weight models of awkward shapes (llama, qwen2, qwen3, phi3, gemma3) against
// logits from an independent NumPy forward pass (tests/models/llama_reference.py, outputs
// committed in reference/). Float weights must match to rounding; quantized weights
// within the bound that rounding activations to 8-bit blocks allows (as llama.cpp does).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "runtime/context.h"
#include "runtime/loader.h"
#include "tensor/error.h"
#include "tensor/gguf_writer.h"
#include "tests/models/random_model.h"
#include "tests/test_support.h"

using namespace tessera;

namespace {

struct Reference {
    std::string fingerprint;
    std::vector<int32_t> tokens;
    std::vector<std::vector<double>> f32, f16;  // logits per token
};

Reference read_reference(const std::string& name) {
    std::ifstream f(std::string(TESSERA_SOURCE_DIR) + "/tests/models/reference/" + name + ".txt");
    REQUIRE_MESSAGE(f.good(), "missing reference file for ", name);
    Reference r;
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream in(line);
        std::string tag;
        in >> tag;
        if (tag == "fingerprint")
            in >> r.fingerprint;
        else if (tag == "tokens")
            for (int32_t t; in >> t;) r.tokens.push_back(t);
        else {
            std::vector<double> row;
            for (double v; in >> v;) row.push_back(v);
            (tag == "f32" ? r.f32 : r.f16).push_back(row);
        }
    }
    return r;
}

struct Compare {
    double nmse = 0, max_abs = 0;
    int top1_agree = 0, rows = 0;
};

Compare compare(const runtime::Context& ctx, const std::vector<std::vector<double>>& want) {
    Compare c;
    double err = 0, norm = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        const float* got = ctx.logits(static_cast<int32_t>(i));
        REQUIRE(got != nullptr);
        size_t best_got = 0, best_want = 0;
        for (size_t j = 0; j < want[i].size(); ++j) {
            double d = got[j] - want[i][j];
            err += d * d;
            norm += want[i][j] * want[i][j];
            c.max_abs = std::max(c.max_abs, std::abs(d));
            if (got[j] > got[best_got]) best_got = j;
            if (want[i][j] > want[i][best_want]) best_want = j;
        }
        c.top1_agree += best_got == best_want;
        c.rows++;
    }
    c.nmse = err / norm;
    return c;
}

// Writes a random model into `dir` and loads it with the default placement (all layers on a
// GPU where there is one), or on the CPU alone.
std::unique_ptr<runtime::Model> load_random(test::ScratchDir& dir, const test::RandomLlamaConfig& cfg,
                                            bool cpu_only = false) {
    const std::string path = dir.file(cfg.name + ".gguf").string();
    test::write_random_llama(cfg, path);
    runtime::LoadOptions opt;
    if (cpu_only) opt.n_gpu_layers = 0;
    return runtime::load_model(gguf::File::open(path), opt);
}

}  // namespace

// NMSE bound for a model's logits by weight type and KV cache type.
double bound(DType weights, DType kv) {
    if (weights == DType::F32 || weights == DType::F16) return kv == DType::F32 ? 1e-9 : 1e-6;
    return 5e-4;
}

TEST_CASE("random-weight models of every family match the NumPy reference") {
    test::ScratchDir dir;
    for (const auto& cfg : test::random_llama_configs()) {
        CAPTURE(cfg.name);
        std::string path = dir.file(cfg.name + ".gguf").string();
        test::write_random_llama(cfg, path);
        Reference ref = read_reference(cfg.name);
        char fp[32];
        std::snprintf(fp, sizeof fp, "%016llx", static_cast<unsigned long long>(test::file_fingerprint(path)));
        REQUIRE_MESSAGE(ref.fingerprint == fp,
                        "the generated model differs from the one the reference was made "
                        "from: rerun tests/models/llama_reference.py");
        REQUIRE(ref.tokens == test::reference_tokens(cfg));

        auto model = runtime::load_model(gguf::File::open(path), {});
        for (DType kv : {DType::F32, DType::F16}) {
            CAPTURE(type_name(kv));
            runtime::ContextOptions opt;
            opt.n_ctx = 64;
            opt.kv_type = kv;
            opt.n_threads = 2;
            runtime::Context ctx(*model, opt);
            ctx.decode(ref.tokens, /*all_logits=*/true);
            Compare c = compare(ctx, kv == DType::F32 ? ref.f32 : ref.f16);
            MESSAGE(cfg.name, " kv ", type_name(kv), ": nmse ", c.nmse, ", max |err| ", c.max_abs, ", top-1 ",
                    c.top1_agree, "/", c.rows);
            CHECK(c.nmse < bound(cfg.weight_type, kv));
            CHECK(c.top1_agree == c.rows);
        }

        // The same logits whether the prompt goes in one batch, in batches of 3, or one
        // token at a time through the cache.
        runtime::ContextOptions opt;
        opt.n_ctx = 64;
        opt.kv_type = DType::F32;
        opt.n_batch = 3;
        runtime::Context batched(*model, opt);
        batched.decode(ref.tokens, true);
        CHECK(compare(batched, ref.f32).nmse < bound(cfg.weight_type, DType::F32));
        runtime::Context stepwise(*model, opt);
        for (size_t i = 0; i < ref.tokens.size(); ++i) {
            stepwise.decode(std::span<const int32_t>(&ref.tokens[i], 1), false);
            Compare c = compare(stepwise, {ref.f32[i]});
            CAPTURE(c.nmse);
            CHECK(c.nmse < 4 * bound(cfg.weight_type, DType::F32));  // one row: a noisier estimate
        }
        CHECK(stepwise.n_past() == static_cast<int32_t>(ref.tokens.size()));
    }
}

TEST_CASE("decode refuses what does not fit, and leaves the sequence unchanged") {
    test::ScratchDir dir;
    const auto cfg = test::random_llama_configs().front();
    std::string path = dir.file("m.gguf").string();
    test::write_random_llama(cfg, path);
    auto model = runtime::load_model(gguf::File::open(path), {});
    runtime::ContextOptions opt;
    opt.n_ctx = 8;
    runtime::Context ctx(*model, opt);
    std::vector<int32_t> toks = {1, 2, 3, 4, 5, 6};
    ctx.decode(toks, false);
    CHECK_THROWS_WITH(ctx.decode(toks, false), doctest::Contains("do not fit in the context of 8"));
    CHECK(ctx.n_past() == 6);
    std::vector<int32_t> bad = {cfg.n_vocab};
    CHECK_THROWS_WITH(ctx.decode(bad, false), doctest::Contains("outside the vocabulary"));
    CHECK(ctx.n_past() == 6);
}

TEST_CASE("the loader names what is wrong with a model file") {
    test::ScratchDir dir;
    auto cfg = test::random_llama_configs().front();
    std::string path = dir.file("m.gguf").string();
    test::write_random_llama(cfg, path);
    // Drop a tensor and misshape another by rewriting the file through the writer.
    auto f = gguf::File::open(path);
    gguf::Writer w;
    for (size_t i = 0; i < f->n_kv(); ++i) w.set(f->kv(i).key, gguf::OwnedValue::copy_of(f->kv(i).value));
    for (size_t i = 0; i < f->n_tensors(); ++i) {
        const auto& t = f->tensor(i);
        if (t.name == "blk.1.ffn_up.weight") continue;
        if (t.name == "blk.0.ffn_gate.weight") {
            const int64_t ne[] = {t.ne[1], t.ne[0]};
            w.add_tensor(t.name, t.type, ne, t.data);
            continue;
        }
        w.add_tensor(t.name, t.type, std::span<const int64_t>(t.ne, static_cast<size_t>(t.n_dims)), t.data);
    }
    std::string bad = dir.file("bad.gguf").string();
    w.write(bad);
    try {
        runtime::load_model(gguf::File::open(bad), {});
        FAIL("loaded a model with a missing and a misshapen tensor");
    } catch (const Error& e) {
        std::string msg = e.what();
        CAPTURE(msg);
        CHECK(msg.find("missing tensor 'blk.1.ffn_up.weight' [128, 96]") != std::string::npos);
        CHECK(msg.find("tensor 'blk.0.ffn_gate.weight' has shape [96, 128], expected [128, 96]") != std::string::npos);
    }
}

TEST_CASE("sliding-window layers keep only a ring of rows, and truncation respects it") {
    test::ScratchDir dir;
    for (const auto& cfg : test::random_llama_configs()) {
        if (cfg.sliding_window == 0) continue;
        CAPTURE(cfg.name);
        std::string path = dir.file(cfg.name + ".gguf").string();
        test::write_random_llama(cfg, path);
        Reference ref = read_reference(cfg.name);
        auto model = runtime::load_model(gguf::File::open(path), {});
        runtime::ContextOptions opt;
        opt.n_ctx = 64;
        opt.n_batch = 2;
        opt.kv_type = DType::F32;
        runtime::Context ctx(*model, opt);
        REQUIRE(ctx.cache().ring_rows() == cfg.sliding_window + 2);
        CHECK(ctx.cache().bytes() < ctx.cache().full_bytes());
        MESSAGE(cfg.name, ": KV cache ", ctx.cache().bytes(), " bytes instead of ", ctx.cache().full_bytes());
        for (size_t i = 0; i < ref.tokens.size(); ++i) {
            ctx.decode(std::span<const int32_t>(&ref.tokens[i], 1), false);
            CHECK(compare(ctx, {ref.f32[i]}).nmse < 4 * bound(cfg.weight_type, DType::F32));
        }
        // The ring holds the last window + 2 positions: going back two keeps enough ...
        const int32_t n = static_cast<int32_t>(ref.tokens.size());
        REQUIRE(ctx.truncate(n - 2) == n - 2);
        ctx.decode(std::span<const int32_t>(ref.tokens.data() + n - 2, 2), true);
        CHECK(compare(ctx, {ref.f32[static_cast<size_t>(n - 2)], ref.f32[static_cast<size_t>(n - 1)]}).nmse <
              4 * bound(cfg.weight_type, DType::F32));
        // ... going back to the start of a long-gone window does not.
        CHECK(ctx.truncate(1) == 0);
        CHECK(ctx.n_past() == 0);
    }
}

TEST_CASE("an aborted decode leaves the sequence as it was, sliding-window rings included") {
    test::ScratchDir dir;
    for (const auto& cfg : test::random_llama_configs()) {
        CAPTURE(cfg.name);
        auto model = load_random(dir, cfg);
        runtime::ContextOptions opt;
        opt.n_ctx = 64;
        opt.n_batch = 2;  // with a window of 3 or 4, the ring holds 5 or 6 rows
        opt.kv_type = DType::F32;
        std::vector<int32_t> first, second;
        for (int32_t i = 0; i < 12; ++i) first.push_back((i * 7 + 3) % cfg.n_vocab);
        for (int32_t i = 0; i < 9; ++i) second.push_back((i * 5 + 1) % cfg.n_vocab);

        runtime::Context clean(*model, opt);
        clean.decode(first, false);
        clean.decode(second, true);

        // The same, with a decode of 12 tokens (6 batches) stopped once three batches are
        // done, between the two: those batches overwrote ring rows that the first 12
        // tokens' positions still need.
        runtime::Context ctx(*model, opt);
        ctx.decode(first, false);
        std::vector<int32_t> other(12, 5 % cfg.n_vocab);
        ctx.set_abort([&] { return ctx.n_past() >= 12 + 3 * 2; });
        CHECK_THROWS_WITH(ctx.decode(other, false), doctest::Contains("aborted"));
        CHECK(ctx.n_past() == 12);
        ctx.set_abort({});
        ctx.decode(second, true);
        REQUIRE(ctx.n_outputs() == clean.n_outputs());
        double worst = 0;
        for (int32_t i = 0; i < ctx.n_outputs(); ++i)
            for (int32_t v = 0; v < cfg.n_vocab; ++v)
                worst = std::max(worst, static_cast<double>(std::abs(ctx.logits(i)[v] - clean.logits(i)[v])));
        CHECK(worst == 0.0);
    }
}

namespace {

// Logits of every token of `tokens` decoded alone in a context of one sequence.
std::vector<std::vector<double>> alone(const runtime::Model& model, const runtime::ContextOptions& opt,
                                       const std::vector<int32_t>& tokens) {
    runtime::Context ctx(model, opt);
    ctx.decode(tokens, true);
    std::vector<std::vector<double>> out;
    for (int32_t i = 0; i < ctx.n_outputs(); ++i) {
        const float* l = ctx.logits(i);
        out.emplace_back(l, l + model.hp.n_vocab);
    }
    return out;
}

double nmse_of(const float* got, const std::vector<double>& want) {
    double err = 0, norm = 0;
    for (size_t j = 0; j < want.size(); ++j) {
        err += (got[j] - want[j]) * (got[j] - want[j]);
        norm += want[j] * want[j];
    }
    return norm > 0 ? err / norm : err;
}

}  // namespace

TEST_CASE("several sequences decoded in one batch each get the logits they get alone") {
    test::ScratchDir dir;
    for (const auto& cfg : test::random_llama_configs()) {
        CAPTURE(cfg.name);
        auto model = load_random(dir, cfg);
        runtime::ContextOptions one;
        one.n_ctx = 64;
        one.kv_type = DType::F32;
        std::vector<int32_t> a, b;
        for (int32_t i = 0; i < 7; ++i) a.push_back((i * 7 + 3) % cfg.n_vocab);
        for (int32_t i = 0; i < 10; ++i) b.push_back((i * 5 + 1) % cfg.n_vocab);
        const auto want_a = alone(*model, one, a), want_b = alone(*model, one, b);
        // The CPU's products give a row the same value in any batch; a GPU's decoding kernels
        // (up to 8 rows, int8 activations on quantized weights) and its prompt kernels (f16
        // operands) round differently: up to 1e-3 on these small random models' quantized
        // weights, measured on an H200.
        const bool quantized = cfg.weight_type != DType::F32 && cfg.weight_type != DType::F16;
        const double row_bound = model->n_gpu_layers == 0 ? 1e-9 : quantized ? 5e-3 : 1e-5;

        runtime::ContextOptions multi = one;
        multi.n_ctx = 66;  // 22 cells per sequence
        multi.n_seq = 3;
        multi.n_batch = 5;  // batches cut across both sequences
        runtime::Context ctx(*model, multi);
        REQUIRE(ctx.cache().ring_rows() == 0);
        CHECK(ctx.seq_cells() == 22);
        // The first 4 tokens of a and 6 of b, interleaved, logits of all; then the rest.
        std::vector<runtime::SeqToken> batch;
        std::vector<std::pair<int, int>> order;  // (sequence, position) of each output row
        for (int i = 0; i < 6; ++i) {
            if (i < 4) batch.push_back({a[static_cast<size_t>(i)], 0, true}), order.emplace_back(0, i);
            batch.push_back({b[static_cast<size_t>(i)], 2, true}), order.emplace_back(2, i);
        }
        ctx.decode_seqs(batch);
        CHECK(ctx.seq_len(0) == 4);
        CHECK(ctx.seq_len(2) == 6);
        CHECK(ctx.free_cells() == 66 - 10);
        auto check_rows = [&]() {
            REQUIRE(ctx.n_outputs() == static_cast<int32_t>(order.size()));
            for (size_t r = 0; r < order.size(); ++r) {
                const auto& want = order[r].first == 0 ? want_a : want_b;
                CAPTURE(r);
                CHECK(nmse_of(ctx.logits(static_cast<int32_t>(r)), want[static_cast<size_t>(order[r].second)]) <
                      row_bound);
            }
        };
        check_rows();
        batch.clear(), order.clear();
        for (int i = 4; i < 10; ++i) {  // a from 4 (the logits of its last only), b from 6
            if (i < 7) {
                batch.push_back({a[static_cast<size_t>(i)], 0, i == 6});
                if (i == 6) order.emplace_back(0, i);
            }
            if (i >= 6) batch.push_back({b[static_cast<size_t>(i)], 2, true}), order.emplace_back(2, i);
        }
        ctx.decode_seqs(batch);
        check_rows();

        // Going back frees cells, and decoding again gives the same logits.
        ctx.seq_truncate(2, 5);
        CHECK(ctx.seq_len(2) == 5);
        CHECK(ctx.free_cells() == 66 - 12);
        batch = {{b[5], 2, true}, {b[6], 2, true}};
        order = {{2, 5}, {2, 6}};
        ctx.decode_seqs(batch);
        check_rows();

        // More tokens than a sequence's cells, or a sequence out of range: refused, and
        // nothing changes.
        std::vector<runtime::SeqToken> big(23, runtime::SeqToken{1, 1, false});
        big.insert(big.begin(), runtime::SeqToken{1, 0, false});
        CHECK_THROWS_WITH(ctx.decode_seqs(big), doctest::Contains("do not fit in sequence 1's 22 cells"));
        std::vector<runtime::SeqToken> bad_seq = {{1, 3, true}};
        CHECK_THROWS_WITH(ctx.decode_seqs(bad_seq), doctest::Contains("sequence 3"));
        CHECK(ctx.seq_len(1) == 0);
        CHECK(ctx.seq_len(0) == 7);
        CHECK(ctx.free_cells() == 66 - 14);
        ctx.seq_truncate(0, 0);
        CHECK(ctx.free_cells() == 66 - 7);
        CHECK_THROWS_WITH(ctx.decode(a, false), doctest::Contains("decode_seqs"));
    }
}

// What a server promises its users: a sequence's logits are the same, bit for bit, whatever
// the other sequences in its batches are, however its prompt was cut into batches, and
// whichever of the context's sequences it is.
TEST_CASE("a sequence's logits do not depend, bit for bit, on what shares its batches") {
    test::ScratchDir dir;
    for (const auto& cfg : test::random_llama_configs()) {
        CAPTURE(cfg.name);
        // On the CPU: the GPU backends' products are not batch-invariant (the test above
        // bounds what they give).
        auto model = load_random(dir, cfg, /*cpu_only=*/true);
        // Over 256 keys, so attention takes its keys in more than one chunk, and batches
        // of many rows beside single rows: every way a row's attention can be scheduled.
        const int n_prompt = 290, n_gen = 6;
        runtime::ContextOptions opt;
        opt.n_ctx = 3 * 320;
        opt.n_seq = 3;
        opt.n_batch = 64;
        std::vector<int32_t> a, b, c;
        for (int32_t i = 0; i < n_prompt + n_gen; ++i) a.push_back((i * 7 + 3) % cfg.n_vocab);
        for (int32_t i = 0; i < 120; ++i) b.push_back((i * 5 + 1) % cfg.n_vocab);
        for (int32_t i = 0; i < 150; ++i) c.push_back((i * 11 + 2) % cfg.n_vocab);
        const size_t n_vocab = static_cast<size_t>(cfg.n_vocab);

        // Alone, as sequence 1: the prompt in batches of 64, then tokens one by one.
        std::vector<std::vector<float>> want;
        runtime::Context solo(*model, opt);
        std::vector<runtime::SeqToken> batch;
        for (int i = 0; i < n_prompt; ++i) batch.push_back({a[static_cast<size_t>(i)], 1, true});
        solo.decode_seqs(batch);
        for (int32_t r = 0; r < solo.n_outputs(); ++r) want.emplace_back(solo.logits(r), solo.logits(r) + n_vocab);
        for (int i = n_prompt; i < n_prompt + n_gen; ++i) {
            solo.decode_seqs(std::vector<runtime::SeqToken>{{a[static_cast<size_t>(i)], 1, true}});
            want.emplace_back(solo.logits(0), solo.logits(0) + n_vocab);
        }

        // Together, as sequence 2: its prompt three tokens at a time beside pieces of the
        // others' prompts, then one token per step beside theirs.
        runtime::Context ctx(*model, opt);
        std::vector<std::vector<float>> got;
        size_t ib = 0, ic = 0;
        for (int i = 0; i < n_prompt + n_gen;) {
            batch.clear();
            const int take = i < n_prompt ? std::min(3, n_prompt - i) : 1;
            for (int k = 0; k < 2 && ib < b.size(); ++k) batch.push_back({b[ib++], 0, k == 1});
            for (int k = 0; k < take; ++k) batch.push_back({a[static_cast<size_t>(i + k)], 2, true});
            if (ic < c.size()) batch.push_back({c[ic++], 1, true});
            ctx.decode_seqs(batch);
            int32_t row = 0;
            for (const runtime::SeqToken& t : batch) {
                if (!t.logits) continue;
                if (t.seq == 2) got.emplace_back(ctx.logits(row), ctx.logits(row) + n_vocab);
                ++row;
            }
            i += take;
        }
        REQUIRE(got.size() == want.size());
        for (size_t p = 0; p < want.size(); ++p) {
            CAPTURE(p);
            CHECK(std::memcmp(got[p].data(), want[p].data(), n_vocab * sizeof(float)) == 0);
        }
    }
}
