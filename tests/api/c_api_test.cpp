// The public C API: every function's error paths (null handles, bad paths, bad files,
// overflow, cancellation) and, with the real default model, loading with progress,
// tokenizing, decoding, sampling, generation with a cancelling callback, two contexts of
// one model on two threads giving the same tokens as one context alone, and
// load/generate/free cycles that LeakSanitizer checks in the sanitizer build.
// The GGUF inspection functions are in c_api_gguf_test.cpp, tessera_generate's in
// c_api_generate_test.cpp, several sequences in one context in c_api_seq_test.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tessera.h"
#include "tests/api/c_api_test_support.h"
#include "tests/test_support.h"

using namespace tessera::test;

namespace {

const char* kChatml =
    "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

}  // namespace

TEST_CASE("version, status names, system information and type names") {
    CHECK(std::strlen(tessera_version()) > 0);
    CHECK(std::string(tessera_status_name(TESSERA_OK)) == "ok");
    CHECK(std::string(tessera_status_name(TESSERA_ERROR_INVALID_ARGUMENT)) == "invalid argument");
    CHECK(std::string(tessera_status_name(TESSERA_ERROR_IO)) == "i/o error");
    CHECK(std::string(tessera_status_name(TESSERA_ERROR_BAD_FILE)) == "bad file");
    CHECK(std::string(tessera_status_name(TESSERA_ERROR_UNSUPPORTED)) == "unsupported");
    CHECK(std::string(tessera_status_name(TESSERA_ERROR_TYPE_MISMATCH)) == "type mismatch");
    CHECK(std::string(tessera_status_name(TESSERA_ERROR_OUT_OF_MEMORY)) == "out of memory");
    CHECK(std::string(tessera_status_name(TESSERA_ERROR_INTERNAL)) == "internal error");
    CHECK(std::string(tessera_status_name(TESSERA_ERROR_TEMPLATE_RAISED)) == "template raised an exception");
    CHECK(std::string(tessera_status_name(TESSERA_ERROR_ABORTED)) == "aborted");
    CHECK(std::string(tessera_status_name(static_cast<tessera_status>(42))) == "unknown status");

    const std::string target = tessera_cpu_target();
    // Every code path tessera.h names.
    const std::vector<std::string> known = {"avx512_amx",   "avx512_vnni", "avx512", "avx2_vnni",
                                            "avx2",         "sse4",        "sve2",   "sve",
                                            "neon_dotprod", "neon",        "emu128", "scalar"};
    CHECK(std::find(known.begin(), known.end(), target) != known.end());
    const std::string info = tessera_system_info();
    CHECK(info.find(std::string("tessera ") + tessera_version()) == 0);
    CHECK(info.find("CPU: " + target) != std::string::npos);
    CHECK(info.find("threads: ") != std::string::npos);
    CHECK(info.find("backends:") != std::string::npos);
    CHECK(tessera_system_info() == tessera_system_info());  // one string for the process

    CHECK(std::string(tessera_type_name(0)) == "F32");
    CHECK(std::string(tessera_type_name(12)) == "Q4_K");
    CHECK(tessera_type_name(4) == nullptr);  // a retired id
    CHECK(tessera_type_name(-1) == nullptr);
    CHECK(tessera_type_name(1000) == nullptr);
    CHECK(tessera_type_block_size(0) == 1);
    CHECK(tessera_type_block_size(2) == 32);
    CHECK(tessera_type_block_size(-1) == 0);
    CHECK(tessera_type_size(0) == 4);
    CHECK(tessera_type_size(2) == 18);
    CHECK(tessera_type_size(-1) == 0);
    CHECK(tessera_type_size(1000) == 0);
}

TEST_CASE("default parameters are the documented ones") {
    const tessera_model_params mp = tessera_model_default_params();
    CHECK(mp.vocab_only == 0);
    CHECK(mp.allow_unknown_pre == 0);
    CHECK(mp.use_mmap == 1);
    CHECK(!mp.progress);
    CHECK(mp.progress_user == nullptr);
    CHECK(mp.n_gpu_layers == -1);
    CHECK(mp.device == nullptr);
    CHECK(mp.split_mode == TESSERA_SPLIT_LAYER);
    CHECK(mp.tensor_split == nullptr);
    CHECK(mp.n_tensor_split == 0);
    CHECK(mp.tensor_overrides == nullptr);
    CHECK(mp.n_tensor_overrides == 0);
    CHECK(mp.gpu_mem == 0);
    CHECK(mp.plan_n_ctx == 0);
    CHECK(mp.plan_n_threads == 0);
    const tessera_fit_params fp = tessera_fit_default_params();
    CHECK(fp.n_ctx == 0);
    CHECK(fp.n_batch == 512);
    CHECK(fp.n_threads == 0);
    CHECK(fp.n_gpu_layers == -1);
    CHECK(fp.device == nullptr);
    CHECK(fp.split_mode == TESSERA_SPLIT_LAYER);
    CHECK(fp.tensor_split == nullptr);
    CHECK(fp.n_tensor_split == 0);
    CHECK(fp.gpu_mem == 0);
    CHECK(fp.measure == 1);
    const tessera_context_params cp = tessera_context_default_params();
    CHECK(cp.n_ctx == 0);
    CHECK(cp.n_batch == 512);
    CHECK(cp.n_seq == 0);
    CHECK(cp.n_threads == 0);
    CHECK(cp.kv_type == 1);
    const tessera_sampler_params sp = tessera_sampler_default_params();
    CHECK(sp.temperature == doctest::Approx(0.8f));
    CHECK(sp.top_k == 40);
    CHECK(sp.top_p == doctest::Approx(0.95f));
    CHECK(sp.min_p == doctest::Approx(0.05f));
    CHECK(sp.repeat_penalty == 1.0f);
    CHECK(sp.repeat_last_n == 64);
    CHECK(sp.presence_penalty == 0.0f);
    CHECK(sp.frequency_penalty == 0.0f);
    CHECK(sp.seed == 0);
}

TEST_CASE("null handles and bad arguments give errors, never crashes") {
    tessera_model* m = reinterpret_cast<tessera_model*>(1);
    CHECK(tessera_model_load(nullptr, nullptr, &m) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(m == nullptr);
    CHECK(tessera_model_load("x.gguf", nullptr, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_context* c = reinterpret_cast<tessera_context*>(1);
    CHECK(tessera_context_new(nullptr, nullptr, &c) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(c == nullptr);
    CHECK(std::strlen(tessera_last_error()) > 0);
    CHECK(tessera_decode(nullptr, nullptr, 1, 0) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_get_logits(nullptr, -1) == nullptr);
    CHECK(tessera_get_n_logits(nullptr) == 0);
    CHECK(tessera_context_n_ctx(nullptr) == 0);
    CHECK(tessera_context_n_past(nullptr) == 0);
    CHECK(tessera_context_truncate(nullptr, 0) == 0);
    tessera_context_reset_timings(nullptr);
    tessera_timings t;
    CHECK(tessera_context_timings(nullptr, &t) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_sampler_params sp = tessera_sampler_default_params();
    sp.repeat_penalty = 0;
    tessera_sampler* s = reinterpret_cast<tessera_sampler*>(1);
    CHECK(tessera_sampler_new(&sp, &s) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(s == nullptr);
    CHECK(tessera_sampler_new(nullptr, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    int32_t tok = 0;
    // Non-finite and out-of-range sampler parameters are refused, the field named (a NaN
    // temperature used to pick the least likely token).
    const struct {
        const char* field;
        void (*set)(tessera_sampler_params&);
    } bad_params[] = {
        {"temperature", [](tessera_sampler_params& p) { p.temperature = NAN; }},
        {"temperature", [](tessera_sampler_params& p) { p.temperature = INFINITY; }},
        {"top_p", [](tessera_sampler_params& p) { p.top_p = NAN; }},
        {"top_p", [](tessera_sampler_params& p) { p.top_p = -0.5f; }},
        {"min_p", [](tessera_sampler_params& p) { p.min_p = -INFINITY; }},
        {"min_p", [](tessera_sampler_params& p) { p.min_p = 1.5f; }},
        {"repeat_penalty", [](tessera_sampler_params& p) { p.repeat_penalty = NAN; }},
        {"presence_penalty", [](tessera_sampler_params& p) { p.presence_penalty = NAN; }},
        {"frequency_penalty", [](tessera_sampler_params& p) { p.frequency_penalty = INFINITY; }},
        {"repeat_last_n", [](tessera_sampler_params& p) { p.repeat_last_n = -1; }},
    };
    for (const auto& b : bad_params) {
        CAPTURE(b.field);
        tessera_sampler_params p = tessera_sampler_default_params();
        b.set(p);
        s = reinterpret_cast<tessera_sampler*>(1);
        CHECK(tessera_sampler_new(&p, &s) == TESSERA_ERROR_INVALID_ARGUMENT);
        CHECK(s == nullptr);
        CHECK(std::string(tessera_last_error()).find(b.field) != std::string::npos);
    }
    CHECK(tessera_sampler_sample(nullptr, nullptr, -1, &tok) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_sampler_accept(nullptr, 1);
    tessera_sampler_reset(nullptr);
    int32_t n_gen = -1;
    CHECK(tessera_generate(nullptr, nullptr, "x", 1, 4, nullptr, nullptr, &n_gen) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(n_gen == 0);
    CHECK(std::string(tessera_model_architecture(nullptr)).empty());
    CHECK(std::string(tessera_model_name(nullptr)).empty());
    CHECK(tessera_model_n_params(nullptr) == 0);
    CHECK(tessera_model_size(nullptr) == 0);
    CHECK(tessera_model_n_layer(nullptr) == 0);
    CHECK(tessera_model_n_embd(nullptr) == 0);
    CHECK(tessera_model_n_ctx_train(nullptr) == 0);
    CHECK(tessera_model_load_ms(nullptr) == 0.0);
    CHECK(tessera_model_gguf(nullptr) == nullptr);

    CHECK(tessera_vocab_size(nullptr) == 0);
    CHECK(tessera_token_bos(nullptr) == -1);
    CHECK(tessera_token_eos(nullptr) == -1);
    int32_t ids[4];
    int32_t n = -1;
    CHECK(tessera_tokenize(nullptr, "a", 1, 0, 0, ids, 4, &n) == TESSERA_ERROR_INVALID_ARGUMENT);
    char buf[8];
    size_t len = 99;
    CHECK(tessera_token_to_piece(nullptr, 0, buf, sizeof buf, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    const char* text = nullptr;
    CHECK(tessera_token_text(nullptr, 0, &text, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_detokenize(nullptr, ids, 1, buf, sizeof buf, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_detokenizer* d = reinterpret_cast<tessera_detokenizer*>(1);
    CHECK(tessera_detokenizer_new(nullptr, &d) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(d == nullptr);
    CHECK(tessera_detokenizer_push(nullptr, 0, &text, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_detokenizer_flush(nullptr, &text, &len) == TESSERA_ERROR_INVALID_ARGUMENT);

    tessera_model_free(nullptr);
    tessera_context_free(nullptr);
    tessera_sampler_free(nullptr);
    tessera_detokenizer_free(nullptr);
    tessera_free(nullptr);
    tessera_chat_messages_free(nullptr, 3);
}

TEST_CASE("bad paths and bad files are reported, with the file named") {
    tessera::test::ScratchDir dir;
    tessera_model* m = nullptr;
    std::string missing = dir.file("missing.gguf").string();
    CHECK(tessera_model_load(missing.c_str(), nullptr, &m) == TESSERA_ERROR_IO);
    CHECK(std::string(tessera_last_error()).find(missing) != std::string::npos);
    std::string bad = dir.file("bad.gguf").string();
    tessera::test::write_file_bytes(bad, {'G', 'G', 'U', 'F', 3, 0, 0, 0, 1});
    CHECK(tessera_model_load(bad.c_str(), nullptr, &m) == TESSERA_ERROR_BAD_FILE);
    CHECK(std::string(tessera_last_error()).find("bad.gguf: invalid GGUF") != std::string::npos);
    CHECK(m == nullptr);
    CHECK(tessera_model_load(dir.path().string().c_str(), nullptr, &m) == TESSERA_ERROR_IO);  // a folder
    CHECK(m == nullptr);

    // The real model cut short: its header promises more than the file holds.
    if (!have_model()) return;
    const std::string cut = dir.file("cut.gguf").string();
    {
        std::vector<uint8_t> head(1 << 20);
        FILE* f = std::fopen(model_path().c_str(), "rb");
        REQUIRE(f != nullptr);
        head.resize(std::fread(head.data(), 1, head.size(), f));
        std::fclose(f);
        tessera::test::write_file_bytes(cut, head);
    }
    m = reinterpret_cast<tessera_model*>(1);
    CHECK(tessera_model_load(cut.c_str(), nullptr, &m) == TESSERA_ERROR_BAD_FILE);
    CHECK(m == nullptr);
    CHECK(std::string(tessera_last_error()).find("cut.gguf") != std::string::npos);
}

TEST_CASE("chat messages parsed from JSON, rendered and freed") {
    tessera_chat_message* msgs = nullptr;
    size_t n = 0;
    REQUIRE(
        tessera_chat_parse_messages(
            R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi \u00e9"}]})",
            &msgs, &n) == TESSERA_OK);
    REQUIRE(n == 2);
    CHECK(std::string(msgs[0].role) == "system");
    CHECK(std::string(msgs[0].content) == "Be brief.");
    CHECK(std::string(msgs[1].role) == "user");
    CHECK(std::string(msgs[1].content) == "Hi \xc3\xa9");
    char* out = nullptr;
    REQUIRE(tessera_chat_render(kChatml, msgs, n, 1, nullptr, nullptr, &out) == TESSERA_OK);
    CHECK(std::string(out) ==
          "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi \xc3\xa9<|im_end|>\n<|im_start|>assistant\n");
    tessera_free(out);
    tessera_chat_messages_free(msgs, n);

    // The bare array, and an empty conversation.
    REQUIRE(tessera_chat_parse_messages(R"([{"role": "user", "content": ""}])", &msgs, &n) == TESSERA_OK);
    REQUIRE(n == 1);
    CHECK(std::string(msgs[0].content).empty());
    tessera_chat_messages_free(msgs, n);
    REQUIRE(tessera_chat_parse_messages("[]", &msgs, &n) == TESSERA_OK);
    CHECK(n == 0);
    tessera_chat_messages_free(msgs, n);

    // Errors leave *messages NULL and *n 0, and say what is wrong.
    const char* bad[] = {
        "",                                                // not JSON
        "[{\"role\": \"user\", \"content\": \"x\"}",       // cut short
        "{\"conversation\": []}",                          // no "messages"
        "{\"messages\": {}}",                              // not an array
        "42",                                              // neither
        "[\"hello\"]",                                     // a message that is not an object
        "[{\"role\": \"user\"}]",                          // no content
        "[{\"role\": \"user\", \"content\": null}]",       // content not a string
        "[{\"role\": 1, \"content\": \"x\"}]",             // role not a string
        "[{\"role\": \"user\", \"content\": \"x\"}, {}]",  // the second one bad
    };
    for (const char* json : bad) {
        CAPTURE(json);
        msgs = reinterpret_cast<tessera_chat_message*>(1);
        n = 7;
        CHECK(tessera_chat_parse_messages(json, &msgs, &n) == TESSERA_ERROR_INVALID_ARGUMENT);
        CHECK(msgs == nullptr);
        CHECK(n == 0);
        CHECK(std::strlen(tessera_last_error()) > 0);
    }
    CHECK(tessera_chat_parse_messages("[{\"role\": \"user\"}]", &msgs, &n) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(tessera_last_error()).find("message 0") != std::string::npos);
    CHECK(tessera_chat_parse_messages(nullptr, &msgs, &n) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_chat_parse_messages("[]", nullptr, &n) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_chat_parse_messages("[]", &msgs, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);

    // The other render entry points, with their error statuses.
    REQUIRE(tessera_chat_render_json(kChatml, R"({"messages": [{"role": "user", "content": "a"}]})", &out) ==
            TESSERA_OK);
    CHECK(std::string(out) == "<|im_start|>user\na<|im_end|>\n");
    tessera_free(out);
    REQUIRE(tessera_chat_render_json_defaults(kChatml, R"({"messages": []})", R"({"add_generation_prompt": true})",
                                              &out) == TESSERA_OK);
    CHECK(std::string(out) == "<|im_start|>assistant\n");
    tessera_free(out);
    CHECK(tessera_chat_render_json("{% if", "{}", &out) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(out == nullptr);
    CHECK(tessera_chat_render_json("{{ raise_exception('no') }}", "{}", &out) == TESSERA_ERROR_TEMPLATE_RAISED);
    CHECK(std::string(tessera_last_error()).find("no") != std::string::npos);
    CHECK(tessera_chat_render(nullptr, nullptr, 0, 0, nullptr, nullptr, &out) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_chat_render_json_defaults(kChatml, "{}", "[]", &out) == TESSERA_ERROR_INVALID_ARGUMENT);
}

TEST_CASE("with the real model: load with progress, cancelled load, information, its GGUF") {
    if (!have_model()) return;
    const std::string path = model_path();
    tessera_model_params mp = tessera_model_default_params();
    int calls = 0;
    mp.progress = [](float p, void* user) -> int32_t {
        ++*static_cast<int*>(user);
        return p >= 0.0f ? 1 : 0;
    };
    mp.progress_user = &calls;
    tessera_model* m = nullptr;
    REQUIRE(tessera_model_load(path.c_str(), &mp, &m) == TESSERA_OK);
    CHECK(calls >= 1);
    CHECK(std::string(tessera_model_architecture(m)) == "llama");
    CHECK(std::string(tessera_model_name(m)).find("Smollm2") == 0);
    CHECK(tessera_model_n_layer(m) == 30);
    CHECK(tessera_model_n_embd(m) == 576);
    CHECK(tessera_model_n_ctx_train(m) == 8192);
    CHECK(tessera_model_n_params(m) > 100000000);
    CHECK(tessera_model_size(m) > 50000000);
    CHECK(tessera_model_load_ms(m) > 0.0);
    CHECK(tessera_vocab_size(m) == 49152);
    CHECK(tessera_token_bos(m) == 1);
    CHECK(tessera_token_eos(m) == 2);
    // Default placement: every layer on a GPU where one is used by default, else none.
    const int32_t on_gpu = tessera_model_n_gpu_layers(m);
    CHECK((on_gpu == 0 || on_gpu == 30));
    CHECK((on_gpu == 0) == (std::string(tessera_model_gpu(m)).empty()));
    CHECK((on_gpu == 0) == (tessera_model_gpu_bytes(m) == 0));
    {  // A device that is not there, and a negative layer count other than -1 (auto), fail.
        tessera_model_params bad = tessera_model_default_params();
        bad.device = "NoSuchGPU";
        tessera_model* other = reinterpret_cast<tessera_model*>(1);
        CHECK(tessera_model_load(path.c_str(), &bad, &other) == TESSERA_ERROR_INVALID_ARGUMENT);
        CHECK(other == nullptr);
        CHECK(std::string(tessera_last_error()).find("device 'NoSuchGPU' not found") != std::string::npos);
        bad = tessera_model_default_params();
        bad.n_gpu_layers = -2;
        CHECK(tessera_model_load(path.c_str(), &bad, &other) == TESSERA_ERROR_INVALID_ARGUMENT);
        // A split mode that is not one, a tensor split that is negative, all zero, without its
        // array or with more proportions than GPUs in use: each fails with its reason.
        bad = tessera_model_default_params();
        bad.split_mode = 2;
        CHECK(tessera_model_load(path.c_str(), &bad, &other) == TESSERA_ERROR_INVALID_ARGUMENT);
        CHECK(std::string(tessera_last_error()).find("split_mode must be") != std::string::npos);
        const float negative[] = {1.0f, -1.0f}, zeros[] = {0.0f, 0.0f};
        const std::pair<const float*, int32_t> splits[] = {{negative, 2}, {zeros, 2}, {nullptr, 2}, {zeros, -1}};
        for (const auto& [split, n] : splits) {
            bad = tessera_model_default_params();
            bad.tensor_split = split;
            bad.n_tensor_split = n;
            CHECK(tessera_model_load(path.c_str(), &bad, &other) == TESSERA_ERROR_INVALID_ARGUMENT);
            CHECK(std::string(tessera_last_error()).find("tensor_split") != std::string::npos);
        }
        const float three[] = {1.0f, 1.0f, 1.0f};
        bad = tessera_model_default_params();
        bad.device = "CPU";
        bad.tensor_split = three;
        bad.n_tensor_split = 3;
        CHECK(tessera_model_load(path.c_str(), &bad, &other) == TESSERA_ERROR_INVALID_ARGUMENT);
        CHECK(std::string(tessera_last_error()).find("3 proportions for 0 GPUs") != std::string::npos);
        bad = tessera_model_default_params();
        bad.n_gpu_layers = 0;
        REQUIRE(tessera_model_load(path.c_str(), &bad, &other) == TESSERA_OK);
        CHECK(tessera_model_n_gpu_layers(other) == 0);
        CHECK(tessera_model_gpu_bandwidth(other) == 0.0);
        tessera_model_free(other);
    }

    // The model's file, through the GGUF API (owned by the model: not closed here).
    const tessera_gguf* g = tessera_model_gguf(m);
    REQUIRE(g != nullptr);
    CHECK(tessera_gguf_version(g) == 3);
    CHECK(tessera_gguf_file_size(g) == std::filesystem::file_size(path));
    const int64_t key = tessera_gguf_find_key(g, "tokenizer.chat_template");
    REQUIRE(key >= 0);
    const char* tmpl = nullptr;
    size_t tmpl_len = 0;
    REQUIRE(tessera_gguf_value_string(tessera_gguf_kv_value(g, key), &tmpl, &tmpl_len) == TESSERA_OK);
    CHECK(std::string(tmpl, tmpl_len).find("im_start") != std::string::npos);
    CHECK(tessera_gguf_tensor_count(g) > 0);
    CHECK(tessera_gguf_find_tensor(g, "token_embd.weight") >= 0);
    tessera_model_free(m);

    // Cancelling the load from the progress callback.
    mp.progress = [](float, void*) -> int32_t { return 0; };
    tessera_model* cancelled = reinterpret_cast<tessera_model*>(1);
    CHECK(tessera_model_load(path.c_str(), &mp, &cancelled) != TESSERA_OK);
    CHECK(std::string(tessera_last_error()).find("cancelled") != std::string::npos);
    CHECK(cancelled == nullptr);

    // Weights read into memory instead of mapped give the same model.
    mp = tessera_model_default_params();
    mp.use_mmap = 0;
    REQUIRE(tessera_model_load(path.c_str(), &mp, &m) == TESSERA_OK);
    CHECK(tessera_model_n_layer(m) == 30);
    tessera_model_free(m);
}

TEST_CASE("with the real model: a placement plan without loading it") {
    tessera_fit_plan plan;
    CHECK(tessera_fit(nullptr, nullptr, &plan) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_fit("x.gguf", nullptr, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    if (!have_model()) return;
    const std::string path = model_path();
    tessera_fit_params fp = tessera_fit_default_params();
    fp.n_gpu_layers = -2;
    CHECK(tessera_fit(path.c_str(), &fp, &plan) == TESSERA_ERROR_INVALID_ARGUMENT);
    fp = tessera_fit_default_params();
    fp.n_ctx = 2048;
    fp.measure = 0;  // no speeds measured here: the memory only
    fp.device = "CPU";
    REQUIRE(tessera_fit(path.c_str(), &fp, &plan) == TESSERA_OK);
    CHECK(plan.n_layer == 30);
    CHECK(plan.n_gpu_layers == 0);
    CHECK(plan.n_ctx == 2048);
    CHECK(std::string(plan.gpu).empty());
    CHECK(plan.gpu_weight_bytes + plan.gpu_kv_bytes + plan.gpu_compute_bytes == 0);
    // The weights are the file's tensors; the cache is 30 layers x 2048 cells x 3 KV heads
    // x 64 x (key, value) x 2 bytes.
    tessera_model* m = nullptr;
    REQUIRE(tessera_model_load(path.c_str(), nullptr, &m) == TESSERA_OK);
    CHECK(plan.cpu_weight_bytes == tessera_model_size(m));
    tessera_model_free(m);
    CHECK(plan.cpu_kv_bytes == uint64_t{30} * 2048 * 3 * 64 * 2 * 2);
    CHECK(plan.cpu_compute_bytes > 0);

    // What a context of the loaded model holds: what the plan said.
    tessera_model_params mp = tessera_model_default_params();
    mp.n_gpu_layers = 0;
    REQUIRE(tessera_model_load(path.c_str(), &mp, &m) == TESSERA_OK);
    tessera_context* ctx = new_context(m, 2048, 2);
    tessera_memory mem;
    CHECK(tessera_context_memory(nullptr, &mem) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_context_memory(ctx, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    const std::vector<int32_t> prompt = tokenize(m, "The capital of France is", true, false);
    REQUIRE(tessera_decode(ctx, prompt.data(), static_cast<int32_t>(prompt.size()), 0) == TESSERA_OK);
    REQUIRE(tessera_context_memory(ctx, &mem) == TESSERA_OK);
    CHECK(mem.gpu_weight_bytes + mem.gpu_kv_bytes + mem.gpu_compute_bytes == 0);
    CHECK(mem.cpu_weight_bytes == plan.cpu_weight_bytes);
    CHECK(mem.cpu_kv_bytes == plan.cpu_kv_bytes);
    CHECK(mem.cpu_compute_bytes > 0);
    CHECK(mem.cpu_compute_bytes <= plan.cpu_compute_bytes);
    tessera_context_free(ctx);
    tessera_model_free(m);
}

TEST_CASE("with the real model: tokenize, pieces, token text, detokenize, streaming") {
    if (!have_model()) return;
    LoadedModel lm(true);  // the tokenizer alone
    tessera_model* m = lm.m;
    CHECK(tessera_vocab_size(m) == 49152);
    CHECK(tessera_model_n_layer(m) == 0);  // vocab-only: no weights
    CHECK(tessera_model_n_params(m) == 0);
    CHECK(tessera_model_gguf(m) != nullptr);
    tessera_context* ctx = reinterpret_cast<tessera_context*>(1);
    CHECK(tessera_context_new(m, nullptr, &ctx) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(ctx == nullptr);
    CHECK(std::string(tessera_last_error()).find("vocab-only") != std::string::npos);

    const std::string text = "Hello world, caf\xc3\xa9 \xe2\x9c\x93!";
    const std::vector<int32_t> ids = tokenize(m, text, true, false);
    REQUIRE(ids.size() > 3);
    CHECK(ids.front() != tessera_token_bos(m));  // SmolLM2 adds no BOS
    int32_t n = 0;
    std::vector<int32_t> small(2);
    CHECK(tessera_tokenize(m, text.data(), text.size(), 1, 0, small.data(), 2, &n) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(n == static_cast<int32_t>(ids.size()));
    CHECK(tessera_tokenize(m, text.data(), text.size(), 1, 0, nullptr, 0, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_tokenize(m, nullptr, 3, 1, 0, small.data(), 2, &n) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_tokenize(m, text.data(), text.size(), 1, 0, small.data(), -1, &n) == TESSERA_ERROR_INVALID_ARGUMENT);
    REQUIRE(tessera_tokenize(m, nullptr, 0, 0, 0, nullptr, 0, &n) == TESSERA_OK);
    CHECK(n == 0);

    // Special-token text: one token when parsed, plain text otherwise.
    CHECK(tokenize(m, "<|im_end|>", false, true) == std::vector<int32_t>{tessera_token_eos(m)});
    CHECK(tokenize(m, "<|im_end|>", false, false).size() > 1);

    // The whole sequence back, and a buffer too small for it.
    char buf[256];
    size_t len = 0;
    REQUIRE(tessera_detokenize(m, ids.data(), static_cast<int32_t>(ids.size()), buf, sizeof buf, &len) == TESSERA_OK);
    CHECK(std::string(buf, len) == text);
    CHECK(buf[len] == '\0');
    CHECK(tessera_detokenize(m, ids.data(), static_cast<int32_t>(ids.size()), buf, 4, &len) ==
          TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(len == text.size());
    REQUIRE(tessera_detokenize(m, nullptr, 0, nullptr, 0, &len) == TESSERA_OK);
    CHECK(len == 0);
    const int32_t out_of_range[2] = {ids[0], 49152};
    CHECK(tessera_detokenize(m, out_of_range, 2, buf, sizeof buf, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_detokenize(m, ids.data(), -1, buf, sizeof buf, &len) == TESSERA_ERROR_INVALID_ARGUMENT);

    // Pieces and raw token text, joined, give the text back.
    std::string pieces;
    for (int32_t id : ids) {
        REQUIRE(tessera_token_to_piece(m, id, buf, sizeof buf, &len) == TESSERA_OK);
        pieces.append(buf, len);
        const char* raw = nullptr;
        size_t raw_len = 0;
        REQUIRE(tessera_token_text(m, id, &raw, &raw_len) == TESSERA_OK);
        CHECK(raw_len > 0);
    }
    CHECK(pieces == text);
    REQUIRE(tessera_token_to_piece(m, tessera_token_eos(m), buf, sizeof buf, &len) == TESSERA_OK);
    CHECK(len == 0);  // control tokens have no piece
    const char* raw = nullptr;
    REQUIRE(tessera_token_text(m, tessera_token_eos(m), &raw, &len) == TESSERA_OK);
    CHECK(std::string(raw, len) == "<|im_end|>");
    CHECK(tessera_token_text(m, -1, &raw, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_token_text(m, 49152, &raw, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_token_text(m, 0, nullptr, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_token_to_piece(m, 49152, buf, sizeof buf, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_token_to_piece(m, ids[0], buf, 0, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(len > 0);  // the length it needs
    CHECK(tessera_token_to_piece(m, ids[0], buf, sizeof buf, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);

    // Streaming: pushed pieces plus the flush equal the whole; a bad id changes nothing.
    tessera_detokenizer* d = nullptr;
    REQUIRE(tessera_detokenizer_new(m, &d) == TESSERA_OK);
    std::string streamed;
    for (int32_t id : ids) {
        const char* piece = nullptr;
        REQUIRE(tessera_detokenizer_push(d, id, &piece, &len) == TESSERA_OK);
        CHECK(std::strlen(piece) == len);
        streamed.append(piece, len);
        CHECK(tessera_detokenizer_push(d, 49152, &piece, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    }
    const char* tail = nullptr;
    REQUIRE(tessera_detokenizer_flush(d, &tail, &len) == TESSERA_OK);
    streamed.append(tail, len);
    CHECK(streamed == text);
    CHECK(tessera_detokenizer_push(d, ids[0], nullptr, &len) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_detokenizer_flush(d, &tail, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_detokenizer_free(d);
    CHECK(tessera_detokenizer_new(m, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
}

TEST_CASE("with the real model: contexts, decoding past n_ctx, logits, timings, truncation, sampling") {
    if (!have_model()) return;
    LoadedModel lm;
    const tessera_model* m = lm.m;

    tessera_context_params cp = tessera_context_default_params();
    tessera_context* ctx = reinterpret_cast<tessera_context*>(1);
    cp.kv_type = 2;  // Q4_0: not a KV cache type
    CHECK(tessera_context_new(m, &cp, &ctx) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(ctx == nullptr);
    CHECK(std::string(tessera_last_error()).find("KV cache type") != std::string::npos);
    cp = tessera_context_default_params();
    cp.n_ctx = -1;
    CHECK(tessera_context_new(m, &cp, &ctx) == TESSERA_ERROR_INVALID_ARGUMENT);
    // Thread counts past the documented limit are refused (100000 used to crash the first
    // decode, 4096 made the OpenMP runtime end the process).
    for (int32_t bad : {-1, TESSERA_MAX_THREADS + 1, 4096, 100000}) {
        cp = tessera_context_default_params();
        cp.n_threads = bad;
        CHECK(tessera_context_new(m, &cp, &ctx) == TESSERA_ERROR_INVALID_ARGUMENT);
        CHECK(std::string(tessera_last_error()).find("n_threads") != std::string::npos);
    }
    CHECK(tessera_context_new(m, nullptr, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    REQUIRE(tessera_context_new(m, nullptr, &ctx) == TESSERA_OK);
    CHECK(tessera_context_n_ctx(ctx) == 4096);  // the training context, at most 4096
    tessera_context_free(ctx);

    // Decoding past n_ctx leaves the sequence unchanged.
    ctx = new_context(m, 16, 1);
    CHECK(tessera_context_n_ctx(ctx) == 16);
    CHECK(tessera_context_n_past(ctx) == 0);
    CHECK(tessera_get_logits(ctx, -1) == nullptr);  // nothing decoded yet
    std::vector<int32_t> ten(10, 42);
    REQUIRE(tessera_decode(ctx, ten.data(), 10, 1) == TESSERA_OK);
    CHECK(tessera_get_n_logits(ctx) == 10);
    CHECK(tessera_get_logits(ctx, 9) != nullptr);
    CHECK(tessera_get_logits(ctx, -1) == tessera_get_logits(ctx, 9));
    CHECK(tessera_get_logits(ctx, 10) == nullptr);
    CHECK(tessera_get_logits(ctx, -2) == nullptr);  // only -1 counts from the end
    CHECK(std::string(tessera_last_error()).find("no logits row -2") != std::string::npos);
    CHECK(tessera_get_logits(ctx, INT32_MIN) == nullptr);

    // An abort callback stops a decode, which leaves the sequence as it was.
    {
        tessera_context* actx = new_context(m, 64, 2);
        REQUIRE(tessera_decode(actx, ten.data(), 4, 0) == TESSERA_OK);
        int calls = 0;
        tessera_context_set_abort(
            actx, [](void* user) -> int32_t { return ++*static_cast<int*>(user) >= 1; }, &calls);
        CHECK(tessera_decode(actx, ten.data(), 10, 0) == TESSERA_ERROR_ABORTED);
        CHECK(calls >= 1);
        CHECK(tessera_context_n_past(actx) == 4);
        CHECK(std::string(tessera_last_error()).find("aborted") != std::string::npos);
        tessera_sampler* as = nullptr;
        REQUIRE(tessera_sampler_new(nullptr, &as) == TESSERA_OK);
        int32_t n_gen = -1;
        CHECK(tessera_generate(actx, as, "Hello", 5, 8, nullptr, nullptr, &n_gen) == TESSERA_ERROR_ABORTED);
        CHECK(n_gen == 0);
        CHECK(tessera_context_n_past(actx) == 4);
        tessera_context_set_abort(actx, nullptr, nullptr);
        CHECK(tessera_decode(actx, ten.data(), 10, 0) == TESSERA_OK);
        CHECK(tessera_context_n_past(actx) == 14);
        tessera_context_set_abort(nullptr, nullptr, nullptr);  // ignored
        tessera_sampler_free(as);
        tessera_context_free(actx);
    }
    CHECK(tessera_decode(ctx, ten.data(), 10, 0) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(tessera_last_error()).find("do not fit") != std::string::npos);
    CHECK(tessera_context_n_past(ctx) == 10);
    int32_t bad_token = 49152;
    CHECK(tessera_decode(ctx, &bad_token, 1, 0) == TESSERA_ERROR_INVALID_ARGUMENT);
    bad_token = -1;
    CHECK(tessera_decode(ctx, &bad_token, 1, 0) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_decode(ctx, ten.data(), 0, 0) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_decode(ctx, nullptr, 1, 0) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_context_n_past(ctx) == 10);
    REQUIRE(tessera_decode(ctx, ten.data(), 6, 0) == TESSERA_OK);  // exactly full
    CHECK(tessera_context_n_past(ctx) == 16);
    CHECK(tessera_get_n_logits(ctx) == 1);
    CHECK(tessera_decode(ctx, ten.data(), 1, 0) == TESSERA_ERROR_INVALID_ARGUMENT);

    tessera_timings t{};
    REQUIRE(tessera_context_timings(ctx, &t) == TESSERA_OK);
    CHECK(t.load_ms == tessera_model_load_ms(m));
    CHECK(t.prompt_tokens == 16);
    CHECK(t.prompt_ms > 0.0);
    CHECK(t.gen_tokens == 0);
    CHECK(tessera_context_timings(ctx, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);

    // Truncation clamps to [0, n_past]; decoding again from there works.
    CHECK(tessera_context_truncate(ctx, 100) == 16);
    CHECK(tessera_context_truncate(ctx, 12) == 12);
    CHECK(tessera_context_n_past(ctx) == 12);
    CHECK(tessera_context_truncate(ctx, -3) == 0);
    CHECK(tessera_context_n_past(ctx) == 0);
    tessera_context_reset_timings(ctx);
    REQUIRE(tessera_context_timings(ctx, &t) == TESSERA_OK);
    CHECK(t.prompt_tokens == 0);
    CHECK(t.prompt_ms == 0.0);
    REQUIRE(tessera_decode(ctx, ten.data(), 1, 0) == TESSERA_OK);
    REQUIRE(tessera_context_timings(ctx, &t) == TESSERA_OK);
    CHECK(t.gen_tokens == 1);
    CHECK(t.gen_ms > 0.0);

    // Sampling: greedy picks the arg-max; a seed makes draws repeatable; reset re-seeds.
    tessera_sampler_params sp = tessera_sampler_default_params();
    sp.temperature = 0;
    tessera_sampler* greedy_s = nullptr;
    REQUIRE(tessera_sampler_new(&sp, &greedy_s) == TESSERA_OK);
    int32_t tok = -1;
    REQUIRE(tessera_sampler_sample(greedy_s, ctx, -1, &tok) == TESSERA_OK);
    const float* logits = tessera_get_logits(ctx, -1);
    int32_t best = 0;
    for (int32_t i = 1; i < tessera_vocab_size(m); ++i)
        if (logits[i] > logits[best]) best = i;
    CHECK(tok == best);
    CHECK(tessera_sampler_sample(greedy_s, ctx, 1, &tok) == TESSERA_ERROR_INVALID_ARGUMENT);  // one row only
    CHECK(std::string(tessera_last_error()).find("no logits row") != std::string::npos);
    CHECK(tessera_sampler_sample(greedy_s, ctx, -1, nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_sampler_free(greedy_s);

    sp = tessera_sampler_default_params();
    sp.temperature = 1.5f;
    sp.top_k = 0;
    sp.seed = 1234;
    sp.repeat_penalty = 1.3f;
    tessera_sampler* s = nullptr;
    REQUIRE(tessera_sampler_new(&sp, &s) == TESSERA_OK);
    std::vector<int32_t> first, second;
    for (int i = 0; i < 8; ++i) {
        REQUIRE(tessera_sampler_sample(s, ctx, -1, &tok) == TESSERA_OK);
        CHECK(tok >= 0);
        CHECK(tok < tessera_vocab_size(m));
        tessera_sampler_accept(s, tok);
        first.push_back(tok);
    }
    tessera_sampler_reset(s);
    for (int i = 0; i < 8; ++i) {
        REQUIRE(tessera_sampler_sample(s, ctx, -1, &tok) == TESSERA_OK);
        tessera_sampler_accept(s, tok);
        second.push_back(tok);
    }
    CHECK(first == second);
    tessera_sampler_free(s);
    tessera_context_free(ctx);
}

TEST_CASE("two contexts of one model on two threads give the tokens of one context alone") {
    if (!have_model()) return;
    LoadedModel lm;
    const tessera_model* m = lm.m;
    // One thread per context: the CPU backend then starts no OpenMP team (libgomp is not
    // instrumented for ThreadSanitizer).
    const std::vector<int32_t> p1 = {504, 3575, 282, 4649, 314}, p2 = {9038, 2114, 253, 655};
    // Eight tokens each keep the ThreadSanitizer run (tens of times slower) short.
    const std::vector<int32_t> a1 = greedy(m, p1, 8, 1), a2 = greedy(m, p2, 8, 1);
    std::vector<int32_t> b1, b2;
    std::thread t1([&] { b1 = greedy(m, p1, 8, 1); });
    std::thread t2([&] { b2 = greedy(m, p2, 8, 1); });
    t1.join();
    t2.join();
    CHECK(a1 == b1);
    CHECK(a2 == b2);
    CHECK(a1 != a2);
}

// Under the sanitizer build (scripts/test.sh, ASAN_OPTIONS=detect_leaks=1) LeakSanitizer
// fails the run if any of these cycles leaves memory behind.
TEST_CASE("load, generate and free cycles leave nothing behind") {
    if (!have_model()) return;
    for (int cycle = 0; cycle < 5; ++cycle) {
        CAPTURE(cycle);
        tessera_model_params mp = tessera_model_default_params();
        mp.use_mmap = cycle % 2;  // both ways of holding the weights
        tessera_model* m = nullptr;
        REQUIRE(tessera_model_load(model_path().c_str(), &mp, &m) == TESSERA_OK);

        tessera_gguf* g = nullptr;
        REQUIRE(tessera_gguf_open(model_path().c_str(), &g) == TESSERA_OK);
        const char* tmpl = nullptr;
        size_t tmpl_len = 0;
        REQUIRE(tessera_gguf_value_string(tessera_gguf_kv_value(g, tessera_gguf_find_key(g, "tokenizer.chat_template")),
                                          &tmpl, &tmpl_len) == TESSERA_OK);
        const std::string chat_template(tmpl, tmpl_len);
        tessera_gguf_close(g);

        // Every other cycle goes through chat rendering.
        std::string prompt = "The capital of France is";
        if (cycle % 2 == 0) {
            tessera_chat_message* msgs = nullptr;
            size_t n = 0;
            REQUIRE(tessera_chat_parse_messages(R"([{"role": "user", "content": "Say hi."}])", &msgs, &n) ==
                    TESSERA_OK);
            char* rendered = nullptr;
            REQUIRE(tessera_chat_render(chat_template.c_str(), msgs, n, 1, nullptr, "<|im_end|>", &rendered) ==
                    TESSERA_OK);
            prompt = rendered;
            tessera_free(rendered);
            tessera_chat_messages_free(msgs, n);
        }

        tessera_context* ctx = new_context(m, 96, 1);
        tessera_sampler_params sp = tessera_sampler_default_params();
        sp.seed = static_cast<uint64_t>(cycle);
        tessera_sampler* s = nullptr;
        REQUIRE(tessera_sampler_new(&sp, &s) == TESSERA_OK);
        Stream stream;
        int32_t n_gen = 0;
        REQUIRE(tessera_generate(ctx, s, prompt.data(), prompt.size(), 6, collect, &stream, &n_gen) == TESSERA_OK);
        CHECK(n_gen >= 1);

        // A detokenizer over what was generated, and an error (its message is kept per thread).
        tessera_detokenizer* d = nullptr;
        REQUIRE(tessera_detokenizer_new(m, &d) == TESSERA_OK);
        for (int32_t tok : stream.tokens) {
            const char* text = nullptr;
            size_t len = 0;
            CHECK(tessera_detokenizer_push(d, tok, &text, &len) == TESSERA_OK);
        }
        tessera_detokenizer_free(d);
        CHECK(tessera_decode(ctx, nullptr, 1, 0) == TESSERA_ERROR_INVALID_ARGUMENT);

        tessera_sampler_free(s);
        tessera_context_free(ctx);
        tessera_model_free(m);
    }
}
