// A GPU backend on its device, built once per backend (TESSERA_GPU_PREFIX: "CUDA" for
// cuda_test, label cuda; "Vulkan" for vulkan_test, label vulkan, which CI runs on lavapipe):
// every op-parity case placed on the device against the scalar reference, with the CPU
// taking what the device does not support, and the real models with every layer on the
// device against the same models on the CPU (the greedy continuation and the perplexity).
// Skips, saying why, where there is no such device. (The random-weight models of every
// family run on the GPU in llama_random_test, which loads with the default placement: all
// layers on the GPU when there is one.)
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "backends/registry.h"
#include "runtime/quantize.h"
#include "tensor/error.h"
#include "tests/models/random_model.h"
#include "tests/models/reference_support.h"
#include "tests/ops/harness.h"
#include "tests/test_support.h"

using namespace tessera;

namespace {

const std::string kPrefix = TESSERA_GPU_PREFIX;

Backend* find_gpu(const std::vector<std::unique_ptr<Backend>>& backends) {
    for (const auto& b : backends)
        if (b->name().rfind(kPrefix, 0) == 0) return b.get();
    return nullptr;
}

bool skip_without_gpu(Backend* gpu) {
    if (gpu) return false;
    std::string why = "this build has no " + kPrefix + " backend";
    for (const std::string& d : backends::gpu_devices())
        if (d.rfind(kPrefix + ":", 0) == 0) why = d;
    test::skip_because("no " + kPrefix + " device (" + why + ")");
    return true;
}

// A case's error bound on a GPU: the harness's, except for attention on an F16 or Q8_0 cache,
// which a GPU may run on tensor cores with the queries and probabilities rounded to f16 (a
// normalized error near 1e-7; an F32 cache must stay exact).
double gpu_bound(const test::OpCase& c) {
    const bool half_attention = c.name.rfind("flash_attn", 0) == 0 && c.name.find("kv F32") == std::string::npos;
    return half_attention ? std::max(c.max_nmse, 1e-6) : c.max_nmse;
}

}  // namespace

TEST_CASE("every op case on the GPU backend matches the scalar reference") {
    auto backends = backends::create_available();
    Backend* gpu = find_gpu(backends);
    if (skip_without_gpu(gpu)) return;
    Backend& cpu = *backends.back();
    auto cases = test::all_op_cases();
    std::map<std::string, int> passed, total;
    int not_written = 0;
    // TESSERA_TEST_OPS=name: only the cases whose name starts with it (one op while iterating).
    const char* only = std::getenv("TESSERA_TEST_OPS");
    for (const test::OpCase& c : cases) {
        if (only && c.name.rfind(only, 0) != 0) continue;
        CAPTURE(c.name);
        const auto expected = c.reference(c.leaves);
        std::vector<double> got;
        try {
            got = test::run_case(c, *gpu, {gpu, &cpu});
        } catch (const Error& e) {
            // A copy into GPU memory the GPU cannot make (into a type it has no quantizer for,
            // the K-quants; out of the activation-only Q8_1 and Q8_K): the scheduler refuses it,
            // and no model's cache has such a type.
            const bool write = c.name.rfind("cpy ", 0) == 0 || c.name.find("set_rows") != std::string::npos;
            CHECK_MESSAGE(write, e.what());
            ++not_written;
            continue;
        }
        REQUIRE(got.size() == expected.size());
        const double e = test::nmse(got, expected);
        CAPTURE(e);
        const double bound = gpu_bound(c);
        // TESSERA_TEST_PRINT=1: every case's error and bound (how near a kernel is to its bound).
        if (std::getenv("TESSERA_TEST_PRINT")) std::printf("%-60s %.3g / %.3g\n", c.name.c_str(), e, bound);
        CHECK(e <= bound);
        const std::string op = c.name.substr(0, c.name.find(' '));
        ++total[op];
        passed[op] += e <= bound;
    }
    for (const auto& [op, n] : total) std::printf("%s: %d/%d  ", op.c_str(), passed[op], n);
    std::printf("\n%d write cases into types the GPU cannot quantize to were refused\n", not_written);
}

namespace {

// The same model with every layer on the CPU and on the GPU: the greedy continuation of the
// reference prompt must agree (teacher-forced top-1, near ties allowed), and the perplexity
// must be within 0.5% of the CPU's on a float copy of the same weights. Not of the CPU's on the
// file itself: the CPU quantizes the activations of its products on quantized weights to int8
// (blocks of 32, or of 256 for the k-quants, as llama.cpp's CPU does) while the GPU's prompt
// products take f16 ones, and where a model's activations carry outliers that costs the CPU
// more than 0.5% (Gemma 3 270M, measured: 0.9% over the float copy, the GPU 0.01%).
void compare_cpu_gpu(const std::string& name, const std::string& device, int32_t bos_in_chunks) {
    const auto path = test::model_path(name);
    if (!std::filesystem::exists(path)) {
        test::skip_because("model not downloaded (run scripts/get-model.sh " + name + ")");
        return;
    }
    const test::Reference ref = test::read_reference(name);
    runtime::LoadOptions on_cpu, on_gpu;
    on_cpu.n_gpu_layers = 0;
    on_gpu.n_gpu_layers = 1 << 20;
    on_gpu.device = device;
    auto cpu_model = runtime::load_model(gguf::File::open(path.string()), on_cpu);
    auto gpu_model = runtime::load_model(gguf::File::open(path.string()), on_gpu);
    REQUIRE(gpu_model->n_gpu_layers == gpu_model->hp.n_layer);
    REQUIRE(cpu_model->n_gpu_layers == 0);
    const int32_t n_vocab = cpu_model->hp.n_vocab;

    runtime::ContextOptions opt;
    opt.n_ctx = 256;
    std::vector<int32_t> greedy[2];
    const runtime::Model* models[2] = {cpu_model.get(), gpu_model.get()};
    for (int m = 0; m < 2; ++m) {
        runtime::Context ctx(*models[m], opt);
        ctx.decode(ref.prompt, false);
        for (int i = 0; i < 32; ++i) {
            int32_t t = test::argmax(ctx.logits(-1), n_vocab);
            greedy[m].push_back(t);
            ctx.decode(std::span<const int32_t>(&t, 1), false);
        }
    }
    size_t same = 0;
    while (same < greedy[0].size() && greedy[0][same] == greedy[1][same]) ++same;
    // Teacher-forced on the CPU's continuation: where the GPU's top token differs, the CPU's
    // must be a near tie on the GPU.
    runtime::Context forced(*gpu_model, opt);
    std::vector<int32_t> seq = ref.prompt;
    seq.insert(seq.end(), greedy[0].begin(), greedy[0].end() - 1);
    forced.decode(seq, true);
    size_t agree = 0;
    float worst = 0.0f;
    for (size_t i = 0; i < greedy[0].size(); ++i) {
        const float* l = forced.logits(static_cast<int32_t>(ref.prompt.size() - 1 + i));
        const float gap = l[test::argmax(l, n_vocab)] - l[greedy[0][i]];
        agree += gap == 0.0f;
        worst = std::max(worst, gap);
    }
    // Four chunks: the same text for both, few enough for a software Vulkan driver in CI.
    std::vector<int32_t> text = ref.ppl_tokens;
    text.resize(std::min(text.size(), static_cast<size_t>(4 * ref.n_ctx)));
    const double ppl_cpu = test::perplexity(*cpu_model, text, ref.n_ctx, bos_in_chunks);
    const double ppl_gpu = test::perplexity(*gpu_model, text, ref.n_ctx, bos_in_chunks);
    cpu_model.reset();
    test::ScratchDir dir;
    QuantizeOptions as_float;
    as_float.type = "F32";
    quantize_file(path.string(), dir.file("float.gguf").string(), as_float);
    const double ppl_float =
        test::perplexity(*runtime::load_model(gguf::File::open(dir.file("float.gguf").string()), on_cpu), text,
                         ref.n_ctx, bos_in_chunks);
    MESSAGE(name, ": GPU greedy equal to the CPU's for ", same, " of ", greedy[0].size(),
            " tokens; teacher-forced agreement ", agree, ", largest gap ", worst, "; perplexity CPU ", ppl_cpu,
            ", CPU on float weights ", ppl_float, ", GPU ", ppl_gpu);
    CHECK(agree + 2 >= greedy[0].size());
    CHECK(worst < 0.25f);
    CHECK(std::abs(ppl_gpu / ppl_float - 1.0) < 0.005);
}

}  // namespace

TEST_CASE("SmolLM2 all on the GPU gives the CPU's continuation and perplexity") {
    auto backends = backends::create_available();
    Backend* gpu = find_gpu(backends);
    if (skip_without_gpu(gpu)) return;
    compare_cpu_gpu("smollm2-135m-instruct", gpu->name(), -1);
}

TEST_CASE("Gemma 3 all on the GPU gives the CPU's continuation and perplexity") {
    if (kPrefix != "CUDA") {  // lavapipe in CI is too slow for the larger model
        test::skip_because("the Vulkan model test is SmolLM2's; Gemma 3 is compared on CUDA");
        return;
    }
    auto backends = backends::create_available();
    Backend* gpu = find_gpu(backends);
    if (skip_without_gpu(gpu)) return;
    compare_cpu_gpu("gemma3-270m", gpu->name(), 2);
}

TEST_CASE("SmolLM2 and Gemma 3 split by layer over two instances of the GPU give the CPU's continuation") {
    if (kPrefix != "CUDA") {  // lavapipe in CI: vulkan_run_test.sh splits SmolLM2 over two instances
        test::skip_because("the Vulkan split of SmolLM2 is vulkan_run_test's; the real models split here on CUDA");
        return;
    }
    auto backends = backends::create_available();
    Backend* gpu = find_gpu(backends);
    if (skip_without_gpu(gpu)) return;
    compare_cpu_gpu("smollm2-135m-instruct", gpu->name() + "," + gpu->name(), -1);
    compare_cpu_gpu("gemma3-270m", gpu->name() + "," + gpu->name(), 2);
}

namespace {

// Where each weight of a loaded model lives, by name.
std::map<std::string, std::string> homes(const runtime::Model& m) {
    std::map<std::string, std::string> out;
    for (const Tensor& t : m.weights_graph.tensors())
        if (t.buffer) out[t.name] = t.buffer->backend().name();
    return out;
}

// The last-token logits of a short prompt on a model.
std::vector<float> last_logits(const runtime::Model& m, const std::vector<int32_t>& prompt) {
    runtime::ContextOptions opt;
    opt.n_ctx = 64;
    opt.kv_type = DType::F32;
    runtime::Context ctx(m, opt);
    ctx.decode(prompt, false);
    return std::vector<float>(ctx.logits(-1), ctx.logits(-1) + m.hp.n_vocab);
}

}  // namespace

TEST_CASE("a model split between the CPU and the GPU at every layer boundary gives the CPU's logits") {
    auto backends = backends::create_available();
    Backend* gpu = find_gpu(backends);
    if (skip_without_gpu(gpu)) return;
    test::ScratchDir dir;
    for (const auto& cfg : test::random_llama_configs()) {
        CAPTURE(cfg.name);
        const std::string path = dir.file(cfg.name + ".gguf").string();
        test::write_random_llama(cfg, path);
        std::vector<int32_t> prompt;
        for (int32_t i = 0; i < 7; ++i) prompt.push_back((i * 5 + 2) % cfg.n_vocab);
        runtime::LoadOptions opt;
        opt.n_gpu_layers = 0;
        const auto want = last_logits(*runtime::load_model(gguf::File::open(path), opt), prompt);
        for (int32_t ngl = 1; ngl <= cfg.n_layer; ++ngl) {
            CAPTURE(ngl);
            opt.n_gpu_layers = ngl;
            opt.device = gpu->name();
            const auto model = runtime::load_model(gguf::File::open(path), opt);
            REQUIRE(model->n_gpu_layers == ngl);
            // The plan `tessera fit` would print for this count holds what the GPU was given.
            runtime::PlanRequest req;
            req.n_ctx = 64;
            runtime::MachineRates unmeasured;
            unmeasured.gpu.name = gpu->name();
            const runtime::Plan plan =
                runtime::plan_for(runtime::model_sizes(*model->file, model->hp), unmeasured, req, ngl);
            CHECK(plan.gpu_weight_bytes == model->gpu_weight_bytes);
            {
                runtime::ContextOptions co;
                co.n_ctx = req.n_ctx;
                runtime::Context ctx(*model, co);
                size_t on_gpu = 0;
                for (const auto* kv : {&ctx.cache().k(), &ctx.cache().v()})
                    for (const Tensor* t : *kv)
                        if (t->buffer && t->buffer->backend().name() == gpu->name()) on_gpu += t->n_bytes();
                CHECK(plan.gpu_kv_bytes == on_gpu);
            }
            // The CPU rounds the activations of quantized products to 8-bit blocks (as llama.cpp
            // does); a GPU may multiply them unrounded: a difference that grows with the layers
            // on the GPU (up to 7e-4 on these 2- to 6-layer models).
            const bool quantized = type_traits(cfg.weight_type).block_size > 1;
            auto check_logits = [&](const std::vector<float>& got) {
                double err = 0, norm = 0;
                for (size_t j = 0; j < want.size(); ++j)
                    err += (got[j] - want[j]) * (got[j] - want[j]), norm += want[j] * want[j];
                CHECK(err / norm < (quantized ? 2e-3 : 1e-5));
            };
            model->offload_min_batch = 0;
            check_logits(last_logits(*model, prompt));
            size_t gpu_compute = 0;
            {
                runtime::ContextOptions co;
                co.n_ctx = 64;
                runtime::Context ctx(*model, co);
                ctx.decode(prompt, false);
                gpu_compute = ctx.memory().gpu_compute;
            }
            // The CPU layers' prompt products sent to the GPU with their weights: the same
            // logits, and the weights copied into the GPU's compute buffer.
            if (ngl < cfg.n_layer) {
                CAPTURE("offloaded");
                model->offload_min_batch = 1;
                check_logits(last_logits(*model, prompt));
                runtime::ContextOptions co;
                co.n_ctx = 64;
                runtime::Context ctx(*model, co);
                ctx.decode(prompt, false);
                CHECK(ctx.memory().gpu_compute > gpu_compute);
            }
        }
    }
}

TEST_CASE("a model split by layer over two instances of the GPU gives one GPU's logits at every boundary") {
    // Two instances of one device stand in for two GPUs: each has its own queues and memory,
    // and the activations cross between them through host memory as they would between two.
    auto backends = backends::create_available();
    Backend* gpu = find_gpu(backends);
    if (skip_without_gpu(gpu)) return;
    test::ScratchDir dir;
    for (const auto& cfg : test::random_llama_configs()) {
        // Each load makes a device instance of its own (slow on lavapipe): a tied head and an
        // untied one, three weight types, and the six-layer model with sliding windows.
        if (cfg.name.find("tied") == std::string::npos && cfg.name.rfind("qwen2", 0) != 0 &&
            cfg.name.rfind("gemma3", 0) != 0)
            continue;
        CAPTURE(cfg.name);
        const std::string path = dir.file(cfg.name + ".gguf").string();
        test::write_random_llama(cfg, path);
        std::vector<int32_t> prompt;
        for (int32_t i = 0; i < 7; ++i) prompt.push_back((i * 3 + 1) % cfg.n_vocab);
        runtime::LoadOptions one;
        one.device = gpu->name();
        one.n_gpu_layers = cfg.n_layer;
        const auto want = last_logits(*runtime::load_model(gguf::File::open(path), one), prompt);
        // The first instance takes `first` layers (none, one, half, all), the second the rest
        // and the head; then with one layer left on the CPU too (the first).
        for (int32_t ngl : {cfg.n_layer, cfg.n_layer - 1}) {
            std::vector<int32_t> firsts = {ngl / 2};
            if (ngl == cfg.n_layer)
                firsts = ngl > 2 ? std::vector<int32_t>{0, 1, ngl / 2, ngl} : std::vector<int32_t>{0, 1, 2};
            for (int32_t first : firsts) {
                CAPTURE(ngl);
                CAPTURE(first);
                runtime::LoadOptions two = one;
                two.device = gpu->name() + "," + gpu->name();
                two.n_gpu_layers = ngl;
                two.tensor_split = {static_cast<double>(first), static_cast<double>(ngl - first)};
                const auto model = runtime::load_model(gguf::File::open(path), two);
                REQUIRE(model->n_gpu_layers == ngl);
                std::vector<Backend*> expect(static_cast<size_t>(cfg.n_layer - ngl), &model->cpu());
                std::vector<Backend*> instances;
                for (const auto& b : model->backends)
                    if (b->name() == gpu->name()) instances.push_back(b.get());
                REQUIRE(instances.size() == 2);
                expect.insert(expect.end(), static_cast<size_t>(first), instances[0]);
                expect.insert(expect.end(), static_cast<size_t>(ngl - first), instances[1]);
                CHECK(model->layer_backend == expect);
                // Each weight on its layer's instance; the head on the last layer's.
                for (const Tensor& t : model->weights_graph.tensors()) {
                    if (!t.buffer) continue;
                    const std::string name = t.name;
                    if (name.rfind("blk.", 0) == 0)
                        CHECK(&t.buffer->backend() == expect[static_cast<size_t>(std::atoi(name.c_str() + 4))]);
                    else if (name == "output.weight" || name == "output_norm.weight")
                        CHECK(&t.buffer->backend() == expect.back());
                }
                // The plan `tessera fit` would print for this split holds what each was given.
                runtime::PlanRequest req;
                req.n_ctx = 64;
                req.gpu_split = two.tensor_split;
                runtime::MachineRates unmeasured;
                unmeasured.gpu.name = gpu->name();
                const runtime::Plan plan =
                    runtime::plan_for(runtime::model_sizes(*model->file, model->hp), unmeasured, req, ngl);
                REQUIRE(plan.gpus.size() == 2);
                CHECK(plan.gpus[0].n_layers == first);
                CHECK(plan.gpus[1].n_layers == ngl - first);
                CHECK(plan.gpu_weight_bytes == model->gpu_weight_bytes);
                // `tessera fit` asked for the same split plans the same.
                runtime::FitOptions fo;
                fo.n_ctx = req.n_ctx;
                fo.n_gpu_layers = ngl;
                fo.device = two.device;
                fo.tensor_split = two.tensor_split;
                fo.measure = false;
                const runtime::FitResult fit = runtime::fit_model(path, fo);
                CHECK(fit.gpus == std::vector<std::string>{gpu->name(), gpu->name()});
                CHECK(fit.gpu == gpu->name() + "," + gpu->name());
                REQUIRE(fit.plan.gpus.size() == 2);
                CHECK(fit.plan.gpus[0].n_layers == first);
                CHECK(fit.plan.gpus[1].weight_bytes == plan.gpus[1].weight_bytes);
                {
                    runtime::ContextOptions co;
                    co.n_ctx = req.n_ctx;
                    runtime::Context ctx(*model, co);
                    for (size_t g = 0; g < 2; ++g) {
                        size_t kv = 0;
                        for (const auto* cache : {&ctx.cache().k(), &ctx.cache().v()})
                            for (const Tensor* t : *cache)
                                if (t->buffer && &t->buffer->backend() == instances[g]) kv += t->n_bytes();
                        CHECK(plan.gpus[g].kv_bytes == kv);
                    }
                }
                // The same kernels on both instances: the logits of one GPU, up to the CPU layer's
                // 8-bit rounding of the activations of quantized products.
                model->offload_min_batch = 0;
                const auto got = last_logits(*model, prompt);
                const bool quantized = type_traits(cfg.weight_type).block_size > 1;
                double err = 0, norm = 0;
                for (size_t j = 0; j < want.size(); ++j)
                    err += (got[j] - want[j]) * (got[j] - want[j]), norm += want[j] * want[j];
                CHECK(err / norm < (ngl == cfg.n_layer ? 1e-10 : quantized ? 2e-3 : 1e-5));
            }
        }
    }
}

TEST_CASE("tensor overrides move what they name, and a memory budget bounds the automatic placement") {
    auto backends = backends::create_available();
    Backend* gpu = find_gpu(backends);
    if (skip_without_gpu(gpu)) return;
    test::ScratchDir dir;
    const auto cfg = test::random_llama_configs().front();
    const std::string path = dir.file("m.gguf").string();
    test::write_random_llama(cfg, path);
    std::vector<int32_t> prompt;
    for (int32_t i = 0; i < 9; ++i) prompt.push_back((i * 7 + 3) % cfg.n_vocab);

    runtime::LoadOptions on_cpu;
    on_cpu.n_gpu_layers = 0;
    const auto cpu_model = runtime::load_model(gguf::File::open(path), on_cpu);
    const auto want = last_logits(*cpu_model, prompt);

    // Every layer on the GPU but the feed-forward weights, which the override keeps on the CPU.
    runtime::LoadOptions split;
    split.n_gpu_layers = 1 << 20;
    split.device = gpu->name();
    split.tensor_overrides = {{"ffn_(gate|up|down)", "CPU"}};
    const auto model = runtime::load_model(gguf::File::open(path), split);
    int on_gpu = 0, ffn = 0;
    for (const auto& [name, home] : homes(*model)) {
        CAPTURE(name);
        if (name.find("ffn_gate") != std::string::npos || name.find("ffn_up") != std::string::npos ||
            name.find("ffn_down") != std::string::npos) {
            CHECK(home == "CPU");
            ++ffn;
        } else if (name.find("attn_q") != std::string::npos) {
            CHECK(home == gpu->name());
        }
        on_gpu += home == gpu->name();
    }
    CHECK(ffn == 3 * cfg.n_layer);
    CHECK(on_gpu > 0);
    const auto got = last_logits(*model, prompt);
    double err = 0, norm = 0;
    for (size_t j = 0; j < want.size(); ++j) err += (got[j] - want[j]) * (got[j] - want[j]), norm += want[j] * want[j];
    CHECK(err / norm < 1e-6);

    // A tensor moved to the GPU with no layers there.
    runtime::LoadOptions one;
    one.n_gpu_layers = 0;
    one.tensor_overrides = {{"^output\\.weight$", gpu->name()}};
    const auto head_only = runtime::load_model(gguf::File::open(path), one);
    CHECK(head_only->n_gpu_layers == 0);
    CHECK(homes(*head_only)["output.weight"] == gpu->name());
    CHECK(homes(*head_only)["blk.0.attn_q.weight"] == "CPU");

    // The automatic placement within a budget: what its plan puts on the GPU (weights, KV
    // cache, compute buffer) stays within it, a smaller budget takes fewer layers, and the
    // weights really uploaded are the plan's.
    runtime::LoadOptions full;
    full.device = gpu->name();
    const auto all = runtime::load_model(gguf::File::open(path), full);
    REQUIRE(all->n_gpu_layers == cfg.n_layer);
    CHECK(all->gpu_weight_bytes == all->plan.gpu_weight_bytes);
    runtime::LoadOptions budget = full;
    budget.gpu_mem = all->plan.gpu_total() - 1;  // not every layer fits
    const auto bounded = runtime::load_model(gguf::File::open(path), budget);
    CHECK(bounded->n_gpu_layers < cfg.n_layer);
    CHECK(bounded->plan.gpu_total() <= budget.gpu_mem);
    CHECK(bounded->gpu_weight_bytes == bounded->plan.gpu_weight_bytes);
    budget.gpu_mem = 4096;  // nothing fits
    CHECK(runtime::load_model(gguf::File::open(path), budget)->n_gpu_layers == 0);

    runtime::LoadOptions bad = full;
    bad.tensor_overrides = {{"([", "CPU"}};
    CHECK_THROWS_WITH(runtime::load_model(gguf::File::open(path), bad), doctest::Contains("not a regular expression"));
    bad.tensor_overrides = {{"ffn", "NoSuchGPU"}};
    CHECK_THROWS_WITH(runtime::load_model(gguf::File::open(path), bad),
                      doctest::Contains("names a GPU the model does not use"));
}
