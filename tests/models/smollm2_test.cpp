// The real SmolLM2-135M-Instruct model (scripts/get-model.sh smollm2-135m-instruct)
// against reference values from an independent NumPy implementation
// (tests/models/smollm2_reference.py): a greedy continuation and the perplexity of
// tests/models/data/perplexity.txt, the same method as llama.cpp's perplexity tool.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/context.h"
#include "runtime/loader.h"
#include "tests/test_support.h"

using namespace tessera;

namespace {

std::filesystem::path model_path() {
    const char* dir = std::getenv("TESSERA_MODELS");
    std::filesystem::path base = dir && *dir ? std::filesystem::path(dir)
                                             : std::filesystem::path(std::getenv("HOME") ? std::getenv("HOME") : "/") /
                                                   ".cache/tessera/models";
    return base / "smollm2-135m-instruct.gguf";
}

struct Reference {
    std::vector<int32_t> prompt, greedy, ppl_tokens;
    double final_ppl = 0;
};

Reference read_reference() {
    std::ifstream f(std::string(TESSERA_SOURCE_DIR) + "/tests/models/reference/smollm2-135m-instruct.txt");
    REQUIRE(f.good());
    Reference r;
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream in(line);
        std::string tag;
        in >> tag;
        auto ids = [&](std::vector<int32_t>& v) {
            for (int32_t t; in >> t;) v.push_back(t);
        };
        if (tag == "prompt_tokens") ids(r.prompt);
        else if (tag == "greedy") ids(r.greedy);
        else if (tag == "ppl_tokens") ids(r.ppl_tokens);
        else if (tag == "final") in >> r.final_ppl;
    }
    return r;
}

int32_t argmax(const float* x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; ++i)
        if (x[i] > x[best]) best = i;
    return best;
}

}  // namespace

TEST_CASE("SmolLM2-135M: greedy continuation and perplexity match the reference") {
    const auto path = model_path();
    if (!std::filesystem::exists(path)) {
        test::skip_because("model not downloaded (run scripts/get-model.sh smollm2-135m-instruct)");
        return;
    }
    Reference ref = read_reference();
    auto model = runtime::load_model(gguf::File::open(path.string()), {});
    REQUIRE(model->hp.n_layer == 30);
    const int32_t n_vocab = model->hp.n_vocab;

    runtime::ContextOptions opt;
    opt.n_ctx = 256;
    runtime::Context ctx(*model, opt);
    ctx.decode(ref.prompt, false);
    std::vector<int32_t> got;
    for (size_t i = 0; i < ref.greedy.size(); ++i) {
        int32_t t = argmax(ctx.logits(-1), n_vocab);
        got.push_back(t);
        ctx.decode(std::span<const int32_t>(&t, 1), false);
    }
    size_t same = 0;
    while (same < got.size() && got[same] == ref.greedy[same]) ++same;
    MESSAGE("greedy continuation: ", same, " of ", ref.greedy.size(), " tokens equal to the reference");
    CHECK(same == ref.greedy.size());

    // Perplexity: chunks of 128 tokens, the second half of each scored.
    const int32_t n_chunk = 128;
    double nll = 0;
    int64_t count = 0;
    runtime::ContextOptions popt;
    popt.n_ctx = n_chunk;
    runtime::Context pctx(*model, popt);
    for (size_t c = 0; (c + 1) * n_chunk <= ref.ppl_tokens.size(); ++c) {
        std::span<const int32_t> chunk(ref.ppl_tokens.data() + c * n_chunk, n_chunk);
        pctx.truncate(0);
        pctx.decode(chunk, true);
        for (int32_t j = n_chunk / 2; j < n_chunk - 1; ++j) {
            const float* l = pctx.logits(j);
            double mx = l[argmax(l, n_vocab)], sum = 0;
            for (int32_t v = 0; v < n_vocab; ++v) sum += std::exp(l[v] - mx);
            nll += mx + std::log(sum) - l[chunk[static_cast<size_t>(j + 1)]];
            ++count;
        }
    }
    const double ppl = std::exp(nll / static_cast<double>(count));
    MESSAGE("perplexity ", ppl, " vs reference ", ref.final_ppl);
    CHECK(std::abs(ppl / ref.final_ppl - 1.0) < 0.01);
}
