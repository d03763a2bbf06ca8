// The placement's cost model: the sizes it reads from a file, the memory it plans against
// what loading and a context really take, its choice of layer count under speeds and
// budgets, and the measured speeds' cache.
#include <doctest/doctest.h>

#include <cstdlib>

#include "backends/registry.h"
#include "runtime/context.h"
#include "runtime/loader.h"
#include "runtime/placement.h"
#include "runtime/rates.h"
#include "tests/models/random_model.h"
#include "tests/models/reference_support.h"
#include "tests/test_support.h"

using namespace tessera;
using runtime::MachineRates;
using runtime::ModelSizes;
using runtime::Plan;
using runtime::PlanRequest;

namespace {

ModelSizes sizes_of(const std::string& path) {
    auto f = gguf::File::open(path);
    auto m = runtime::load_model(gguf::File::open(path), [] {
        runtime::LoadOptions o;
        o.n_gpu_layers = 0;
        return o;
    }());
    return runtime::model_sizes(*f, m->hp);
}

// A CPU and a GPU whose speeds are given: the GPU `gpu_speedup` times faster at everything.
MachineRates rates(double gpu_speedup) {
    MachineRates r;
    r.cpu.name = "CPU";
    r.cpu.layer_matvec_us = 100;
    r.cpu.layer_gemm_us = 20000;
    r.cpu.layer_ops_us = 10;
    r.cpu.layer_ops_prompt_us = 1000;
    r.cpu.layer_attn_prompt_us = 2000;
    r.cpu.head_gbs = 20;
    r.gpu = r.cpu;
    r.gpu.name = "GPU0";
    for (double* v : {&r.gpu.layer_matvec_us, &r.gpu.layer_gemm_us, &r.gpu.layer_ops_us, &r.gpu.layer_ops_prompt_us,
                      &r.gpu.layer_attn_prompt_us})
        *v /= gpu_speedup;
    r.gpu.head_gbs *= gpu_speedup;
    r.h2d_gbs = 10;
    r.seam_us = 5;
    return r;
}

}  // namespace

TEST_CASE("a model's sizes from its header add up to the file's tensors") {
    test::ScratchDir dir;
    for (const auto& cfg : test::random_llama_configs()) {
        CAPTURE(cfg.name);
        const std::string path = dir.file(cfg.name + ".gguf").string();
        test::write_random_llama(cfg, path);
        const ModelSizes m = sizes_of(path);
        REQUIRE(m.layers.size() == static_cast<size_t>(cfg.n_layer));
        size_t sum = m.head.weight_bytes + m.embd_bytes;
        for (const auto& l : m.layers) {
            sum += l.weight_bytes;
            CHECK(l.matmul_bytes() > 0);
            CHECK(l.matmul_bytes() < l.weight_bytes + 1);
        }
        CHECK(sum == m.total_bytes);
        CHECK(m.kv_bytes_per_cell == static_cast<size_t>(cfg.n_head_kv) * cfg.head_dim * 2 * 2);
        CHECK(m.head.matmul_bytes() > 0);  // the output head, or the tied embedding
        CHECK((m.embd_bytes == 0) == cfg.tied_output);
    }
}

TEST_CASE("the plan's CPU memory is what loading the model and a context take") {
    test::ScratchDir dir;
    for (const auto& cfg : test::random_llama_configs()) {
        CAPTURE(cfg.name);
        const std::string path = dir.file(cfg.name + ".gguf").string();
        test::write_random_llama(cfg, path);
        runtime::LoadOptions lo;
        lo.n_gpu_layers = 0;
        lo.repack = false;
        const auto model = runtime::load_model(gguf::File::open(path), lo);
        const ModelSizes m = runtime::model_sizes(*model->file, model->hp);
        PlanRequest req;
        req.n_ctx = 256;
        req.n_batch = 96;
        const Plan p = runtime::plan_for(m, rates(4), req, 0);
        CHECK(p.n_gpu_layers == 0);
        CHECK(p.gpu_total() == 0);
        CHECK(p.cpu_weight_bytes == model->weight_bytes);

        runtime::ContextOptions co;
        co.n_ctx = req.n_ctx;
        co.n_batch = req.n_batch;
        co.n_threads = 2;
        runtime::Context ctx(*model, co);
        CHECK(p.cpu_kv_bytes == ctx.cache().bytes());
        std::vector<int32_t> prompt;
        for (int32_t i = 0; i < req.n_batch; ++i) prompt.push_back((i * 7 + 1) % cfg.n_vocab);
        ctx.decode(prompt, false);
        CHECK(ctx.compute_bytes() > 0);
        CHECK(ctx.compute_bytes() <= p.cpu_compute_bytes);
    }
}

TEST_CASE("the automatic count: all layers on a faster GPU, none on a slower one, and within the budget") {
    test::ScratchDir dir;
    const auto cfg = test::random_llama_configs()[8];  // six layers, sliding-window ones among them
    REQUIRE(cfg.n_layer == 6);
    const std::string path = dir.file("m.gguf").string();
    test::write_random_llama(cfg, path);
    const ModelSizes m = sizes_of(path);
    PlanRequest req;
    req.n_ctx = 256;

    const Plan fast = runtime::choose_plan(m, rates(10), req);
    CHECK(fast.n_gpu_layers == cfg.n_layer);
    CHECK(fast.fits);
    const Plan slow = runtime::choose_plan(m, rates(0.25), req);
    CHECK(slow.n_gpu_layers == 0);
    MachineRates none = rates(10);
    none.gpu.name.clear();
    CHECK(runtime::choose_plan(m, none, req).n_gpu_layers == 0);

    // Predictions: every layer moved to a 10x faster GPU speeds both up, a 4x slower one slows
    // both; the fixed counts are kept as asked.
    const Plan cpu_only = runtime::plan_for(m, rates(10), req, 0);
    for (int32_t ngl = 1; ngl <= cfg.n_layer; ++ngl) {
        CAPTURE(ngl);
        const Plan p = runtime::plan_for(m, rates(10), req, ngl);
        CHECK(p.n_gpu_layers == ngl);
        CHECK(p.tg_tokens_per_s > cpu_only.tg_tokens_per_s);
        CHECK(p.pp_tokens_per_s > cpu_only.pp_tokens_per_s);
        CHECK(p.gpu_weight_bytes + p.cpu_weight_bytes == cpu_only.cpu_weight_bytes);
        CHECK(p.gpu_kv_bytes + p.cpu_kv_bytes == cpu_only.cpu_kv_bytes);
        const Plan q = runtime::plan_for(m, rates(0.25), req, ngl);
        CHECK(q.tg_tokens_per_s < cpu_only.tg_tokens_per_s);
    }
    // A budget that holds exactly k layers' share gets the most layers that fit it: k, or
    // more where the GPU's share shrinks with another layer (fewer CPU layers' weights
    // streamed through its compute buffer: all of them on it take less than all but one).
    for (int32_t k = 1; k < cfg.n_layer; ++k) {
        CAPTURE(k);
        PlanRequest b = req;
        b.gpu_budget = runtime::plan_for(m, rates(10), req, k).gpu_total();
        int32_t most = 0;
        for (int32_t n = 0; n <= cfg.n_layer; ++n)
            if (runtime::plan_for(m, rates(10), req, n).gpu_total() <= b.gpu_budget) most = n;
        const Plan p = runtime::choose_plan(m, rates(10), b);
        CHECK(p.n_gpu_layers == most);
        CHECK(most >= k);
        CHECK(p.gpu_total() <= b.gpu_budget);
    }
    CHECK(runtime::plan_for(m, rates(10), req, cfg.n_layer).gpu_total() <
          runtime::plan_for(m, rates(10), req, cfg.n_layer - 1).gpu_total());
    PlanRequest tiny = req;
    tiny.gpu_budget = 1024;
    CHECK(runtime::choose_plan(m, rates(10), tiny).n_gpu_layers == 0);
    // A fixed count is kept even over the budget, and says so.
    tiny.n_gpu_layers = 3;
    const Plan over = runtime::choose_plan(m, rates(10), tiny);
    CHECK(over.n_gpu_layers == 3);
    CHECK_FALSE(over.fits);
}

TEST_CASE("a layer split spreads the GPU layers in proportion, and each GPU's share must fit its own budget") {
    // The counts: proportional, whole, in order, summing to the layers asked for.
    CHECK(runtime::split_layers(32, {}) == std::vector<int32_t>{32});
    CHECK(runtime::split_layers(32, {1, 1}) == std::vector<int32_t>{16, 16});
    CHECK(runtime::split_layers(30, {1, 3}) == std::vector<int32_t>{7, 23});  // 7.5 / 22.5: the tie to the later
    CHECK(runtime::split_layers(10, {3, 0, 1}) == std::vector<int32_t>{7, 0, 3});
    CHECK(runtime::split_layers(7, {0, 0}) == std::vector<int32_t>{3, 4});  // all zero: equal
    CHECK(runtime::split_layers(0, {2, 1}) == std::vector<int32_t>{0, 0});
    for (int32_t n = 0; n <= 40; ++n) {
        const auto c = runtime::split_layers(n, {24, 80, 40});
        CHECK(c[0] + c[1] + c[2] == n);
        for (size_t g = 0; g < 3; ++g) CHECK(std::abs(c[g] - n * std::vector<double>{24, 80, 40}[g] / 144.0) < 1.0);
    }

    test::ScratchDir dir;
    const auto cfg = test::random_llama_configs()[8];  // six layers, sliding-window ones among them
    const std::string path = dir.file("m.gguf").string();
    test::write_random_llama(cfg, path);
    const ModelSizes m = sizes_of(path);
    PlanRequest one;
    one.n_ctx = 256;
    PlanRequest two = one;
    two.gpu_split = {1, 2};
    const Plan a = runtime::plan_for(m, rates(10), one, cfg.n_layer);
    const Plan b = runtime::plan_for(m, rates(10), two, cfg.n_layer);
    REQUIRE(a.gpus.size() == 1);
    REQUIRE(b.gpus.size() == 2);
    CHECK(b.gpus[0].n_layers == 2);
    CHECK(b.gpus[1].n_layers == 4);
    // The same weights and cache in all, the head on the second; a compute buffer on each.
    CHECK(b.gpu_weight_bytes == a.gpu_weight_bytes);
    CHECK(b.gpu_kv_bytes == a.gpu_kv_bytes);
    CHECK(b.gpus[1].weight_bytes > b.gpus[0].weight_bytes + m.head.weight_bytes);
    CHECK(b.gpu_compute_bytes > a.gpu_compute_bytes);
    CHECK(b.gpus[0].total() + b.gpus[1].total() == b.gpu_total());
    // A token's activations crossing between the two (down to the host and up again) cost
    // two seams.
    const double crossing = 2.0 * (rates(10).seam_us + static_cast<double>(m.n_embd) * 4.0 / (rates(10).h2d_gbs * 1e3));
    CHECK(1e6 / b.tg_tokens_per_s - 1e6 / a.tg_tokens_per_s == doctest::Approx(crossing).epsilon(1e-6));
    // Each GPU's own budget bounds the automatic count: the whole budget would hold every
    // layer, but not with the second GPU's share over its own.
    PlanRequest tight = two;
    tight.gpu_budgets = {b.gpus[0].total(), b.gpus[1].total() - 1};
    tight.gpu_budget = b.gpu_total();
    CHECK_FALSE(runtime::plan_for(m, rates(10), tight, cfg.n_layer).fits);
    const Plan chosen = runtime::choose_plan(m, rates(10), tight);
    CHECK(chosen.n_gpu_layers < cfg.n_layer);
    CHECK(chosen.fits);
    tight.gpu_budgets[1] += 1;
    CHECK(runtime::choose_plan(m, rates(10), tight).n_gpu_layers == cfg.n_layer);
}

TEST_CASE("the CPU's speeds are measured once and then read from the cache") {
    test::ScratchDir dir;
    const auto cfg = test::random_llama_configs()[3];
    const std::string path = dir.file("m.gguf").string();
    test::write_random_llama(cfg, path);
    const ModelSizes m = sizes_of(path);
    const std::string cache = dir.file("rates.tsv").string();
    setenv("TESSERA_RATES_FILE", cache.c_str(), 1);
    CHECK(runtime::rates_cache_path() == cache);

    auto backends = backends::create_available();
    Backend& cpu = *backends.back();
    int notes = 0;
    runtime::RatesOptions o;
    o.n_threads = 2;
    o.note = [&](const std::string&) { ++notes; };
    const MachineRates a = runtime::machine_rates(cpu, nullptr, m, 64, o);
    CHECK(notes == 1);
    CHECK(a.cpu.layer_matvec_us > 0);
    CHECK(a.cpu.layer_gemm_us > 0);  // (not compared with matvec: on a loaded machine, timing noise)
    CHECK(a.cpu.layer_ops_us > 0);
    CHECK(a.cpu.layer_ops_prompt_us > 0);
    CHECK(a.cpu.layer_attn_prompt_us > 0);
    CHECK(a.cpu.head_gbs > 0);
    CHECK(a.gpu.name.empty());
    CHECK(std::filesystem::file_size(cache) > 0);

    const MachineRates b = runtime::machine_rates(cpu, nullptr, m, 64, o);
    CHECK(notes == 1);  // nothing measured again
    CHECK(b.cpu.layer_matvec_us == doctest::Approx(a.cpu.layer_matvec_us).epsilon(1e-5));
    CHECK(b.cpu.layer_gemm_us == doctest::Approx(a.cpu.layer_gemm_us).epsilon(1e-5));
    // Another thread count is another measurement; without measuring, unknown speeds stay 0.
    o.n_threads = 1;
    o.measure = false;
    const MachineRates c = runtime::machine_rates(cpu, nullptr, m, 64, o);
    CHECK(notes == 1);
    CHECK(c.cpu.layer_matvec_us == 0);
    // A plan from unknown speeds predicts nothing rather than something made up.
    const Plan p = runtime::plan_for(m, c, PlanRequest{}, 0);
    CHECK(p.tg_tokens_per_s == 0);
    CHECK(p.pp_tokens_per_s == 0);
    unsetenv("TESSERA_RATES_FILE");
}

TEST_CASE("a real model: the planned compute buffer holds a 512-token step, and not several times over") {
    const auto path = test::model_path("smollm2-135m-instruct");
    if (!std::filesystem::exists(path)) {
        test::skip_because("model not downloaded (run scripts/get-model.sh smollm2-135m-instruct)");
        return;
    }
    runtime::LoadOptions lo;
    lo.n_gpu_layers = 0;
    const auto model = runtime::load_model(gguf::File::open(path.string()), lo);
    const ModelSizes m = runtime::model_sizes(*model->file, model->hp);
    PlanRequest req;
    req.n_ctx = 1024;
    const Plan p = runtime::plan_for(m, rates(4), req, 0);
    runtime::ContextOptions co;
    co.n_ctx = req.n_ctx;
    co.n_threads = 2;
    runtime::Context ctx(*model, co);
    CHECK(p.cpu_kv_bytes == ctx.cache().bytes());
    std::vector<int32_t> prompt(512, 42);
    ctx.decode(prompt, false);
    MESSAGE("compute buffer: planned " << p.cpu_compute_bytes << " bytes, taken " << ctx.compute_bytes());
    CHECK(ctx.compute_bytes() <= p.cpu_compute_bytes);
    CHECK(p.cpu_compute_bytes < 3 * ctx.compute_bytes() + (size_t{16} << 20));
}
