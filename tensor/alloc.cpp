// The liveness-based planner: a sweep over steps with a first-fit free list.
#include "tensor/alloc.h"

#include <algorithm>
#include <numeric>

namespace tessera {

namespace {

struct Block {
    size_t offset;
    size_t size;
};

// Free ranges sorted by offset, merged when adjacent; `top` is the end of used space.
class FreeList {
public:
    size_t take(size_t size) {
        for (size_t i = 0; i < free_.size(); ++i) {
            if (free_[i].size < size) continue;
            size_t at = free_[i].offset;
            free_[i].offset += size;
            free_[i].size -= size;
            if (free_[i].size == 0) free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
            return at;
        }
        // Grow: a free block that ends at the top can be extended instead of skipped.
        if (!free_.empty() && free_.back().offset + free_.back().size == top_) {
            size_t at = free_.back().offset;
            top_ = at + size;
            free_.pop_back();
            return at;
        }
        size_t at = top_;
        top_ += size;
        return at;
    }

    void give_back(size_t offset, size_t size) {
        auto it = std::lower_bound(free_.begin(), free_.end(), offset,
                                   [](const Block& b, size_t off) { return b.offset < off; });
        it = free_.insert(it, Block{offset, size});
        // Merge with the next and the previous block.
        auto next = it + 1;
        if (next != free_.end() && it->offset + it->size == next->offset) {
            it->size += next->size;
            free_.erase(next);
        }
        if (it != free_.begin()) {
            auto prev = it - 1;
            if (prev->offset + prev->size == it->offset) {
                prev->size += it->size;
                free_.erase(it);
            }
        }
    }

    size_t top() const { return top_; }

private:
    std::vector<Block> free_;
    size_t top_ = 0;
};

}  // namespace

size_t plan_memory(std::span<Lifetime> items, size_t alignment) {
    std::vector<size_t> by_first(items.size()), by_last(items.size());
    std::iota(by_first.begin(), by_first.end(), 0);
    std::iota(by_last.begin(), by_last.end(), 0);
    std::stable_sort(by_first.begin(), by_first.end(), [&](size_t a, size_t b) { return items[a].first < items[b].first; });
    std::stable_sort(by_last.begin(), by_last.end(), [&](size_t a, size_t b) { return items[a].last < items[b].last; });

    FreeList list;
    size_t peak = 0;
    size_t fi = 0, li = 0;
    // At each step: place what starts there, then release what ends there, so a tensor
    // never shares bytes with the inputs of the step that writes it.
    while (fi < by_first.size()) {
        int step = items[by_first[fi]].first;
        while (li < by_last.size() && items[by_last[li]].last < step) {
            Lifetime& l = items[by_last[li++]];
            list.give_back(l.offset, (l.size + alignment - 1) / alignment * alignment);
        }
        while (fi < by_first.size() && items[by_first[fi]].first == step) {
            Lifetime& l = items[by_first[fi++]];
            l.offset = list.take((l.size + alignment - 1) / alignment * alignment);
            peak = std::max(peak, list.top());
        }
    }
    return peak;
}

}  // namespace tessera
