// Token sampling: repetition/presence/frequency penalties, then top-k, top-p, min-p
// on the untempered distribution, then temperature and a seeded draw. Temperature <= 0
// is greedy. The same seed and logits give the same tokens on every machine.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

namespace tessera::runtime {

struct SamplerParams {
    float temperature = 0.8f;
    int32_t top_k = 40;           // <= 0: off
    float top_p = 0.95f;          // >= 1: off
    float min_p = 0.05f;          // <= 0: off
    float repeat_penalty = 1.0f;  // 1: off
    int32_t repeat_last_n = 64;   // tokens the penalties look back over
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;
    uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(const SamplerParams& p);
    // Picks a token from `n_vocab` logits (not modified).
    int32_t sample(const float* logits, int32_t n_vocab);
    // Records a token of the sequence (prompt or generated) for the penalties.
    void accept(int32_t token);
    void reset();
    const SamplerParams& params() const { return p_; }

private:
    struct Candidate {
        int32_t id;
        float logit;
        float p;
    };
    SamplerParams p_;
    std::mt19937_64 rng_;
    std::deque<int32_t> history_;
    std::vector<Candidate> cand_;
    std::vector<float> penalized_;  // the logits with the penalties applied
};

}  // namespace tessera::runtime
