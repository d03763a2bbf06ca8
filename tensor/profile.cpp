// The per-backend node timing tables of TESSERA_PROFILE=1.
#include "tensor/profile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace tessera {

struct ProfileTables {
    std::mutex mu;
    std::map<std::string, std::unique_ptr<NodeProfile>> tables;

    static ProfileTables* get() {
        static ProfileTables* t = [] {
            const char* env = std::getenv("TESSERA_PROFILE");
            if (!env || !*env || std::strcmp(env, "0") == 0) return static_cast<ProfileTables*>(nullptr);
            auto* p = new ProfileTables;  // lives to the end of the process, for atexit
            std::atexit([] {
                ProfileTables* all = ProfileTables::get();
                std::lock_guard<std::mutex> lock(all->mu);
                for (auto& [title, table] : all->tables) table->print(title);
            });
            return p;
        }();
        return t;
    }
};

NodeProfile* NodeProfile::get(const std::string& title) {
    ProfileTables* all = ProfileTables::get();
    if (!all) return nullptr;
    std::lock_guard<std::mutex> lock(all->mu);
    auto& slot = all->tables[title];
    if (!slot) slot.reset(new NodeProfile);
    return slot.get();
}

void NodeProfile::add(const Tensor& node, double ms) { add(kind(node), ms); }

std::string NodeProfile::kind(const Tensor& node) {
    std::string key = op_name(node.op);
    if (node.op == Op::MulMat)
        key.append(" ")
            .append(type_name(node.src[0]->type))
            .append(node.src[1]->ne[1] == 1 ? " x1 " : " xN ")
            .append(std::to_string(node.src[0]->ne[1]))  // the weights' rows, of this many elements
            .append("x")
            .append(std::to_string(node.src[0]->ne[0]));
    return key;
}

void NodeProfile::add(const std::string& key, double ms) {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& e = by_kind_[key];
    e.ms += ms;
    ++e.calls;
}

bool NodeProfile::whole_graphs() {
    static const bool whole = [] {
        const char* env = std::getenv("TESSERA_PROFILE");
        return env && std::strcmp(env, "graph") == 0;
    }();
    return whole;
}

bool NodeProfile::levels() {
    static const bool on = [] {
        const char* env = std::getenv("TESSERA_PROFILE");
        return env && std::strcmp(env, "levels") == 0;
    }();
    return on;
}

void NodeProfile::add_overhead(double ms) {
    std::lock_guard<std::mutex> lock(mu_);
    overhead_ms_ += ms;
}

void NodeProfile::print(const std::string& title) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::pair<std::string, Entry>> rows(by_kind_.begin(), by_kind_.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
    double total = 0;
    for (const auto& r : rows) total += r.second.ms;
    std::fprintf(stderr, "\n%s per kind of node (TESSERA_PROFILE), %.1f ms in all", title.c_str(), total);
    if (overhead_ms_ > 0) std::fprintf(stderr, ", %.1f ms around them", overhead_ms_);
    // Long keys (a level's node kinds) go last, after the figures.
    size_t width = 0;
    for (const auto& r : rows) width = std::max(width, r.first.size());
    const bool last = width > 30;
    if (last)
        std::fprintf(stderr, ":\n  %10s %10s %7s %10s  %s\n", "calls", "ms", "%", "us/call", "nodes");
    else
        std::fprintf(stderr, ":\n  %-30s %10s %10s %7s %10s\n", "node", "calls", "ms", "%", "us/call");
    for (const auto& [key, e] : rows) {
        const double pct = total > 0 ? 100.0 * e.ms / total : 0.0, us = e.ms * 1e3 / static_cast<double>(e.calls);
        if (last)
            std::fprintf(stderr, "  %10lld %10.1f %6.1f%% %10.1f  %s\n", e.calls, e.ms, pct, us, key.c_str());
        else
            std::fprintf(stderr, "  %-30s %10lld %10.1f %6.1f%% %10.1f\n", key.c_str(), e.calls, e.ms, pct, us);
    }
}

}  // namespace tessera
