// Helpers the real-model tests share: where scripts/get-model.sh puts a model, the
// committed reference files (tests/models/reference/NAME.txt), greedy argmax, and perplexity
// by llama.cpp's method.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/context.h"
#include "runtime/loader.h"

namespace tessera::test {

inline std::filesystem::path model_path(const std::string& name) {
    const char* dir = std::getenv("TESSERA_MODELS");
    std::filesystem::path base =
        dir && *dir ? std::filesystem::path(dir)
                    : std::filesystem::path(std::getenv("HOME") ? std::getenv("HOME") : "/") / ".cache/tessera/models";
    return base / (name + ".gguf");
}

struct Reference {
    std::vector<int32_t> prompt, greedy, ppl_tokens;
    int32_t n_ctx = 128;  // tokens per perplexity chunk
    double final_ppl = 0;
};

inline Reference read_reference(const std::string& name) {
    std::ifstream f(std::string(TESSERA_SOURCE_DIR) + "/tests/models/reference/" + name + ".txt");
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
        if (tag == "prompt_tokens")
            ids(r.prompt);
        else if (tag == "greedy")
            ids(r.greedy);
        else if (tag == "ppl_tokens")
            ids(r.ppl_tokens);
        else if (tag == "n_ctx")
            in >> r.n_ctx;
        else if (tag == "final")
            in >> r.final_ppl;
    }
    return r;
}

inline int32_t argmax(const float* x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; ++i)
        if (x[i] > x[best]) best = i;
    return best;
}

// Perplexity as llama.cpp computes it: chunks of n_chunk tokens, bos_in_chunks (if >= 0)
// first in each, the second half of each chunk scored.
inline double perplexity(const runtime::Model& model, const std::vector<int32_t>& tokens, int32_t n_chunk,
                         int32_t bos_in_chunks) {
    const int32_t n_vocab = model.hp.n_vocab;
    double nll = 0;
    int64_t count = 0;
    runtime::ContextOptions popt;
    popt.n_ctx = n_chunk;
    runtime::Context pctx(model, popt);
    const size_t n = static_cast<size_t>(n_chunk);
    for (size_t c = 0; (c + 1) * n <= tokens.size(); ++c) {
        std::vector<int32_t> chunk(tokens.begin() + static_cast<std::ptrdiff_t>(c * n),
                                   tokens.begin() + static_cast<std::ptrdiff_t>((c + 1) * n));
        if (bos_in_chunks >= 0) chunk[0] = bos_in_chunks;
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
    REQUIRE(count > 0);
    return std::exp(nll / static_cast<double>(count));
}

}  // namespace tessera::test
