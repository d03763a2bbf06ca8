// TESSERA_PROFILE=1: the time of every graph node, summed per kind of node (matrix products
// told apart by weight type and by one activation row, decoding, or more, prompts), one
// table per backend, printed to stderr when the process exits. Each backend measures its
// nodes its own way and says how in the table's title. TESSERA_PROFILE=graph: a backend
// that can times whole submissions instead, on the device and on the host, leaving the
// nodes to run as they do unprofiled (the gaps between them included).
// TESSERA_PROFILE=levels: a backend that runs independent nodes side by side between
// barriers times each such level instead, labelled with the kinds of node in it.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "tensor/tensor.h"

namespace tessera {

class NodeProfile {
public:
    // The table titled `title` ("CPU time", "GPU time"), or null when TESSERA_PROFILE is off.
    static NodeProfile* get(const std::string& title);
    void add(const Tensor& node, double ms);
    void add(const std::string& key, double ms);
    // The kind of node a row of the table sums: the op, and a product's weight type and shape.
    static std::string kind(const Tensor& node);
    // TESSERA_PROFILE=graph: whole submissions timed, not nodes.
    static bool whole_graphs();
    // TESSERA_PROFILE=levels: the spans between barriers timed, not nodes.
    static bool levels();
    // Time spent around the nodes (enqueuing them, say), shown in the title line.
    void add_overhead(double ms);

private:
    friend struct ProfileTables;
    struct Entry {
        double ms = 0;
        long long calls = 0;
    };
    void print(const std::string& title);
    std::mutex mu_;
    std::map<std::string, Entry> by_kind_;
    double overhead_ms_ = 0;
};

}  // namespace tessera
