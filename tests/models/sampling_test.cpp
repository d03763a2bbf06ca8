// The sampler against its definition written out plainly: every candidate built and sorted
// by (logit descending, id ascending), the penalties applied to the whole array, greedy the
// first of them, top-k the first k after a full sort. The sampler selects instead of
// sorting; with the same seed both must pick the same token, ties included.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <random>
#include <vector>

#include "runtime/sampling.h"

namespace {

using tessera::runtime::Sampler;
using tessera::runtime::SamplerParams;

struct Cand {
    int32_t id;
    float logit;
    float p;
};

void softmax(std::vector<Cand>& c) {
    const float mx = c.front().logit;
    double sum = 0;
    for (auto& x : c) sum += (x.p = std::exp(x.logit - mx));
    for (auto& x : c) x.p = static_cast<float>(x.p / sum);
}

int32_t reference_sample(const SamplerParams& p, const std::deque<int32_t>& history, std::mt19937_64& rng,
                         const std::vector<float>& logits) {
    const int32_t n = static_cast<int32_t>(logits.size());
    std::vector<Cand> c(logits.size());
    for (int32_t i = 0; i < n; ++i) c[static_cast<size_t>(i)] = Cand{i, logits[static_cast<size_t>(i)], 0.0f};
    if (p.repeat_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) {
        std::map<int32_t, int> counts;
        for (int32_t t : history) counts[t]++;
        for (auto [t, k] : counts) {
            float& l = c[static_cast<size_t>(t)].logit;
            l = l > 0 ? l / p.repeat_penalty : l * p.repeat_penalty;
            l -= static_cast<float>(k) * p.frequency_penalty + p.presence_penalty;
        }
    }
    std::sort(c.begin(), c.end(),
              [](const Cand& a, const Cand& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); });
    if (p.temperature <= 0.0f) return c.front().id;
    if (p.top_k > 0 && p.top_k < n) c.resize(static_cast<size_t>(p.top_k));
    softmax(c);
    if (p.top_p < 1.0f) {
        double cum = 0;
        size_t keep = c.size();
        for (size_t i = 0; i < c.size(); ++i) {
            cum += c[i].p;
            if (cum >= p.top_p) {
                keep = i + 1;
                break;
            }
        }
        c.resize(std::max<size_t>(keep, 1));
    }
    if (p.min_p > 0.0f) {
        const float floor = c.front().p * p.min_p;
        size_t keep = 1;
        while (keep < c.size() && c[keep].p >= floor) ++keep;
        c.resize(keep);
    }
    for (Cand& x : c) x.logit /= p.temperature;
    softmax(c);
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    double cum = 0;
    for (const Cand& x : c) {
        cum += x.p;
        if (u < cum) return x.id;
    }
    return c.back().id;
}

}  // namespace

TEST_CASE("the sampler picks what the plain definition picks, ties and penalties included") {
    std::mt19937 gen(7);
    int checked = 0, greedy_ties = 0;
    for (int round = 0; round < 300; ++round) {
        const int32_t n_vocab = round % 3 == 0 ? 50 : 3000;
        std::vector<float> logits(static_cast<size_t>(n_vocab));
        // Logits on a coarse grid (many ties, several of the largest value) or continuous.
        std::normal_distribution<float> nd(0.0f, 3.0f);
        for (float& l : logits) l = round % 2 ? std::round(nd(gen)) : nd(gen);
        SamplerParams p;
        p.seed = 1000 + static_cast<uint64_t>(round);
        p.temperature = (round % 5 == 0) ? 0.0f : 0.3f + 0.2f * static_cast<float>(round % 7);
        const int32_t ks[] = {0, 1, 5, 40, n_vocab - 1, n_vocab, n_vocab + 10};
        p.top_k = ks[round % 7];
        p.top_p = (round % 4 == 0) ? 1.0f : 0.9f;
        p.min_p = (round % 6 == 0) ? 0.0f : 0.05f;
        if (round % 3 == 1) {
            p.repeat_penalty = 1.3f;
            p.presence_penalty = 0.5f;
            p.frequency_penalty = 0.2f;
            p.repeat_last_n = 16;
        }
        Sampler s(p);
        std::mt19937_64 rng(p.seed);
        std::deque<int32_t> history;
        for (int step = 0; step < 12; ++step) {
            const int32_t got = s.sample(logits.data(), n_vocab);
            const int32_t want = reference_sample(p, history, rng, logits);
            CAPTURE(round);
            CAPTURE(step);
            REQUIRE(got == want);
            ++checked;
            if (p.temperature <= 0.0f &&
                std::count(logits.begin(), logits.end(), *std::max_element(logits.begin(), logits.end())) > 1)
                ++greedy_ties;
            s.accept(got);
            history.push_back(got);
            while (history.size() > static_cast<size_t>(p.repeat_last_n)) history.pop_front();
            logits[static_cast<size_t>(got)] += 0.5f;  // the next step's logits differ
        }
    }
    CHECK(checked == 3600);
    CHECK(greedy_ties > 0);  // the tie rule was exercised
}
