// `tessera chat`: a multi-turn conversation with the model's own chat template. Only
// the tokens that changed since the last turn are decoded (the KV cache keeps the
// conversation); the oldest turns are dropped when the context would overflow.
// With a terminal: colours, multi-line input (end a line with \), Ctrl-C stops a reply.
// Without one: each input line is a user turn; each reply is printed followed by one
// empty line, and nothing else goes to stdout.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "tessera.h"

namespace tessera_cli {
namespace {

const char* kChatHelp =
    "usage: tessera chat [-m MODEL.gguf] [options]\n"
    "\n"
    "Chats with a model using the chat template in its metadata (ChatML, with a warning,\n"
    "when it has none). Without -m, the default model (SmolLM2-135M-Instruct) is taken\n"
    "from the model cache ($TESSERA_MODELS or ~/.cache/tessera/models).\n"
    "\n"
    "With a terminal, end a line with \\ to continue it; Ctrl-C stops the current reply\n"
    "(or the reading of a long message before it);\n"
    "Ctrl-D or /exit leaves. With stdin from a pipe, each line is one user turn and each\n"
    "reply is printed followed by one empty line (nothing else goes to stdout).\n"
    "\n"
    "commands: /help  /reset  /system TEXT  /save FILE  /load FILE  /stats  /exit\n"
    "\n"
    "options:\n"
    "  -m, --model FILE        the GGUF model\n"
    "  -s, --system TEXT       a system message to start the conversation with\n"
    "  --chat-template-file F  use the Jinja chat template in file F instead of the model's\n"
    "  -n, --n-predict N       at most N tokens per reply (default 512)\n"
    "  -c, --ctx-size N        context size in tokens (default: the model's, at most 4096)\n"
    "  -t, --threads N         CPU threads (default: all cores)\n"
    "%s"
    "  --temp T, --top-k K, --top-p P, --min-p P, --repeat-penalty R, --repeat-last-n N,\n"
    "  --presence-penalty P, --frequency-penalty P, --seed S\n"
    "                          sampling, as for 'tessera run' (default temp 0.8)\n"
    "  --verbose               report on stderr how many tokens each turn decoded\n"
    "  -h, --help              show this help\n";

std::atomic<bool> g_interrupted{false};

void on_sigint(int) { g_interrupted.store(true); }

struct Message {
    std::string role, content;
};

struct Options {
    std::string model;
    std::string system;
    std::string template_file;
    long n_predict = 512, n_ctx = 0, n_threads = 0;
    bool verbose = false;
    bool have_seed = false;
    tessera_sampler_params sp = tessera_sampler_default_params();
    GpuOptions gpu;
};

class Chat {
public:
    Chat(tessera_model* m, tessera_context* c, tessera_sampler* s, const Options& o, bool tty)
        : model_(m), ctx_(c), sampler_(s), opt_(o), tty_in_(tty), tty_out_(isatty(STDOUT_FILENO)) {}

    bool init();
    int loop();

private:
    bool turn(const std::string& user);
    bool command(const std::string& line);  // false: leave
    bool render(const std::vector<Message>& messages, std::string* out);
    bool prompt_tokens(const std::vector<Message>& messages, std::vector<int32_t>* tokens);
    bool is_end_of_turn(int32_t token) const;
    void note(const char* fmt, const std::string& arg = "") const;
    bool save(const std::string& path) const;
    bool load(const std::string& path);
    bool read_input(std::string* out);

    tessera_model* model_;
    tessera_context* ctx_;
    tessera_sampler* sampler_;
    Options opt_;
    bool tty_in_, tty_out_;
    std::string template_, bos_, eos_;
    std::vector<Message> messages_;
    std::vector<int32_t> cached_;   // the tokens in the KV cache, in order
    std::vector<int32_t> end_ids_;  // tokens that end an assistant turn
    long turns_ = 0, decoded_ = 0, reused_ = 0, generated_ = 0;
    bool failed_ = false;  // a turn failed: the exit status says so, the session goes on
    double gen_ms_ = 0;
};

void Chat::note(const char* fmt, const std::string& arg) const {
    // Notes never go to stdout: in a pipe, stdout carries only the replies.
    std::fprintf(stderr, tty_out_ ? "\033[2m" : "");
    std::fprintf(stderr, fmt, arg.c_str());
    std::fprintf(stderr, tty_out_ ? "\033[0m\n" : "\n");
}

bool Chat::init() {
    ChatFormat f;
    if (!chat_format(model_, opt_.template_file, &f)) return false;
    if (f.fallback) note(f.fallback, opt_.model);
    template_ = std::move(f.tmpl);
    bos_ = std::move(f.bos);
    eos_ = std::move(f.eos);
    end_ids_ = std::move(f.end_ids);
    if (!opt_.system.empty()) messages_.push_back({"system", opt_.system});
    return true;
}

bool Chat::is_end_of_turn(int32_t token) const {
    if (tessera_token_is_eog(model_, token)) return true;
    for (int32_t e : end_ids_)
        if (e == token) return true;
    return false;
}

bool Chat::render(const std::vector<Message>& messages, std::string* out) {
    std::vector<tessera_chat_message> msgs;
    for (const Message& m : messages) msgs.push_back({m.role.c_str(), m.content.c_str()});
    char* text = nullptr;
    tessera_status st =
        tessera_chat_render(template_.c_str(), msgs.data(), msgs.size(), 1, bos_.empty() ? nullptr : bos_.c_str(),
                            eos_.empty() ? nullptr : eos_.c_str(), &text);
    if (st != TESSERA_OK) {
        note("error: the chat template failed: %s", tessera_last_error());
        return false;
    }
    out->assign(text);
    tessera_free(text);
    return true;
}

bool Chat::prompt_tokens(const std::vector<Message>& messages, std::vector<int32_t>* tokens) {
    std::string prompt;
    return render(messages, &prompt) && tokenize(model_, prompt, false, true, tokens);
}

// A failed turn (the template raised, a decode failed) is reported and leaves the
// conversation as it was before the message; false only when the session cannot go on.
bool Chat::turn(const std::string& user) {
    const int32_t n_ctx = tessera_context_n_ctx(ctx_);
    const long room = std::min<long>(opt_.n_predict, n_ctx / 4);  // keep space for a reply
    const size_t first = !messages_.empty() && messages_[0].role == "system" ? 1 : 0;
    std::vector<int32_t> tokens;
    // A message that cannot fit even with every earlier turn dropped is refused before
    // anything is dropped.
    std::vector<Message> alone(messages_.begin(), messages_.begin() + static_cast<std::ptrdiff_t>(first));
    alone.push_back({"user", user});
    if (!prompt_tokens(alone, &tokens)) {
        failed_ = true;
        return true;
    }
    if (static_cast<long>(tokens.size()) + room > n_ctx) {
        note("error: this message does not fit in the context (%s tokens); nothing was dropped; raise -c",
             std::to_string(tokens.size()));
        failed_ = true;
        return true;
    }
    // Drop the oldest turns after the system message until the prompt leaves room (the
    // message alone fits, so this ends).
    std::vector<Message> kept = messages_;
    kept.push_back({"user", user});
    size_t dropped = 0;
    for (;;) {
        if (!prompt_tokens(kept, &tokens)) {
            failed_ = true;
            return true;
        }
        if (static_cast<long>(tokens.size()) + room <= n_ctx) break;
        const size_t drop = kept.size() - first >= 3 ? 2 : 1;  // a user turn and its reply
        kept.erase(kept.begin() + static_cast<std::ptrdiff_t>(first),
                   kept.begin() + static_cast<std::ptrdiff_t>(first + drop));
        dropped += drop;
    }

    // Reuse the cached prefix; decode only what changed.
    size_t same = 0;
    while (same < cached_.size() && same < tokens.size() && cached_[same] == tokens[same]) ++same;
    if (same == tokens.size()) --same;  // the last prompt token must be decoded for logits
    same = static_cast<size_t>(tessera_context_truncate(ctx_, static_cast<int32_t>(same)));
    cached_.resize(same);
    const int32_t n_new = static_cast<int32_t>(tokens.size() - same);
    g_interrupted.store(false);  // Ctrl-C from here on stops this turn, its prompt included
    if (tessera_status st = tessera_decode(ctx_, tokens.data() + same, n_new, 0); st != TESSERA_OK) {
        if (st == TESSERA_ERROR_ABORTED) {
            note("[stopped before the reply; the message was not added]");
        } else {
            note("error: %s", tessera_last_error());
            failed_ = true;
        }
        return true;
    }
    if (dropped)
        note("[the conversation is too long for the context: dropped the oldest %s message(s)]",
             std::to_string(dropped));
    messages_ = std::move(kept);
    cached_.insert(cached_.end(), tokens.begin() + static_cast<std::ptrdiff_t>(same), tokens.end());
    decoded_ += n_new;
    reused_ += static_cast<long>(same);
    if (opt_.verbose)
        std::fprintf(stderr, "[turn %ld: decoded %d prompt tokens, reused %zu from the cache]\n", turns_ + 1, n_new,
                     same);
    for (int32_t t : tokens) tessera_sampler_accept(sampler_, t);

    tessera_detokenizer* detok = nullptr;
    if (tessera_detokenizer_new(model_, &detok) != TESSERA_OK) {
        note("error: %s", tessera_last_error());
        return false;
    }
    std::string reply;
    auto t0 = std::chrono::steady_clock::now();
    long n_gen = 0;
    bool stopped = false;
    while (n_gen < opt_.n_predict) {
        if (g_interrupted.load()) {
            stopped = true;
            break;
        }
        int32_t tok = 0;
        if (tessera_sampler_sample(sampler_, ctx_, -1, &tok) != TESSERA_OK) break;
        if (is_end_of_turn(tok)) break;
        tessera_sampler_accept(sampler_, tok);
        const char* text = nullptr;
        size_t len = 0;
        if (tessera_detokenizer_push(detok, tok, &text, &len) == TESSERA_OK && len) {
            reply.append(text, len);
            std::fwrite(text, 1, len, stdout);
            std::fflush(stdout);
        }
        ++n_gen;
        if (tessera_context_n_past(ctx_) >= n_ctx) {
            note("\n[the context is full: the reply was cut]");
            break;
        }
        if (tessera_status st = tessera_decode(ctx_, &tok, 1, 0); st != TESSERA_OK) {
            if (st == TESSERA_ERROR_ABORTED) {
                stopped = true;
            } else {
                note("\nerror: %s", tessera_last_error());
                failed_ = true;
            }
            break;
        }
        cached_.push_back(tok);
    }
    const char* text = nullptr;
    size_t len = 0;
    if (tessera_detokenizer_flush(detok, &text, &len) == TESSERA_OK && len) {
        reply.append(text, len);
        std::fwrite(text, 1, len, stdout);
    }
    tessera_detokenizer_free(detok);
    gen_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    generated_ += n_gen;
    ++turns_;
    std::fputs("\n\n", stdout);
    std::fflush(stdout);
    if (stopped) note("[stopped]");
    messages_.push_back({"assistant", reply});
    return true;
}

// Writes the conversation as {"messages": [{"role": ..., "content": ...}, ...]}; a failed
// write leaves an existing file as it was.
bool Chat::save(const std::string& path) const {
    std::vector<tessera_chat_message> msgs;
    for (const Message& m : messages_) msgs.push_back({m.role.c_str(), m.content.c_str()});
    if (tessera_chat_save_messages(path.c_str(), msgs.data(), msgs.size()) != TESSERA_OK) {
        note("error: %s", tessera_last_error());
        return false;
    }
    return true;
}

bool Chat::load(const std::string& path) {
    std::string text;
    if (!read_file(path.c_str(), &text)) return false;
    tessera_chat_message* msgs = nullptr;
    size_t n = 0;
    if (tessera_chat_parse_messages(text.c_str(), &msgs, &n) != TESSERA_OK) {
        note("error: %s", tessera_last_error());
        return false;
    }
    messages_.clear();
    for (size_t i = 0; i < n; ++i) messages_.push_back({msgs[i].role, msgs[i].content});
    tessera_chat_messages_free(msgs, n);
    return true;
}

bool Chat::read_input(std::string* out) {
    out->clear();
    for (;;) {
        if (tty_in_) std::fprintf(stdout, out->empty() ? (tty_out_ ? "\033[32m> \033[0m" : "> ") : ". ");
        std::fflush(stdout);
        char* line = nullptr;
        size_t cap = 0;
        errno = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
            std::free(line);
            if (errno == EINTR && tty_in_) {  // Ctrl-C at the prompt
                clearerr(stdin);
                g_interrupted.store(false);
                std::fprintf(stdout, "\n");
                note("(Ctrl-D or /exit leaves)");
                out->clear();
                continue;
            }
            return !out->empty();
        }
        std::string s(line, static_cast<size_t>(n));
        std::free(line);
        if (!s.empty() && s.back() == '\n') s.pop_back();
        if (!s.empty() && s.back() == '\r') s.pop_back();
        if (tty_in_ && !s.empty() && s.back() == '\\') {  // continue on the next line
            s.pop_back();
            *out += s + "\n";
            continue;
        }
        *out += s;
        return true;
    }
}

bool Chat::command(const std::string& line) {
    auto arg = [&](size_t at) { return line.size() > at ? line.substr(at) : std::string(); };
    if (line == "/exit" || line == "/quit") return false;
    if (line == "/help") {
        note("/reset  /system TEXT  /save FILE  /load FILE  /stats  /exit; a line ending in \\ continues");
    } else if (line == "/reset") {
        messages_.clear();
        if (!opt_.system.empty()) messages_.push_back({"system", opt_.system});
        tessera_sampler_reset(sampler_);
        note("[conversation cleared]");
    } else if (line.rfind("/system ", 0) == 0) {
        opt_.system = arg(8);
        if (!messages_.empty() && messages_[0].role == "system")
            messages_[0].content = opt_.system;
        else
            messages_.insert(messages_.begin(), {"system", opt_.system});
        note("[system message set]");
    } else if (line.rfind("/save ", 0) == 0) {
        if (save(arg(6))) note("[saved to %s]", arg(6));
    } else if (line.rfind("/load ", 0) == 0) {
        if (load(arg(6))) note("[loaded %s messages]", std::to_string(messages_.size()));
    } else if (line == "/stats") {
        char buf[400];
        std::snprintf(buf, sizeof buf,
                      "turns %ld | messages %zu | context %d of %d tokens | prompt tokens decoded %ld, reused %ld | "
                      "generated %ld tokens, %.1f tokens/s",
                      turns_, messages_.size(), tessera_context_n_past(ctx_), tessera_context_n_ctx(ctx_), decoded_,
                      reused_, generated_, gen_ms_ > 0 ? 1000.0 * static_cast<double>(generated_) / gen_ms_ : 0.0);
        note("%s", buf);
    } else {
        note("unknown command %s (try /help)", line);
    }
    return true;
}

int Chat::loop() {
    std::string line;
    while (read_input(&line)) {
        if (line.empty()) continue;
        if (line[0] == '/' && line.size() > 1 && line[1] != '/') {
            if (!command(line)) break;
            continue;
        }
        if (!turn(line)) return 1;
    }
    return failed_ ? 1 : 0;
}

}  // namespace

int cmd_chat(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        auto is = [&](const char* s1, const char* s2 = nullptr) {
            return !std::strcmp(a, s1) || (s2 && !std::strcmp(a, s2));
        };
        if (is("-h", "--help")) {
            std::printf(kChatHelp, kGpuHelp);
            return 0;
        }
        if (is("--verbose")) {
            o.verbose = true;
            continue;
        }
        if (parse_load_flag(a, &o.gpu)) continue;
        const char* v = option_value(argc, argv, &i);
        if (!v) return 2;
        if (is("-m", "--model"))
            o.model = v;
        else if (is("-s", "--system"))
            o.system = v;
        else if (is("--chat-template-file"))
            o.template_file = v;
        else if (is("-n", "--n-predict")) {
            if (!parse_int(a, v, 1, 1 << 20, &o.n_predict)) return 2;
        } else if (is("-c", "--ctx-size")) {
            if (!parse_int(a, v, 0, 1 << 24, &o.n_ctx)) return 2;
        } else if (is("-t", "--threads")) {
            if (!parse_int(a, v, 0, TESSERA_MAX_THREADS, &o.n_threads)) return 2;
        } else if (int r = parse_sampling_option(a, v, &o.sp, &o.have_seed); r != 0) {
            if (r < 0) return 2;
        } else if (int g = parse_gpu_option(a, v, &o.gpu); g != 0) {
            if (g < 0) return 2;
        } else {
            std::fprintf(stderr, "error: unknown option '%s' (see 'tessera chat --help')\n", a);
            return 2;
        }
    }
    if (o.model.empty()) {
        o.model = default_model_path("smollm2-135m-instruct");
        if (access(o.model.c_str(), R_OK) != 0) {
            std::fprintf(stderr,
                         "error: no model given and the default model is not downloaded; fetch it with:\n"
                         "  bash scripts/get-model.sh smollm2-135m-instruct\n");
            return 1;
        }
    }
    if (!o.have_seed) o.sp.seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());

    const bool tty = isatty(STDIN_FILENO);
    if (tty) std::fprintf(stderr, "loading %s ...", o.model.c_str());
    o.gpu.plan_n_ctx = static_cast<int32_t>(o.n_ctx);
    o.gpu.plan_threads = static_cast<int32_t>(o.n_threads);
    tessera_model* model = load_model_or_report(o.model.c_str(), o.gpu);
    if (!model) return 1;
    if (tty) std::fprintf(stderr, " done (%.0f ms)\n", tessera_model_load_ms(model));
    tessera_context_params cp = tessera_context_default_params();
    cp.n_ctx = static_cast<int32_t>(o.n_ctx);
    cp.n_threads = static_cast<int32_t>(o.n_threads);
    tessera_context* ctx = nullptr;
    tessera_sampler* smp = nullptr;
    int rc = 1;
    if (tessera_context_new(model, &cp, &ctx) == TESSERA_OK && tessera_sampler_new(&o.sp, &smp) == TESSERA_OK) {
        // Ctrl-C interrupts a reply (and a blocked read), not the program.
        struct sigaction sa {};
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;
        sigaction(SIGINT, &sa, nullptr);
        // A file size limit makes a write fail (and /save report it), not end the chat.
        std::signal(SIGXFSZ, SIG_IGN);
        // Ctrl-C also stops a decode under way (a long prompt), between two of its steps.
        tessera_context_set_abort(
            ctx, [](void*) -> int32_t { return g_interrupted.load() ? 1 : 0; }, nullptr);
        Chat chat(model, ctx, smp, o, tty);
        if (tty)
            std::fprintf(stderr, "chatting with %s (%s); /help for commands, Ctrl-D or /exit to leave\n",
                         tessera_model_name(model), tessera_model_architecture(model));
        rc = chat.init() ? chat.loop() : 1;
    } else {
        std::fprintf(stderr, "error: %s\n", tessera_last_error());
    }
    tessera_sampler_free(smp);
    tessera_context_free(ctx);
    tessera_model_free(model);
    return rc;
}

}  // namespace tessera_cli
