// The server's engine: one context of n_seq sequences ("slots") and one thread that
// decodes every active request in one batch per step (continuous batching: a request
// joins the running batch when it arrives and leaves it when it ends). What a slot held
// before it took another prompt stays in a bounded cache in host memory, so a prompt seen
// before (a conversation's next turn, a client's fixed instructions) is not computed again. Requests come from
// the HTTP threads; their text goes back through a Job that the HTTP thread reads.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tessera.h"

namespace tessera_cli::serve {

enum class Finish { None, Stop, Length, Error };

// One request's generation: what to do, and what came of it so far. The engine writes the
// results; the HTTP thread waits for them with next().
struct Job {
    // Set by the submitter.
    std::vector<int32_t> prompt;
    tessera_sampler_params sampling{};
    int32_t max_tokens = 0;  // 0: until the slot's context is full
    bool ignore_eos = false; // end-of-generation tokens do not end the reply
    std::vector<std::string> stop;
    std::vector<int32_t> end_ids;  // tokens that end the generation (besides the model's EOG)

    // Results, under mu.
    std::mutex mu;
    std::condition_variable cv;
    std::string pending;  // text not yet taken by next()
    Finish finish = Finish::None;
    std::string error;
    int32_t n_prompt = 0, n_generated = 0, n_reused = 0;
    int32_t n_sampled = 0;   // tokens sampled, an end-of-generation one too
    bool cancelled = false;  // the client went away
    bool waiting = false;    // next() sleeps until there is text: the engine wakes it
    bool taken = false;      // next() returned text before
    double t_first_ms = 0;   // from submission to the first token
    double t_prompt_ms = 0;  // from taking a slot to the first token (the prompt's decoding)
    double t_gen_ms = 0;     // from the first token to the last

    // Waits until there is text or the job ended; moves the text into *text. False once the
    // job has ended and every piece was taken.
    bool next(std::string* text);
    void cancel();
};

struct EngineOptions {
    int32_t n_parallel = 4;
    int32_t n_batch = 512;
    int32_t queue = 64;  // requests waiting for a slot beyond which submit refuses
    // Bytes of host memory for prompts kept after their slot moved on (0: none).
    size_t prompt_cache_bytes = size_t{1} << 30;
};

class Engine {
public:
    // The context must have n_seq = options.n_parallel; the engine uses it from its thread.
    Engine(tessera_model* model, tessera_context* ctx, const EngineOptions& options);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Queues a job; false when the queue is full.
    bool submit(const std::shared_ptr<Job>& job);
    // Tokens a slot may hold (prompt and generated text together).
    int32_t slot_ctx() const { return slot_ctx_; }

    // What the engine is doing now, for /health (a snapshot: it changes while it is read).
    struct Load {
        int32_t slots_idle = 0, slots_processing = 0, requests_queued = 0;
    };
    Load load() const;

private:
    struct Slot {
        std::shared_ptr<Job> job;
        std::vector<int32_t> tokens;  // what its sequence holds in the cache
        size_t n_fed = 0;             // prompt tokens decoded so far
        tessera_sampler* sampler = nullptr;
        tessera_detokenizer* detok = nullptr;
        std::string held;   // generated text not yet released (a stop string may begin in it)
        int32_t last = -1;  // the token to feed next, once the prompt is in
        double t_submit = 0, t_admit = 0, t_first_token = 0;
        bool first = true;    // no text released yet
        bool sampled = false; // a token was sampled
    };

    // A slot's tokens and their cache cells, kept after the slot moved on to another prompt.
    struct CachedPrompt {
        std::vector<int32_t> tokens;
        std::vector<uint8_t> state;
    };

    void loop();
    void admit();
    // Keeps what slot i holds in the prompt cache (unless the cache holds it already).
    void stash(size_t i);
    bool step();
    void sample(Slot& s, int32_t row);
    void release(Slot& s, const std::string& text);
    void finish(Slot& s, Finish why, const std::string& error = "");

    tessera_model* model_;
    tessera_context* ctx_;
    EngineOptions opt_;
    int32_t slot_ctx_;
    std::vector<Slot> slots_;
    std::list<CachedPrompt> cached_;  // most recently used first
    size_t cached_bytes_ = 0;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::pair<std::shared_ptr<Job>, double>> queue_;
    int32_t n_processing_ = 0;  // slots with a job (under mu_, for load())
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace tessera_cli::serve
