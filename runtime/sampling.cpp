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
// The index of the first of the largest values (0 when none compares, all NaN): the
// maximum in 16 independent lanes (a loop the compiler vectorizes), then the first index
// holding it.
int32_t first_max(const float* l, int32_t n) {
    constexpr int32_t kLanes = 16;
    float m[kLanes];
    std::fill(m, m + kLanes, -INFINITY);
    int32_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int32_t j = 0; j < kLanes; ++j) m[j] = l[i + j] > m[j] ? l[i + j] : m[j];
    float mx = -INFINITY;
    for (int32_t j = 0; j < kLanes; ++j) mx = m[j] > mx ? m[j] : mx;
    for (; i < n; ++i) mx = l[i] > mx ? l[i] : mx;
    for (int32_t k = 0; k < n; ++k)
        if (l[k] == mx) return k;
    return 0;
}

}  // namespace

int32_t Sampler::sample(const float* logits, int32_t n_vocab) {
    // Penalties on tokens seen in the last repeat_last_n, on a copy of the logits.
    const float* l = logits;
    const bool penalize = p_.repeat_penalty != 1.0f || p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f;
    if (penalize && !history_.empty()) {
        penalized_.assign(logits, logits + n_vocab);
        std::unordered_map<int32_t, int> counts;
        for (int32_t t : history_) counts[t]++;
        for (auto [t, n] : counts) {
            if (t < 0 || t >= n_vocab) continue;
            float& x = penalized_[static_cast<size_t>(t)];
            x = x > 0 ? x / p_.repeat_penalty : x * p_.repeat_penalty;
            x -= static_cast<float>(n) * p_.frequency_penalty + p_.presence_penalty;
        }
        l = penalized_.data();
    }

    // Candidates are ordered by logit, then by id: the largest logit first, ties to the
    // smaller id. Greedy takes the first; the scan keeps the first of equal maxima.
    if (p_.temperature <= 0.0f) return first_max(l, n_vocab);
    auto by_logit = [](const Candidate& a, const Candidate& b) {
        return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    };

    // top-k: the k first in that order, kept in a heap whose top is the worst of them (a
    // token enters only with a larger logit than that one: equal logits come later by id, so
    // rank after it), then sorted. A scan with one comparison for most of the vocabulary.
    cand_.clear();
    if (p_.top_k > 0 && p_.top_k < n_vocab) {
        const size_t k = static_cast<size_t>(p_.top_k);
        auto offer = [&](int32_t i) {
            if (cand_.size() < k) {
                cand_.push_back(Candidate{i, l[i], 0.0f});
                std::push_heap(cand_.begin(), cand_.end(), by_logit);
            } else if (l[i] > cand_.front().logit) {
                std::pop_heap(cand_.begin(), cand_.end(), by_logit);
                cand_.back() = Candidate{i, l[i], 0.0f};
                std::push_heap(cand_.begin(), cand_.end(), by_logit);
            }
        };
        // Once the heap is full, a chunk whose largest logit does not beat its worst is
        // passed over whole.
        constexpr int32_t kChunk = 16;
        int32_t i = 0;
        for (; i + kChunk <= n_vocab; i += kChunk) {
            if (cand_.size() == k) {
                float mx = l[i];
                for (int32_t j = 1; j < kChunk; ++j) mx = l[i + j] > mx ? l[i + j] : mx;
                if (!(mx > cand_.front().logit)) continue;
            }
            for (int32_t j = 0; j < kChunk; ++j) offer(i + j);
        }
        for (; i < n_vocab; ++i) offer(i);
        std::sort_heap(cand_.begin(), cand_.end(), by_logit);
    } else {
        cand_.resize(static_cast<size_t>(n_vocab));
        for (int32_t i = 0; i < n_vocab; ++i) cand_[static_cast<size_t>(i)] = Candidate{i, l[i], 0.0f};
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
