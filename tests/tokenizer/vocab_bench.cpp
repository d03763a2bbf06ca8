// Tokenizer throughput: tokenizes a few hundred KB of mixed text (prose and Markdown,
// C++ source, and the multilingual test strings with emoji, CJK and Cyrillic) with each
// of the shared vocabularies and prints MB/s, then the pre-tokenizer splits alone. A
// measuring program, not a test.
//
// usage: vocab_bench [--data DIR] [--kb N] [--runs N] [--parse-special] [FILE...]
//   FILE...          text files to mix (default: the repository's README and tokenizer sources)
//   --parse-special  control-token text in the input becomes those tokens (as in a chat)
//   --only NAME      only the vocabularies whose name contains NAME (and no pre-tokenizers)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/vocab/vocab.h"
#include "tensor/error.h"
#include "tensor/gguf.h"

namespace fs = std::filesystem;

namespace {

std::string read_all(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
    fs::path data;
    if (const char* d = std::getenv("TESSERA_TEST_DATA")) data = d;
#ifdef TESSERA_SOURCE_DIR
    if (data.empty()) data = fs::path(TESSERA_SOURCE_DIR) / ".." / "shared" / "data";
#endif
    size_t kb = 400;
    int runs = 5;
    bool parse_special = false;
    std::string only;
    std::vector<fs::path> files;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--data" && i + 1 < argc) {
            data = argv[++i];
        } else if (a == "--kb" && i + 1 < argc) {
            kb = std::strtoul(argv[++i], nullptr, 10);
        } else if (a == "--runs" && i + 1 < argc) {
            runs = std::max(1, std::atoi(argv[++i]));
        } else if (a == "--only" && i + 1 < argc) {
            only = argv[++i];
        } else if (a == "--parse-special") {
            parse_special = true;
        } else if (a == "-h" || a == "--help") {
            std::printf(
                "usage: vocab_bench [--data DIR] [--kb N] [--runs N] [--parse-special] [--only NAME] [FILE...]\n");
            return 0;
        } else {
            files.push_back(a);
        }
    }
#ifdef TESSERA_SOURCE_DIR
    if (files.empty()) {
        const fs::path src(TESSERA_SOURCE_DIR);
        for (const char* f : {"README.md", "runtime/vocab/vocab.cpp", "runtime/vocab/pretokenize.cpp"})
            if (fs::exists(src / f)) files.push_back(src / f);
    }
#endif
    const char* names[] = {"ggml-vocab-llama-spm", "ggml-vocab-phi-3", "ggml-vocab-gpt-2", "ggml-vocab-bert-bge",
                           "ggml-vocab-gemma-3"};
    std::string mix;
    for (const fs::path& f : files) mix += read_all(f);
    for (const char* n : names) mix += read_all(data / "vocab" / (std::string(n) + ".gguf.inp"));
    if (mix.empty()) {
        std::fprintf(stderr, "error: no text to tokenize (pass files, or --data DIR with vocab/*.inp)\n");
        return 1;
    }
    std::string text;
    while (text.size() < kb * 1024) text += mix;
    text.resize(kb * 1024);
    // Do not cut a character in half at the end.
    while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xc0) == 0x80) text.pop_back();
    if (!text.empty() && static_cast<unsigned char>(text.back()) >= 0xc0) text.pop_back();

    std::printf("text: %zu bytes (%zu files mixed with the vocabularies' test strings), best of %d runs\n", text.size(),
                files.size(), runs);
    std::printf("%-22s %-10s %10s %12s %10s\n", "vocabulary", "tokenizer", "tokens", "MB/s", "Mtok/s");
    for (const char* n : names) {
        if (std::string(n).find(only) == std::string::npos) continue;
        const fs::path path = data / "vocab" / (std::string(n) + ".gguf");
        try {
            auto file = tessera::gguf::File::open(path.string());
            auto vocab = tessera::vocab::Vocab::load(*file);
            std::vector<int32_t> ids;
            double best = 1e30;
            for (int r = 0; r < runs + 1; ++r) {  // the first run warms caches and is not counted
                ids.clear();
                const auto t0 = std::chrono::steady_clock::now();
                vocab->tokenize(text, false, parse_special, ids);
                const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                if (r > 0) best = std::min(best, s);
            }
            const char* kind = vocab->kind() == tessera::vocab::TokenizerKind::Spm   ? "SPM"
                               : vocab->kind() == tessera::vocab::TokenizerKind::Bpe ? "BPE"
                                                                                     : "WordPiece";
            std::printf("%-22s %-10s %10zu %12.2f %10.2f\n", n, kind, ids.size(), text.size() / best / 1e6,
                        ids.size() / best / 1e6);
        } catch (const tessera::Error& e) {
            std::fprintf(stderr, "error: %s\n", e.what());
            return 1;
        }
    }
    if (!only.empty()) return 0;
    // The pre-tokenizers alone (the split that BPE merges within), on the same text.
    std::printf("\n%-22s %10s %12s\n", "pre-tokenizer", "pieces", "MB/s");
    for (const char* pre_name : {"gpt-2", "llama3", "qwen2", "gpt-4o", "tekken", "deepseek-v3", "deepseek-llm",
                                 "deepseek-coder", "falcon", "starcoder", "bloom", "chameleon"}) {
        const tessera::vocab::PreTokenizer* pre = tessera::vocab::find_pre_tokenizer(pre_name);
        tessera::vocab::CodepointText cps;
        std::vector<tessera::vocab::Span> pieces, scratch;
        double best = 1e30;
        for (int r = 0; r < runs + 1; ++r) {
            const auto t0 = std::chrono::steady_clock::now();
            cps.assign(text);
            tessera::vocab::pre_tokenize(*pre, cps, pieces, scratch);
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (r > 0) best = std::min(best, s);
        }
        std::printf("%-22s %10zu %12.2f\n", pre_name, pieces.size(), text.size() / best / 1e6);
    }
    return 0;
}
