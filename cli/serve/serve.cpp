// tessera serve: an OpenAI-compatible HTTP API over one model. Requests are parsed and
// checked here (on the HTTP library's threads) and handed to the engine (slots.h), which
// batches every active request into one decode per step.
#include <httplib.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../commands.h"
#include "../common.h"
#include "slots.h"
#include "tessera.h"

namespace tessera_cli {

namespace {

using nlohmann::json;
using serve::Engine;
using serve::Finish;
using serve::Job;

const char* const kServeHelp =
    "usage: tessera serve -m MODEL.gguf [options]\n"
    "\n"
    "Serves the model over an OpenAI-compatible HTTP API: POST /v1/chat/completions and\n"
    "/v1/completions (streamed as server-sent events with \"stream\": true), GET /v1/models,\n"
    "GET /health (with the slots in use and the requests waiting), POST /tokenize and\n"
    "/detokenize. --parallel requests are decoded together\n"
    "in one batch per step; more wait in a queue, and beyond it get 503.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE        the GGUF model\n"
    "  --host ADDR             address to listen on (default 127.0.0.1: this machine only)\n"
    "  --port N                port (default 8080; 0: any free port, printed at start)\n"
    "  -np, --parallel N       requests decoded together (default 4)\n"
    "  -c, --ctx-size N        KV cache cells shared by the requests; each may hold\n"
    "                          N / parallel tokens (default: parallel x the model's context,\n"
    "                          at most 4096 each)\n"
    "  -b, --batch-size N      tokens per decode step (default 512)\n"
    "  -t, --threads N         CPU threads (default: all cores)\n"
    "%s"
    "  --api-key KEY           require 'Authorization: Bearer KEY' (all routes but /health)\n"
    "  --chat-template-file F  use the Jinja chat template in file F instead of the model's\n"
    "  --queue N               requests that may wait for a slot (default 64)\n"
    "  --cache-ram MIB         host memory for prompts kept after their slot took another\n"
    "                          one, so a prompt seen before is not computed again\n"
    "                          (default 1024; 0: none)\n"
    "  -h, --help              show this help\n";

constexpr size_t kMaxBody = size_t{8} << 20;  // bytes of a request body
constexpr int kMaxDepth = 64;                 // nesting of a request's JSON

// SIGINT and SIGTERM stop the server; a second one ends the process at once. The signals
// are blocked in every thread the server starts but the one that waits for them, and a handler that only writes the
// signal's number into a pipe catches them on any thread that does not block them (a
// library's own thread started before main, as OpenBLAS's are); one thread reads the pipe
// and stops the server (a handler cannot safely call into the HTTP library itself). The
// handler also replaces an inherited "ignore": a shell starts background jobs with SIGINT
// ignored, and `kill -INT` must still stop the server.
int stop_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int sig) {
    const int saved = errno;
    const unsigned char b = static_cast<unsigned char>(sig);
    [[maybe_unused]] const ssize_t n = write(stop_pipe[1], &b, 1);
    errno = saved;
}

sigset_t stop_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
}

// Installs the handler; false when the pipe cannot be made.
bool catch_stop_signals() {
    if (pipe(stop_pipe) != 0) return false;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    return true;
}

// The next stop signal's number (blocks until one comes).
int wait_stop_signal() {
    unsigned char b = 0;
    while (read(stop_pipe[0], &b, 1) != 1) {
        if (errno != EINTR) return SIGTERM;
    }
    return b;
}

// A request that cannot be served: the HTTP status and OpenAI's error fields.
struct ApiError {
    int status;
    std::string message, type, param;
};

void send_error(httplib::Response& res, const ApiError& e) {
    json body = {{"error",
                  {{"message", e.message},
                   {"type", e.type},
                   {"param", e.param.empty() ? json(nullptr) : json(e.param)},
                   {"code", nullptr}}}};
    res.status = e.status;
    res.set_content(body.dump(), "application/json");
}

ApiError bad_request(const std::string& message, const std::string& param = "") {
    return {400, message, "invalid_request_error", param};
}

// The deepest nesting of arrays and objects in `text` (strings skipped), stopping early
// past the limit: deeper JSON is refused before the recursive parser sees it.
int json_depth(const std::string& text) {
    int depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
            if (deepest > kMaxDepth) break;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return deepest;
}

json parse_body(const httplib::Request& req) {
    if (json_depth(req.body) > kMaxDepth)
        throw bad_request("the request's JSON nests deeper than " + std::to_string(kMaxDepth) + " levels");
    json j = json::parse(req.body, nullptr, false);
    if (j.is_discarded()) throw bad_request("the request body is not valid JSON (UTF-8)");
    if (!j.is_object()) throw bad_request("the request body must be a JSON object");
    return j;
}

// Optional typed fields: absent or null gives the default; a wrong type or range names the field.
double number_field(const json& j, const char* name, double def, double lo, double hi) {
    if (!j.contains(name) || j[name].is_null()) return def;
    if (!j[name].is_number()) throw bad_request(std::string("'") + name + "' must be a number", name);
    const double v = j[name].get<double>();
    if (!(v >= lo && v <= hi))
        throw bad_request(
            std::string("'") + name + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi), name);
    return v;
}

int64_t int_field(const json& j, const char* name, int64_t def, int64_t lo, int64_t hi) {
    if (!j.contains(name) || j[name].is_null()) return def;
    if (!j[name].is_number_integer() && !j[name].is_number_unsigned())
        throw bad_request(std::string("'") + name + "' must be an integer", name);
    if (j[name].is_number_unsigned() && j[name].get<uint64_t>() > static_cast<uint64_t>(hi))
        throw bad_request(std::string("'") + name + "' must be at most " + std::to_string(hi), name);
    const int64_t v = j[name].get<int64_t>();
    if (v < lo || v > hi)
        throw bad_request(
            std::string("'") + name + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi), name);
    return v;
}

bool bool_field(const json& j, const char* name, bool def) {
    if (!j.contains(name) || j[name].is_null()) return def;
    if (!j[name].is_boolean()) throw bad_request(std::string("'") + name + "' must be true or false", name);
    return j[name].get<bool>();
}

std::string string_of(const json& v, const std::string& name) {
    if (!v.is_string()) throw bad_request("'" + name + "' must be a string", name);
    return v.get<std::string>();
}

struct Server {
    tessera_model* model = nullptr;
    std::string model_id;
    ChatFormat format;
    std::unique_ptr<Engine> engine;
    std::string api_key;
    std::atomic<uint64_t> next_id{1};
    std::atomic<bool> ready{false};  // the model is loaded and the engine runs
    uint64_t seed_base = 0;

    // The sampling fields of a request (OpenAI's, and top_k / min_p as other servers take them).
    void read_request(const json& j, Job& job) {
        tessera_sampler_params& sp = job.sampling;
        sp = tessera_sampler_default_params();
        sp.temperature = static_cast<float>(number_field(j, "temperature", 1.0, 0.0, 2.0));
        sp.top_p = static_cast<float>(number_field(j, "top_p", 1.0, 0.0, 1.0));
        sp.top_k = static_cast<int32_t>(int_field(j, "top_k", 0, 0, 1 << 30));
        sp.min_p = static_cast<float>(number_field(j, "min_p", 0.0, 0.0, 1.0));
        sp.presence_penalty = static_cast<float>(number_field(j, "presence_penalty", 0.0, -2.0, 2.0));
        sp.frequency_penalty = static_cast<float>(number_field(j, "frequency_penalty", 0.0, -2.0, 2.0));
        sp.repeat_last_n = 64;
        const int64_t seed = int_field(j, "seed", -1, INT64_MIN, INT64_MAX);
        const bool seeded = j.contains("seed") && !j["seed"].is_null();
        sp.seed = seeded ? static_cast<uint64_t>(seed) : seed_base + next_id.fetch_add(1) * 0x9E3779B97F4A7C15ull;
        const int64_t max_tokens = int_field(j, "max_tokens", 0, 0, 1 << 30);
        job.max_tokens = static_cast<int32_t>(int_field(j, "max_completion_tokens", max_tokens, 0, 1 << 30));
        if (int_field(j, "n", 1, 1, 1) != 1) throw bad_request("only n = 1 is supported", "n");
        if (j.contains("stop") && !j["stop"].is_null()) {
            const json& s = j["stop"];
            if (s.is_string()) {
                job.stop.push_back(s.get<std::string>());
            } else if (s.is_array() && s.size() <= 16) {
                for (const json& e : s) job.stop.push_back(string_of(e, "stop"));
            } else {
                throw bad_request("'stop' must be a string or an array of at most 16 strings", "stop");
            }
            std::erase(job.stop, std::string());  // an empty stop string stops nothing
        }
        // ignore_eos (as llama-server takes it): the end-of-generation tokens are sampled as
        // text, and only max_tokens, a stop string or the slot's context ends the reply.
        job.ignore_eos = bool_field(j, "ignore_eos", false);
        job.end_ids = format.end_ids;
    }

    std::vector<int32_t> tokens_of(const std::string& text, bool add_special, bool parse_special) const {
        std::vector<int32_t> out(text.size() + 8);
        int32_t n = 0;
        tessera_status st = tessera_tokenize(model, text.data(), text.size(), add_special, parse_special, out.data(),
                                             static_cast<int32_t>(out.size()), &n);
        if (st != TESSERA_OK && n > static_cast<int32_t>(out.size())) {
            out.resize(static_cast<size_t>(n));
            st = tessera_tokenize(model, text.data(), text.size(), add_special, parse_special, out.data(), n, &n);
        }
        if (st != TESSERA_OK) throw bad_request(std::string("cannot tokenize the prompt: ") + tessera_last_error());
        out.resize(static_cast<size_t>(n));
        return out;
    }

    // The chat request's messages through the chat template.
    std::vector<int32_t> chat_prompt(const json& j) const {
        if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty())
            throw bad_request("'messages' must be a non-empty array", "messages");
        std::vector<std::string> roles, contents;
        for (const json& m : j["messages"]) {
            if (!m.is_object() || !m.contains("role"))
                throw bad_request("each message must be an object with a 'role'", "messages");
            roles.push_back(string_of(m["role"], "messages.role"));
            std::string content;
            const json c = m.contains("content") ? m["content"] : json(nullptr);
            if (c.is_string()) {
                content = c.get<std::string>();
            } else if (c.is_array()) {  // content parts: the text ones, in order
                for (const json& part : c) {
                    if (!part.is_object() || !part.contains("type") || part["type"] != "text")
                        throw bad_request("only text content parts are supported", "messages.content");
                    content += string_of(part.contains("text") ? part["text"] : json(nullptr), "messages.content.text");
                }
            } else if (!c.is_null()) {
                throw bad_request("a message's 'content' must be a string or an array of parts", "messages.content");
            }
            contents.push_back(std::move(content));
        }
        std::vector<tessera_chat_message> msgs;
        for (size_t i = 0; i < roles.size(); ++i) msgs.push_back({roles[i].c_str(), contents[i].c_str()});
        char* text = nullptr;
        if (tessera_chat_render(format.tmpl.c_str(), msgs.data(), msgs.size(), 1,
                                format.bos.empty() ? nullptr : format.bos.c_str(),
                                format.eos.empty() ? nullptr : format.eos.c_str(), &text) != TESSERA_OK)
            throw bad_request(std::string("the chat template refused the messages: ") + tessera_last_error(),
                              "messages");
        std::string rendered(text);
        tessera_free(text);
        return tokens_of(rendered, false, true);
    }

    void completion(const httplib::Request& req, httplib::Response& res, bool chat) {
        const json j = parse_body(req);
        auto job = std::make_shared<Job>();
        read_request(j, *job);
        if (chat) {
            job->prompt = chat_prompt(j);
        } else {
            if (!j.contains("prompt")) throw bad_request("'prompt' is required", "prompt");
            job->prompt = tokens_of(string_of(j["prompt"], "prompt"), true, false);
        }
        if (job->prompt.empty()) throw bad_request("the prompt is empty", chat ? "messages" : "prompt");
        if (static_cast<int32_t>(job->prompt.size()) >= engine->slot_ctx())
            throw bad_request("the prompt of " + std::to_string(job->prompt.size()) +
                                  " tokens does not fit the context of " + std::to_string(engine->slot_ctx()) +
                                  " tokens per request",
                              chat ? "messages" : "prompt");
        const bool stream = bool_field(j, "stream", false);
        bool usage_in_stream = false;
        if (j.contains("stream_options") && j["stream_options"].is_object())
            usage_in_stream = bool_field(j["stream_options"], "include_usage", false);
        if (!engine->submit(job)) throw ApiError{503, "the server is busy: try again later", "server_error", ""};

        const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id.fetch_add(1));
        const int64_t created = static_cast<int64_t>(std::time(nullptr));
        const std::string object = chat ? "chat.completion" : "text_completion";
        auto usage = [job] {
            std::lock_guard<std::mutex> lock(job->mu);
            return json{{"prompt_tokens", job->n_prompt},
                        {"completion_tokens", job->n_generated},
                        {"total_tokens", job->n_prompt + job->n_generated},
                        {"prompt_tokens_details", {{"cached_tokens", job->n_reused}}}};
        };
        // llama-server's "timings": the prompt's decoding (what was not reused) and the
        // generation after the first token; one line on stderr per request too.
        auto timings = [job, id] {
            std::lock_guard<std::mutex> lock(job->mu);
            const int32_t prompt_n = job->n_prompt - job->n_reused;
            const double prompt_tps = job->t_prompt_ms > 0 ? 1000.0 * prompt_n / job->t_prompt_ms : 0.0;
            const double gen_tps =
                job->t_gen_ms > 0 && job->n_sampled > 1 ? 1000.0 * (job->n_sampled - 1) / job->t_gen_ms : 0.0;
            std::fprintf(stderr,
                         "tessera serve: %s: prompt %d tokens (%d reused) %.1f tokens/s, %d generated %.1f "
                         "tokens/s, first token after %.0f ms\n",
                         id.c_str(), job->n_prompt, job->n_reused, prompt_tps, job->n_generated, gen_tps,
                         job->t_first_ms);
            return json{{"prompt_n", prompt_n},
                        {"prompt_ms", job->t_prompt_ms},
                        {"prompt_per_second", prompt_tps},
                        {"predicted_n", job->n_generated},
                        {"predicted_ms", job->t_gen_ms},
                        {"predicted_per_second", gen_tps},
                        {"cache_n", job->n_reused}};
        };
        auto reason = [job]() -> json {
            std::lock_guard<std::mutex> lock(job->mu);
            return job->finish == Finish::Length ? json("length") : json("stop");
        };
        auto failed = [job](std::string* why) {
            std::lock_guard<std::mutex> lock(job->mu);
            *why = job->error;
            return job->finish == Finish::Error;
        };

        if (!stream) {
            std::string text, piece;
            while (job->next(&piece)) text += piece;
            std::string why;
            if (failed(&why)) throw ApiError{500, why, "server_error", ""};
            json choice = {{"index", 0}, {"finish_reason", reason()}};
            if (chat)
                choice["message"] = {{"role", "assistant"}, {"content", text}};
            else
                choice["text"] = text, choice["logprobs"] = nullptr;
            json body = {{"id", id},
                         {"object", object},
                         {"created", created},
                         {"model", model_id},
                         {"choices", json::array({choice})},
                         {"usage", usage()},
                         {"timings", timings()}};
            res.set_content(body.dump(), "application/json");
            return;
        }

        const std::string chunk_object = chat ? "chat.completion.chunk" : "text_completion";
        auto chunk = [=, this](json delta_or_text, json finish, json timings = nullptr) {
            json choice = {{"index", 0}, {"finish_reason", finish}};
            if (chat)
                choice["delta"] = std::move(delta_or_text);
            else
                choice["text"] = std::move(delta_or_text), choice["logprobs"] = nullptr;
            json c = {{"id", id},
                      {"object", chunk_object},
                      {"created", created},
                      {"model", model_id},
                      {"choices", json::array({choice})}};
            if (!timings.is_null()) c["timings"] = std::move(timings);
            return "data: " + c.dump() + "\n\n";
        };
        res.set_header("Cache-Control", "no-cache");
        res.set_chunked_content_provider(
            "text/event-stream",
            [=, this, started = false](size_t, httplib::DataSink& sink) mutable {
                auto send = [&](const std::string& s) {
                    if (sink.write(s.data(), s.size())) return true;
                    job->cancel();  // the client went away: its slot is freed at the next step
                    return false;
                };
                if (!started) {
                    started = true;
                    if (chat && !send(chunk(json{{"role", "assistant"}, {"content", ""}}, nullptr))) return false;
                }
                std::string piece;
                while (job->next(&piece))
                    if (!send(chunk(chat ? json{{"content", piece}} : json(piece), nullptr))) return false;
                std::string why;
                if (failed(&why)) {
                    json e = {{"error", {{"message", why}, {"type", "server_error"}}}};
                    send("data: " + e.dump() + "\n\n");
                } else {
                    if (!send(chunk(chat ? json::object() : json(""), reason(), timings()))) return false;
                    if (usage_in_stream) {
                        json u = {{"id", id},          {"object", chunk_object},   {"created", created},
                                  {"model", model_id}, {"choices", json::array()}, {"usage", usage()}};
                        if (!send("data: " + u.dump() + "\n\n")) return false;
                    }
                }
                send("data: [DONE]\n\n");
                sink.done();
                return true;
            },
            [job](bool) { job->cancel(); });
    }
};

// Compares every byte of `given` (against `want` repeated), so the time taken depends on
// the lengths only, not on where the texts differ.
bool same_secret(const std::string& want, const std::string& given) {
    if (want.empty() || given.empty()) return false;
    unsigned diff = want.size() != given.size() ? 1u : 0u;
    for (size_t i = 0; i < given.size(); ++i)
        diff |= static_cast<unsigned char>(want[i % want.size()]) ^ static_cast<unsigned char>(given[i]);
    return diff == 0;
}

}  // namespace

int cmd_serve(int argc, char** argv) {
    const sigset_t signals = stop_signals();
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts: they all inherit it
    if (!catch_stop_signals()) {
        std::fprintf(stderr, "error: cannot make a pipe for the stop signals: %s\n", std::strerror(errno));
        return 1;
    }
    std::string model_path, host = "127.0.0.1", api_key, template_file;
    long port = 8080, parallel = 4, n_ctx = 0, n_batch = 512, n_threads = 0, queue = 64, cache_mib = 1024;
    GpuOptions gpu;
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        auto is = [&](const char* x) { return std::strcmp(a, x) == 0; };
        if (is("-h") || is("--help")) {
            std::printf(kServeHelp, kGpuHelp);
            return 0;
        }
        if (parse_load_flag(a, &gpu)) continue;
        const char* v = option_value(argc, argv, &i);
        if (!v) return 2;
        if (is("-m") || is("--model")) {
            model_path = v;
        } else if (is("--host")) {
            host = v;
        } else if (is("--port")) {
            if (!parse_int(a, v, 0, 65535, &port)) return 2;
        } else if (is("-np") || is("--parallel")) {
            if (!parse_int(a, v, 1, 256, &parallel)) return 2;
        } else if (is("-c") || is("--ctx-size")) {
            if (!parse_int(a, v, 0, 1 << 24, &n_ctx)) return 2;
        } else if (is("-b") || is("--batch-size")) {
            if (!parse_int(a, v, 1, 1 << 16, &n_batch)) return 2;
        } else if (is("-t") || is("--threads")) {
            if (!parse_int(a, v, 0, TESSERA_MAX_THREADS, &n_threads)) return 2;
        } else if (is("--api-key")) {
            api_key = v;
        } else if (is("--chat-template-file")) {
            template_file = v;
        } else if (is("--queue")) {
            if (!parse_int(a, v, 0, 1 << 20, &queue)) return 2;
        } else if (is("--cache-ram")) {
            if (!parse_int(a, v, 0, 1 << 24, &cache_mib)) return 2;
        } else if (int r = parse_gpu_option(a, v, &gpu); r != 0) {
            if (r < 0) return 2;
        } else {
            std::fprintf(stderr, "error: unknown option '%s' (see tessera serve --help)\n", a);
            return 2;
        }
    }
    if (model_path.empty()) {
        std::fprintf(stderr, "error: no model: give one with -m MODEL.gguf (see tessera serve --help)\n");
        return 2;
    }

    Server srv;
    srv.api_key = api_key;
    httplib::Server http;
    http.set_payload_max_length(kMaxBody);
    // A connection thread for every request in a slot or in the queue, and a few more, so a
    // full queue is answered with 503 (and /health answers) instead of connections waiting
    // for a thread.
    const size_t n_threads_http = static_cast<size_t>(std::min<long>(parallel + queue, 1024)) + 4;
    http.new_task_queue = [n_threads_http] { return new httplib::ThreadPool(n_threads_http); };
    http.set_pre_routing_handler([&srv](const httplib::Request& req, httplib::Response& res) {
        if (srv.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
        const std::string auth = req.get_header_value("Authorization");
        const std::string prefix = "Bearer ";
        const std::string given = auth.rfind(prefix, 0) == 0 ? auth.substr(prefix.size()) : "";
        if (same_secret(srv.api_key, given)) return httplib::Server::HandlerResponse::Unhandled;
        send_error(res, {401, "invalid API key", "invalid_request_error", ""});
        return httplib::Server::HandlerResponse::Handled;
    });
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;
        if (res.status == 404)
            send_error(res, {404, "no route " + req.method + " " + req.path, "invalid_request_error", ""});
        else if (res.status == 413)
            send_error(res, {413, "the request body is larger than " + std::to_string(kMaxBody >> 20) + " MiB",
                             "invalid_request_error", ""});
        else
            send_error(res, {res.status, "HTTP status " + std::to_string(res.status), "invalid_request_error", ""});
    });
    // Every handler's refusals (ApiError) and failures become OpenAI-shaped errors.
    auto guarded = [&srv](auto fn) {
        return [fn, &srv](const httplib::Request& req, httplib::Response& res) {
            try {
                if (!srv.ready.load()) throw ApiError{503, "the model is still loading", "unavailable_error", ""};
                fn(req, res);
            } catch (const ApiError& e) {
                send_error(res, e);
            } catch (const std::exception& e) {
                send_error(res, {500, e.what(), "server_error", ""});
            }
        };
    };
    http.Get("/health", [&srv](const httplib::Request&, httplib::Response& res) {
        if (srv.ready.load()) {
            const Engine::Load l = srv.engine->load();
            res.set_content(json{{"status", "ok"},
                                 {"slots_idle", l.slots_idle},
                                 {"slots_processing", l.slots_processing},
                                 {"requests_queued", l.requests_queued}}
                                .dump(),
                            "application/json");
        } else {
            res.status = 503;
            res.set_content(R"({"status":"loading model"})", "application/json");
        }
    });
    http.Get("/v1/models", guarded([&srv](const httplib::Request&, httplib::Response& res) {
                 json m = {{"id", srv.model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "tessera"}};
                 res.set_content(json{{"object", "list"}, {"data", json::array({m})}}.dump(), "application/json");
             }));
    http.Post("/v1/chat/completions",
              guarded([&srv](const httplib::Request& req, httplib::Response& res) { srv.completion(req, res, true); }));
    http.Post("/v1/completions", guarded([&srv](const httplib::Request& req, httplib::Response& res) {
                  srv.completion(req, res, false);
              }));
    http.Post("/tokenize", guarded([&srv](const httplib::Request& req, httplib::Response& res) {
                  const json j = parse_body(req);
                  if (!j.contains("content")) throw bad_request("'content' is required", "content");
                  const bool add_special = bool_field(j, "add_special", false);
                  const bool parse_special = bool_field(j, "parse_special", false);
                  const auto toks = srv.tokens_of(string_of(j["content"], "content"), add_special, parse_special);
                  res.set_content(json{{"tokens", toks}}.dump(), "application/json");
              }));
    http.Post("/detokenize", guarded([&srv](const httplib::Request& req, httplib::Response& res) {
                  const json j = parse_body(req);
                  if (!j.contains("tokens") || !j["tokens"].is_array())
                      throw bad_request("'tokens' must be an array of token ids", "tokens");
                  std::vector<int32_t> ids;
                  const int32_t n_vocab = tessera_vocab_size(srv.model);
                  for (const json& t : j["tokens"]) {
                      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= n_vocab)
                          throw bad_request("'tokens' holds something that is not a token id of this model", "tokens");
                      ids.push_back(t.get<int32_t>());
                  }
                  std::string text(ids.size() * 16 + 16, '\0');
                  size_t len = 0;
                  tessera_status st = tessera_detokenize(srv.model, ids.data(), static_cast<int32_t>(ids.size()),
                                                         text.data(), text.size(), &len);
                  if (st != TESSERA_OK && len > text.size()) {
                      text.resize(len + 1);
                      st = tessera_detokenize(srv.model, ids.data(), static_cast<int32_t>(ids.size()), text.data(),
                                              text.size(), &len);
                  }
                  if (st != TESSERA_OK) throw bad_request(tessera_last_error(), "tokens");
                  text.resize(len);
                  res.set_content(json{{"content", text}}.dump(-1, ' ', false, json::error_handler_t::replace),
                                  "application/json");
              }));

    // Loads the model and starts the engine while the server already answers (503 until
    // then); 0, or the exit status of the failure it reported.
    tessera_context* ctx = nullptr;
    auto load = [&]() -> int {
        // The cells the context below takes (at most: a slot's share is the training context, up to 4096).
        gpu.plan_n_ctx = static_cast<int32_t>(n_ctx > 0 ? n_ctx : 4096 * parallel);
        gpu.plan_threads = static_cast<int32_t>(n_threads);
        srv.model = load_model_or_report(model_path.c_str(), gpu);
        if (!srv.model) return 1;
        if (!chat_format(srv.model, template_file, &srv.format)) return 1;
        if (srv.format.fallback)
            std::fprintf(stderr, srv.format.fallback, model_path.c_str()), std::fputc('\n', stderr);
        srv.model_id = tessera_model_name(srv.model);
        if (srv.model_id.empty()) srv.model_id = model_path.substr(model_path.find_last_of('/') + 1);
        srv.seed_base = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());

        tessera_context_params cp = tessera_context_default_params();
        const int32_t per_slot = std::min<int32_t>(
            tessera_model_n_ctx_train(srv.model) > 0 ? tessera_model_n_ctx_train(srv.model) : 4096, 4096);
        cp.n_ctx = n_ctx > 0 ? static_cast<int32_t>(n_ctx) : per_slot * static_cast<int32_t>(parallel);
        cp.n_batch = static_cast<int32_t>(n_batch);
        cp.n_threads = static_cast<int32_t>(n_threads);
        cp.n_seq = static_cast<int32_t>(parallel);
        if (tessera_context_new(srv.model, &cp, &ctx) != TESSERA_OK) {
            std::fprintf(stderr, "error: %s\n", tessera_last_error());
            return 1;
        }
        if (cp.n_ctx / parallel < 2) {
            std::fprintf(stderr, "error: a context of %d cells leaves too few per request for %ld requests\n", cp.n_ctx,
                         parallel);
            return 2;
        }
        serve::EngineOptions eo;
        eo.n_parallel = static_cast<int32_t>(parallel);
        eo.n_batch = static_cast<int32_t>(n_batch);
        eo.queue = static_cast<int32_t>(queue);
        eo.prompt_cache_bytes = static_cast<size_t>(cache_mib) << 20;
        srv.engine = std::make_unique<Engine>(srv.model, ctx, eo);
        return 0;
    };

    int bound = static_cast<int>(port);
    if (port == 0) {
        bound = http.bind_to_any_port(host);
    } else if (!http.bind_to_port(host, static_cast<int>(port))) {
        bound = -1;
    }
    if (bound < 0) {
        std::fprintf(stderr, "error: cannot listen on %s:%ld (in use, or not an address of this machine)\n",
                     host.c_str(), port);
        return 1;
    }
    static std::atomic<httplib::Server*> stopping{nullptr};
    stopping.store(&http);
    std::thread([signals] {
        pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);  // the handler runs here at least
        wait_stop_signal();
        if (httplib::Server* s = stopping.load()) s->stop();
        std::_Exit(128 + wait_stop_signal());
    }).detach();
    std::fprintf(stderr, "tessera serve: listening on http://%s:%d, loading %s\n", host.c_str(), bound,
                 model_path.c_str());
    std::fflush(stderr);
    bool listened = true;
    std::thread listener([&] { listened = http.listen_after_bind(); });
    // stop() only ends a listen that has begun: wait for it (or for its failure).
    for (int i = 0; i < 500 && !http.is_running() && listened; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const int status = load();
    if (status == 0) {
        srv.ready.store(true);
        std::fprintf(stderr, "tessera serve: %s ready (%ld parallel, %d tokens each)\n", srv.model_id.c_str(), parallel,
                     srv.engine->slot_ctx());
        std::fflush(stderr);
    } else {
        http.stop();
    }
    listener.join();
    stopping.store(nullptr);
    srv.engine.reset();  // before the context it decodes with
    tessera_context_free(ctx);
    tessera_model_free(srv.model);
    if (status != 0) return status;
    return listened ? 0 : 1;
}

}  // namespace tessera_cli
