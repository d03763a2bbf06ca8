// Static memory planning: intermediate tensors of a graph share one buffer per backend,
// placed so that tensors whose lifetimes do not overlap reuse the same bytes.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace tessera {

// One tensor's memory need: `size` bytes live from step `first` (when it is written)
// through step `last` (its last reader), inclusive.
struct Lifetime {
    size_t size = 0;
    int first = 0;
    int last = 0;
    size_t offset = 0;  // the result
};

// Places every lifetime (first-fit over a free list, in order of `first`) and returns the
// peak bytes used. Two lifetimes get overlapping bytes only if their step ranges do not
// overlap. Offsets are multiples of `alignment`.
size_t plan_memory(std::span<Lifetime> items, size_t alignment);

}  // namespace tessera
