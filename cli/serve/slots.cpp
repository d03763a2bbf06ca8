// The engine's thread: admit queued requests into free slots (reusing the longest cached
// prefix), then one decode per step over every active slot (a token each for those
// generating, prompt chunks for the others in what the batch has left), then sampling.
#include "slots.h"

#include <algorithm>
#include <chrono>

namespace tessera_cli::serve {

namespace {

double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The length of the longest suffix of `text` that begins one of `stops` (and is not all of it).
size_t stop_prefix_tail(const std::string& text, const std::vector<std::string>& stops) {
    size_t keep = 0;
    for (const std::string& s : stops)
        for (size_t n = std::min(text.size(), s.size() - 1); n > keep; --n)
            if (text.compare(text.size() - n, n, s, 0, n) == 0) {
                keep = n;
                break;
            }
    return keep;
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
    const size_t n = std::min(a.size(), b.size());
    return static_cast<size_t>(std::mismatch(a.begin(), a.begin() + static_cast<ptrdiff_t>(n), b.begin()).first -
                               a.begin());
}

// Prompts shorter than this are not worth a copy of their cells.
constexpr size_t kMinCachedTokens = 16;

// How long a stream's reader waits, once it has sent text, before it takes what came since.
constexpr int kStreamIntervalMs = 10;

}  // namespace

bool Job::next(std::string* text) {
    std::unique_lock<std::mutex> lock(mu);
    // Text arrives a token at a time; a reader that waits a little takes several at once and
    // wakes (and writes to its socket) less often, which takes less time from the threads
    // decoding. The engine wakes it early only when the job ends.
    if (taken) cv.wait_for(lock, std::chrono::milliseconds(kStreamIntervalMs), [&] { return finish != Finish::None; });
    waiting = true;
    cv.wait(lock, [&] { return !pending.empty() || finish != Finish::None; });
    waiting = false;
    taken = true;
    if (pending.empty()) return false;
    *text = std::move(pending);
    pending.clear();
    return true;
}

void Job::cancel() {
    std::lock_guard<std::mutex> lock(mu);
    cancelled = true;
}

Engine::Engine(tessera_model* model, tessera_context* ctx, const EngineOptions& options)
    : model_(model), ctx_(ctx), opt_(options) {
    slots_.resize(static_cast<size_t>(opt_.n_parallel));
    slot_ctx_ = tessera_context_n_ctx(ctx_) / opt_.n_parallel;
    thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
    for (Slot& s : slots_)
        if (s.job) finish(s, Finish::Error, "the server is shutting down");
    for (auto& [job, t] : queue_) {
        std::lock_guard<std::mutex> lock(job->mu);
        job->finish = Finish::Error;
        job->error = "the server is shutting down";
        job->cv.notify_all();
    }
}

bool Engine::submit(const std::shared_ptr<Job>& job) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (static_cast<int32_t>(queue_.size()) >= opt_.queue) return false;
        queue_.emplace_back(job, now_ms());
    }
    cv_.notify_all();
    return true;
}

Engine::Load Engine::load() const {
    std::lock_guard<std::mutex> lock(mu_);
    Load l;
    l.slots_processing = n_processing_;
    l.slots_idle = static_cast<int32_t>(slots_.size()) - n_processing_;
    l.requests_queued = static_cast<int32_t>(queue_.size());
    return l;
}

void Engine::loop() {
    for (;;) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (stopping_) return;
        }
        admit();
        if (!step()) {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        }
    }
}

// Each queued job goes to the free slot whose cached tokens share the longest prefix with its
// prompt (the same conversation one turn longer reuses all of it).
void Engine::admit() {
    for (;;) {
        std::shared_ptr<Job> job;
        double t_submit = 0;
        size_t best = slots_.size(), best_common = 0;
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (queue_.empty()) return;
            for (size_t i = 0; i < slots_.size(); ++i) {
                if (slots_[i].job) continue;
                const size_t common = common_prefix(slots_[i].tokens, queue_.front().first->prompt);
                if (best == slots_.size() || common > best_common) best = i, best_common = common;
            }
            if (best == slots_.size()) return;  // every slot is busy
            job = queue_.front().first;
            t_submit = queue_.front().second;
            queue_.pop_front();
            ++n_processing_;
        }
        Slot& s = slots_[best];
        const int32_t seq = static_cast<int32_t>(best);
        // A cached prompt that shares more with this one than the slot does replaces what the
        // slot holds; what the slot held beyond the shared part goes to the cache first.
        auto hit = cached_.end();
        size_t hit_common = best_common;
        for (auto it = cached_.begin(); it != cached_.end(); ++it)
            if (const size_t c = common_prefix(it->tokens, job->prompt); c > hit_common) hit = it, hit_common = c;
        if (s.tokens.size() > best_common) stash(best);
        if (hit != cached_.end() &&
            tessera_seq_state_load(ctx_, seq, static_cast<int32_t>(hit->tokens.size()), hit->state.data(),
                                   hit->state.size()) == TESSERA_OK) {
            s.tokens = hit->tokens;
            best_common = hit_common;
            cached_.splice(cached_.begin(), cached_, hit);
        }
        // At least the prompt's last token is decoded again: its logits start the reply.
        const size_t reuse = std::min(best_common, job->prompt.empty() ? 0 : job->prompt.size() - 1);
        tessera_seq_truncate(ctx_, seq, static_cast<int32_t>(reuse));
        s.tokens.resize(reuse);
        s.n_fed = reuse;
        s.job = job;
        s.held.clear();
        s.last = -1;
        s.first = true;
        s.sampled = false;
        s.t_submit = t_submit;
        s.t_admit = now_ms();
        {
            std::lock_guard<std::mutex> lock(job->mu);
            job->n_prompt = static_cast<int32_t>(job->prompt.size());
            job->n_reused = static_cast<int32_t>(reuse);
        }
        if (job->prompt.empty() || static_cast<int32_t>(job->prompt.size()) > slot_ctx_) {
            finish(s, Finish::Error,
                   "the prompt of " + std::to_string(job->prompt.size()) + " tokens does not fit the context of " +
                       std::to_string(slot_ctx_) + " tokens per request");
            continue;
        }
        if (tessera_sampler_new(&job->sampling, &s.sampler) != TESSERA_OK ||
            tessera_detokenizer_new(model_, &s.detok) != TESSERA_OK) {
            finish(s, Finish::Error, tessera_last_error());
            continue;
        }
        for (int32_t t : job->prompt) tessera_sampler_accept(s.sampler, t);
    }
}

void Engine::stash(size_t i) {
    Slot& s = slots_[i];
    const int32_t seq = static_cast<int32_t>(i);
    const size_t n = std::min(s.tokens.size(), static_cast<size_t>(tessera_seq_len(ctx_, seq)));
    if (n < kMinCachedTokens || opt_.prompt_cache_bytes == 0) return;
    const std::vector<int32_t> tokens(s.tokens.begin(), s.tokens.begin() + static_cast<ptrdiff_t>(n));
    for (auto it = cached_.begin(); it != cached_.end();) {
        const size_t c = common_prefix(it->tokens, tokens);
        if (c == n) {  // held already, whole
            cached_.splice(cached_.begin(), cached_, it);
            return;
        }
        if (c == it->tokens.size()) {  // a prefix of this one: superseded
            cached_bytes_ -= it->state.size();
            it = cached_.erase(it);
        } else {
            ++it;
        }
    }
    const size_t bytes = tessera_seq_state_size(ctx_, static_cast<int32_t>(n));
    if (bytes == 0 || bytes > opt_.prompt_cache_bytes) return;
    while (cached_bytes_ + bytes > opt_.prompt_cache_bytes) {
        cached_bytes_ -= cached_.back().state.size();
        cached_.pop_back();
    }
    CachedPrompt entry{tokens, std::vector<uint8_t>(bytes)};
    if (tessera_seq_state_save(ctx_, seq, static_cast<int32_t>(n), entry.state.data(), bytes) != TESSERA_OK) return;
    cached_bytes_ += bytes;
    cached_.push_front(std::move(entry));
}

bool Engine::step() {
    std::vector<tessera_seq_token> batch;
    std::vector<std::pair<size_t, int32_t>> outs;  // (slot, output row)
    std::vector<size_t> fed;                       // slots in this batch
    int32_t budget = opt_.n_batch;
    // Generating slots first (one token each), then prompt chunks in what is left.
    for (int pass = 0; pass < 2; ++pass)
        for (size_t i = 0; i < slots_.size() && budget > 0; ++i) {
            Slot& s = slots_[i];
            if (!s.job) continue;
            const bool prompting = s.n_fed < s.job->prompt.size();
            if (prompting != (pass == 1)) continue;
            bool cancelled;
            {
                std::lock_guard<std::mutex> lock(s.job->mu);
                cancelled = s.job->cancelled;
            }
            if (cancelled) {
                finish(s, Finish::Stop);
                continue;
            }
            const int32_t seq = static_cast<int32_t>(i);
            if (!prompting) {
                if (static_cast<int32_t>(s.tokens.size()) >= slot_ctx_) {
                    release(s, s.held);
                    finish(s, Finish::Length);
                    continue;
                }
                batch.push_back({s.last, seq, 1});
                s.tokens.push_back(s.last);
                outs.emplace_back(i, static_cast<int32_t>(outs.size()));
                --budget;
            } else {
                const size_t take = std::min(s.job->prompt.size() - s.n_fed, static_cast<size_t>(budget));
                for (size_t k = 0; k < take; ++k) {
                    const bool last = s.n_fed + k + 1 == s.job->prompt.size();
                    batch.push_back({s.job->prompt[s.n_fed + k], seq, last ? 1 : 0});
                    s.tokens.push_back(s.job->prompt[s.n_fed + k]);
                    if (last) outs.emplace_back(i, static_cast<int32_t>(outs.size()));
                }
                s.n_fed += take;
                budget -= static_cast<int32_t>(take);
            }
            fed.push_back(i);
        }
    if (batch.empty()) {
        for (const Slot& s : slots_)
            if (s.job) return true;  // finished ones were just released
        return false;
    }
    if (tessera_decode_seqs(ctx_, batch.data(), static_cast<int32_t>(batch.size())) != TESSERA_OK) {
        const std::string why = tessera_last_error();
        for (size_t i : fed) {
            tessera_seq_truncate(ctx_, static_cast<int32_t>(i), 0);
            slots_[i].tokens.clear();
            if (slots_[i].job) finish(slots_[i], Finish::Error, why);
        }
        return true;
    }
    for (const auto& [i, row] : outs) sample(slots_[i], row);
    return true;
}

void Engine::sample(Slot& s, int32_t row) {
    Job& job = *s.job;
    int32_t tok = -1;
    if (tessera_sampler_sample(s.sampler, ctx_, row, &tok) != TESSERA_OK) {
        finish(s, Finish::Error, tessera_last_error());
        return;
    }
    tessera_sampler_accept(s.sampler, tok);
    {
        std::lock_guard<std::mutex> lock(job.mu);
        ++job.n_sampled;
        if (!s.sampled) {
            s.sampled = true;
            s.t_first_token = now_ms();
            job.t_prompt_ms = s.t_first_token - s.t_admit;
        }
    }
    const bool end = !job.ignore_eos && (tessera_token_is_eog(model_, tok) ||
                                         std::find(job.end_ids.begin(), job.end_ids.end(), tok) != job.end_ids.end());
    if (end) {
        const char* text = nullptr;
        size_t len = 0;
        tessera_detokenizer_flush(s.detok, &text, &len);
        release(s, s.held + std::string(text, len));
        finish(s, Finish::Stop);
        return;
    }
    {
        std::lock_guard<std::mutex> lock(job.mu);
        ++job.n_generated;
    }
    const char* text = nullptr;
    size_t len = 0;
    tessera_detokenizer_push(s.detok, tok, &text, &len);
    s.held.append(text, len);
    s.last = tok;
    // A stop string ends the reply before it; text that may begin one waits.
    size_t cut = std::string::npos;
    for (const std::string& stop : job.stop)
        if (!stop.empty()) cut = std::min(cut, s.held.find(stop));
    if (cut != std::string::npos) {
        release(s, s.held.substr(0, cut));
        finish(s, Finish::Stop);
        return;
    }
    const size_t keep = stop_prefix_tail(s.held, job.stop);
    release(s, s.held.substr(0, s.held.size() - keep));
    s.held.erase(0, s.held.size() - keep);
    if (job.max_tokens > 0 && job.n_generated >= job.max_tokens) {
        tessera_detokenizer_flush(s.detok, &text, &len);
        release(s, s.held + std::string(text, len));
        finish(s, Finish::Length);
    }
}

void Engine::release(Slot& s, const std::string& text) {
    Job& job = *s.job;
    {
        std::lock_guard<std::mutex> lock(job.mu);
        if (s.first) job.t_first_ms = now_ms() - s.t_submit, s.first = false;
        job.pending += text;
        if (!job.waiting) return;  // the reader comes back for it
    }
    job.cv.notify_all();
}

void Engine::finish(Slot& s, Finish why, const std::string& error) {
    Job& job = *s.job;
    {
        std::lock_guard<std::mutex> lock(job.mu);
        const double now = now_ms();
        if (s.first) job.t_first_ms = now - s.t_submit;
        if (s.sampled) job.t_gen_ms = now - s.t_first_token;
        job.finish = why;
        job.error = error;
    }
    job.cv.notify_all();
    tessera_sampler_free(s.sampler);
    tessera_detokenizer_free(s.detok);
    s.sampler = nullptr;
    s.detok = nullptr;
    s.job.reset();
    std::lock_guard<std::mutex> lock(mu_);
    --n_processing_;
}

}  // namespace tessera_cli::serve
