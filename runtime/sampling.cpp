// The sampler chain.
#include "runtime/sampling.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>

#include "tensor/error.h"

namespace tessera::runtime {

namespace {

// Rejects what would make sampling meaningless (a NaN temperature picks the least likely
// token), naming the field.
void check_params(const SamplerParams& p) {
    auto finite = [](const char* name, float v) {
        if (!std::isfinite(v))
            throw Error(std::string("sampler parameter ") + name + " is " + std::to_string(v) + "; it must be finite");
    };
    finite("temperature", p.temperature);
    finite("top_p", p.top_p);
    finite("min_p", p.min_p);
    finite("repeat_penalty", p.repeat_penalty);
    finite("presence_penalty", p.presence_penalty);
    finite("frequency_penalty", p.frequency_penalty);
    if (p.repeat_penalty <= 0.0f)
        throw Error("sampler parameter repeat_penalty is " + std::to_string(p.repeat_penalty) +
                    "; it must be positive (1 is off)");
    if (p.top_p < 0.0f) throw Error("sampler parameter top_p is " + std::to_string(p.top_p) + "; it must be >= 0");
    if (p.min_p > 1.0f) throw Error("sampler parameter min_p is " + std::to_string(p.min_p) + "; it must be <= 1");
    if (p.repeat_last_n < 0)
        throw Error("sampler parameter repeat_last_n is " + std::to_string(p.repeat_last_n) + "; it must be >= 0");
}

}  // namespace

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) { check_params(p); }

void Sampler::reset() {
    history_.clear();
    rng_.seed(p_.seed);
}

void Sampler::accept(int32_t token) {
    if (p_.repeat_last_n <= 0) return;
    history_.push_back(token);
    while (history_.size() > static_cast<size_t>(p_.repeat_last_n)) history_.pop_front();
}

namespace {
// Softmax over the candidates' logits into p (they are sorted by logit, descending).
template <typename C>
void softmax(std::vector<C>& c) {
    const float mx = c.front().logit;
    double sum = 0;
    for (auto& x : c) sum += (x.p = std::exp(x.logit - mx));
    for (auto& x : c) x.p = static_cast<float>(x.p / sum);
}
}  // namespace

int32_t Sampler::sample(const float* logits, int32_t n_vocab) {
    cand_.resize(static_cast<size_t>(n_vocab));
    for (int32_t i = 0; i < n_vocab; ++i) cand_[static_cast<size_t>(i)] = Candidate{i, logits[i], 0.0f};

    // Penalties on tokens seen in the last repeat_last_n.
    const bool penalize = p_.repeat_penalty != 1.0f || p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f;
    if (penalize && !history_.empty()) {
        std::unordered_map<int32_t, int> counts;
        for (int32_t t : history_) counts[t]++;
        for (auto [t, n] : counts) {
            if (t < 0 || t >= n_vocab) continue;
            float& l = cand_[static_cast<size_t>(t)].logit;
            l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
            l -= static_cast<float>(n) * p_.frequency_penalty + p_.presence_penalty;
        }
    }

    auto by_logit = [](const Candidate& a, const Candidate& b) {
        return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    };
    if (p_.temperature <= 0.0f) return std::min_element(cand_.begin(), cand_.end(), by_logit)->id;

    // top-k, then sort what is left.
    size_t k = cand_.size();
    if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < k) {
        k = static_cast<size_t>(p_.top_k);
        std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(k), cand_.end(), by_logit);
        cand_.resize(k);
    } else {
        std::sort(cand_.begin(), cand_.end(), by_logit);
    }
    softmax(cand_);

    // top-p: the smallest prefix whose probability reaches p.
    if (p_.top_p < 1.0f) {
        double cum = 0;
        size_t keep = cand_.size();
        for (size_t i = 0; i < cand_.size(); ++i) {
            cum += cand_[i].p;
            if (cum >= p_.top_p) {
                keep = i + 1;
                break;
            }
        }
        cand_.resize(std::max<size_t>(keep, 1));
    }
    // min-p: drop tokens less likely than min_p times the most likely one.
    if (p_.min_p > 0.0f) {
        const float floor = cand_.front().p * p_.min_p;
        size_t keep = 1;
        while (keep < cand_.size() && cand_[keep].p >= floor) ++keep;
        cand_.resize(keep);
    }

    // Temperature on what survived, then a draw.
    for (Candidate& c : cand_) c.logit /= p_.temperature;
    softmax(cand_);
    const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
    double cum = 0;
    for (const Candidate& c : cand_) {
        cum += c.p;
        if (u < cum) return c.id;
    }
    return cand_.back().id;
}

}  // namespace tessera::runtime
