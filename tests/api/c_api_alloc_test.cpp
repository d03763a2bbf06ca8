// Out of memory at every point of every C API entry point: this binary replaces the global
// operator new, so that the k-th allocation of a call throws std::bad_alloc (or returns
// null, for the nothrow forms). Each call must then return TESSERA_OK or
// TESSERA_ERROR_OUT_OF_MEMORY with a message, never let the exception out (the header's
// promise to an embedding app), and leave its handles usable or freeable.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <new>
#include <string>
#include <vector>

#include "tessera.h"
#include "tests/api/c_api_test_support.h"
#include "tests/test_support.h"

namespace {

thread_local bool t_counting = false;  // only the test's own thread, while a call runs
thread_local long t_count = 0;         // allocations seen
thread_local long t_fail_at = 0;       // > 0: this allocation (1-based) fails

void* allocate(std::size_t n, std::size_t align, bool nothrow) {
    if (t_counting && ++t_count == t_fail_at) {
        if (nothrow) return nullptr;
        throw std::bad_alloc();
    }
    if (n == 0) n = 1;
    void* p = nullptr;
    if (align <= alignof(std::max_align_t)) {
        p = std::malloc(n);
    } else if (posix_memalign(&p, align, n) != 0) {
        p = nullptr;
    }
    if (!p && !nothrow) throw std::bad_alloc();
    return p;
}

}  // namespace

void* operator new(std::size_t n) { return allocate(n, 0, false); }
void* operator new[](std::size_t n) { return allocate(n, 0, false); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return allocate(n, 0, true); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return allocate(n, 0, true); }
void* operator new(std::size_t n, std::align_val_t a) { return allocate(n, static_cast<std::size_t>(a), false); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate(n, static_cast<std::size_t>(a), false); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return allocate(n, static_cast<std::size_t>(a), true);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return allocate(n, static_cast<std::size_t>(a), true);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

// Runs `call` (and `after`, which frees what a successful call made) three times to count its
// allocations (the first run may make one-time caches), then again with allocation k
// failing, for every k up to 64 and about 100 more spread over the rest. Every run must
// give TESSERA_OK or TESSERA_ERROR_OUT_OF_MEMORY.
void fail_each_allocation(const std::string& what, const std::function<tessera_status()>& call,
                          const std::function<void(tessera_status)>& after = {}) {
    CAPTURE(what);
    tessera_status st = TESSERA_OK;
    long total = -1;
    for (int run = 0; run < 3; ++run) {
        t_count = 0;
        t_fail_at = 0;
        t_counting = true;
        st = call();
        t_counting = false;
        REQUIRE_MESSAGE(st == TESSERA_OK, what << " fails with no allocation failing: " << tessera_last_error());
        if (after) after(st);
        // The fewest of the later runs: a thread's one-time state (made by whichever thread
        // of the team first takes a piece of work) may fall to the counted thread in any run.
        if (run > 0) total = total < 0 ? t_count : std::min(total, t_count);
    }
    std::vector<long> points;
    for (long k = 1; k <= total; k += k < 64 ? 1 : std::max(1L, (total - 64) / 100)) points.push_back(k);
    if (total > 0 && points.back() != total) points.push_back(total);
    long oom = 0, injected = 0, first_missed = total + 1;
    for (long k : points) {
        CAPTURE(k);
        t_count = 0;
        t_fail_at = k;
        t_counting = true;
        st = call();  // an exception escaping here fails the test case
        t_counting = false;
        t_fail_at = 0;
        if (t_count >= k)
            ++injected;
        else
            first_missed = std::min(first_missed, k);
        CHECK_MESSAGE((st == TESSERA_OK || st == TESSERA_ERROR_OUT_OF_MEMORY),
                      what << " with allocation " << k << " of " << total << " failing: status "
                           << tessera_status_name(st) << ": " << tessera_last_error());
        if (st == TESSERA_ERROR_OUT_OF_MEMORY) {
            ++oom;
            CHECK(std::string(tessera_last_error()).find("memory") != std::string::npos);
        }
        if (after) after(st);
    }
    // Each run must reach the allocation it fails (the call does the same work each time),
    // but for its last few: a loaded machine's timing (when a backend asks whether to stop)
    // can spare a run an allocation or two.
    CHECK(first_missed > total - total / 100);
    CHECK(injected + 2 >= static_cast<long>(points.size()));
    MESSAGE(what << ": " << total << " allocations; " << points.size() << " of them failed in turn, " << oom
                 << " runs reported out of memory");
}

const char* kChatml =
    "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

}  // namespace

using tessera::test::model_path;

TEST_CASE("out of memory in the chat, GGUF and conversion entry points") {
    const tessera_chat_message msgs[] = {{"system", "Be brief."}, {"user", "Hello there"}};
    fail_each_allocation("tessera_chat_render", [&] {
        char* out = nullptr;
        const tessera_status st = tessera_chat_render(kChatml, msgs, 2, 1, "<s>", "</s>", &out);
        tessera_free(out);
        return st;
    });
    fail_each_allocation("tessera_chat_render_json", [&] {
        char* out = nullptr;
        const tessera_status st = tessera_chat_render_json(
            kChatml, R"({"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": true})", &out);
        tessera_free(out);
        return st;
    });
    fail_each_allocation("tessera_chat_parse_messages", [&] {
        tessera_chat_message* parsed = nullptr;
        size_t n = 0;
        const tessera_status st =
            tessera_chat_parse_messages(R"({"messages": [{"role": "user", "content": "Hi"}]})", &parsed, &n);
        tessera_chat_messages_free(parsed, n);
        return st;
    });
    tessera::test::ScratchDir dir;
    const std::string saved = dir.file("conv.json").string();
    fail_each_allocation("tessera_chat_save_messages",
                         [&] { return tessera_chat_save_messages(saved.c_str(), msgs, 2); });
    CHECK(std::filesystem::exists(saved));

    const auto data = tessera::test::test_data_dir();
    if (!data || !std::filesystem::exists(*data / "vocab" / "ggml-vocab-gpt-2.gguf")) {
        tessera::test::skip_because("shared vocabularies not found (set TESSERA_TEST_DATA): GGUF and quantize cases");
        return;
    }
    const std::string vocab = (*data / "vocab" / "ggml-vocab-gpt-2.gguf").string();
    fail_each_allocation("tessera_gguf_open", [&] {
        tessera_gguf* g = nullptr;
        const tessera_status st = tessera_gguf_open(vocab.c_str(), &g);
        if (st == TESSERA_OK) {
            const int64_t k = tessera_gguf_find_key(g, "tokenizer.ggml.tokens");
            const char* text = nullptr;
            size_t len = 0;
            tessera_gguf_array_string(tessera_gguf_kv_value(g, k), 1u << 30, &text, &len);  // out of range
            tessera_tensor_info info;
            tessera_gguf_tensor(g, 99, &info);  // out of range
        }
        tessera_gguf_close(g);
        return st;
    });
    const std::string quantized = dir.file("q.gguf").string();
    fail_each_allocation("tessera_quantize", [&] {
        tessera_quantize_params qp = tessera_quantize_default_params();
        qp.type = "Q8_0";
        qp.n_threads = 1;
        return tessera_quantize(vocab.c_str(), quantized.c_str(), &qp);
    });
    fail_each_allocation("tessera_model_load (vocab only)", [&] {
        tessera_model_params mp = tessera_model_default_params();
        mp.vocab_only = 1;
        tessera_model* m = nullptr;
        const tessera_status st = tessera_model_load(vocab.c_str(), &mp, &m);
        tessera_model_free(m);
        return st;
    });
}

TEST_CASE("out of memory in the model, context, tokenizer and generation entry points") {
    if (!std::filesystem::exists(model_path())) {
        tessera::test::skip_because("model not downloaded (run scripts/get-model.sh smollm2-135m-instruct)");
        return;
    }
    const std::string path = model_path();
    fail_each_allocation("tessera_model_load", [&] {
        tessera_model* m = nullptr;
        const tessera_status st = tessera_model_load(path.c_str(), nullptr, &m);
        tessera_model_free(m);
        return st;
    });
    tessera_model* m = nullptr;
    REQUIRE(tessera_model_load(path.c_str(), nullptr, &m) == TESSERA_OK);
    const std::string text = "<|im_start|>user\nHello, wörld! 🦙<|im_end|>";
    std::vector<int32_t> ids(64);
    int32_t n_ids = 0;
    fail_each_allocation("tessera_tokenize",
                         [&] { return tessera_tokenize(m, text.data(), text.size(), 1, 1, ids.data(), 64, &n_ids); });
    REQUIRE(tessera_tokenize(m, text.data(), text.size(), 1, 1, ids.data(), 64, &n_ids) == TESSERA_OK);
    fail_each_allocation("tessera_detokenize", [&] {
        char buf[256];
        size_t len = 0;
        return tessera_detokenize(m, ids.data(), n_ids, buf, sizeof buf, &len);
    });
    fail_each_allocation("tessera_detokenizer", [&] {
        tessera_detokenizer* d = nullptr;
        tessera_status st = tessera_detokenizer_new(m, &d);
        const char* piece = nullptr;
        size_t len = 0;
        for (int32_t i = 0; st == TESSERA_OK && i < n_ids; ++i) st = tessera_detokenizer_push(d, ids[i], &piece, &len);
        if (st == TESSERA_OK) st = tessera_detokenizer_flush(d, &piece, &len);
        tessera_detokenizer_free(d);
        return st;
    });

    tessera_context_params cp = tessera_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    fail_each_allocation("tessera_context_new", [&] {
        tessera_context* ctx = nullptr;
        const tessera_status st = tessera_context_new(m, &cp, &ctx);
        tessera_context_free(ctx);
        return st;
    });
    tessera_context* ctx = nullptr;
    REQUIRE(tessera_context_new(m, &cp, &ctx) == TESSERA_OK);
    // A new context each time, so the decode builds and plans its graph each time.
    fail_each_allocation("tessera_decode", [&] {
        tessera_context* c = nullptr;
        tessera_status st = tessera_context_new(m, &cp, &c);
        if (st == TESSERA_OK) {
            st = tessera_decode(c, ids.data(), 4, 1);
            CHECK(tessera_context_n_past(c) == (st == TESSERA_OK ? 4 : 0));
        }
        tessera_context_free(c);
        return st;
    });
    tessera_get_logits(ctx, -5);  // an error message, built without throwing

    fail_each_allocation("tessera_sampler_new", [&] {
        tessera_sampler* s = nullptr;
        const tessera_status st = tessera_sampler_new(nullptr, &s);
        tessera_sampler_free(s);
        return st;
    });
    tessera_sampler* s = nullptr;
    REQUIRE(tessera_sampler_new(nullptr, &s) == TESSERA_OK);
    fail_each_allocation("tessera_sampler_accept", [&] {
        for (int32_t i = 0; i < n_ids; ++i) tessera_sampler_accept(s, ids[i]);  // void: must not throw
        tessera_sampler_reset(s);
        return TESSERA_OK;
    });
    REQUIRE(tessera_decode(ctx, ids.data(), 2, 0) == TESSERA_OK);
    fail_each_allocation("tessera_sampler_sample", [&] {
        int32_t tok = 0;
        return tessera_sampler_sample(s, ctx, -1, &tok);
    });
    fail_each_allocation("tessera_generate", [&] {
        // The same draws every run (the sampler's state carries over between calls): another
        // text would take another number of allocations.
        tessera_sampler_reset(s);
        tessera_context* c = nullptr;
        tessera_status st = tessera_context_new(m, &cp, &c);
        int32_t n_gen = 0;
        if (st == TESSERA_OK) st = tessera_generate(c, s, "Once upon a time", 16, 3, nullptr, nullptr, &n_gen);
        tessera_context_free(c);
        return st;
    });
    fail_each_allocation("tessera_context_set_abort", [&] {
        tessera_context_set_abort(
            ctx, [](void*) -> int32_t { return 0; }, nullptr);
        return TESSERA_OK;
    });
    tessera_sampler_free(s);
    tessera_context_free(ctx);
    tessera_model_free(m);
}
