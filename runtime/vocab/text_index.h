// Hash indexes for the tokenizers' look-ups: token text -> id (open addressing over
// string_views into storage the owner keeps alive) and a pair of ids -> value (BPE merges).
// Look-ups never allocate or throw.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace tessera::vocab {

inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

inline uint64_t hash_bytes(const char* p, size_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * 0x100000001b3ULL);
    while (n >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        h = (h ^ mix64(w)) * 0x9fb21c651e98df25ULL;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (n) std::memcpy(&w, p, n);
    return mix64(h ^ w ^ (static_cast<uint64_t>(n) << 59));
}

class TextIndex {
public:
    // Sizes the table for about `n` keys (optional; insert grows it).
    void reserve(size_t n) {
        size_t cap = 16;
        while (cap < n * 2) cap <<= 1;
        if (cap > slots_.size()) rehash(cap);
    }

    // Adds key -> id. With `replace`, a key already present takes the new id; otherwise
    // the first id stays. The key's bytes must outlive the index.
    void insert(std::string_view key, int32_t id, bool replace) {
        if ((count_ + 1) * 2 > slots_.size()) rehash(slots_.empty() ? 16 : slots_.size() * 2);
        const uint64_t h = hash_bytes(key.data(), key.size());
        size_t i = h & (slots_.size() - 1);
        while (slots_[i].id >= 0) {
            Slot& s = slots_[i];
            if (s.hash == h && s.len == key.size() &&
                (key.empty() || std::memcmp(s.data, key.data(), key.size()) == 0)) {
                if (replace) s.id = id;
                return;
            }
            i = (i + 1) & (slots_.size() - 1);
        }
        slots_[i] = Slot{h, key.data(), static_cast<uint32_t>(key.size()), id};
        ++count_;
    }

    // The id of `key`, or -1.
    int32_t find(const char* data, size_t len) const {
        if (slots_.empty()) return -1;
        const uint64_t h = hash_bytes(data, len);
        size_t i = h & (slots_.size() - 1);
        while (slots_[i].id >= 0) {
            const Slot& s = slots_[i];
            if (s.hash == h && s.len == len && (len == 0 || std::memcmp(s.data, data, len) == 0)) return s.id;
            i = (i + 1) & (slots_.size() - 1);
        }
        return -1;
    }
    int32_t find(std::string_view key) const { return find(key.data(), key.size()); }
    size_t size() const { return count_; }

private:
    struct Slot {
        uint64_t hash = 0;
        const char* data = nullptr;
        uint32_t len = 0;
        int32_t id = -1;
    };
    void rehash(size_t cap) {
        std::vector<Slot> old;
        old.swap(slots_);
        slots_.assign(cap, Slot{});
        for (const Slot& s : old) {
            if (s.id < 0) continue;
            size_t i = s.hash & (cap - 1);
            while (slots_[i].id >= 0) i = (i + 1) & (cap - 1);
            slots_[i] = s;
        }
    }
    std::vector<Slot> slots_;
    size_t count_ = 0;
};

// (left id, right id) -> a 64-bit value.
class PairIndex {
public:
    void reserve(size_t n) {
        size_t cap = 16;
        while (cap < n * 2) cap <<= 1;
        keys_.assign(cap, kEmpty);
        values_.assign(cap, 0);
        count_ = 0;
    }
    // Adds the pair unless present; returns false when it was already there.
    bool insert(int32_t left, int32_t right, uint64_t value) {
        if ((count_ + 1) * 2 > keys_.size()) grow();
        const uint64_t key = pack(left, right);
        size_t i = mix64(key) & (keys_.size() - 1);
        while (keys_[i] != kEmpty) {
            if (keys_[i] == key) return false;
            i = (i + 1) & (keys_.size() - 1);
        }
        keys_[i] = key;
        values_[i] = value;
        ++count_;
        return true;
    }
    // The value of the pair, or nullptr.
    const uint64_t* find(int32_t left, int32_t right) const {
        if (keys_.empty()) return nullptr;
        const uint64_t key = pack(left, right);
        size_t i = mix64(key) & (keys_.size() - 1);
        while (keys_[i] != kEmpty) {
            if (keys_[i] == key) return &values_[i];
            i = (i + 1) & (keys_.size() - 1);
        }
        return nullptr;
    }

private:
    static constexpr uint64_t kEmpty = ~0ULL;
    static uint64_t pack(int32_t l, int32_t r) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
    }
    void grow() {
        std::vector<uint64_t> k;
        std::vector<uint64_t> v;
        k.swap(keys_);
        v.swap(values_);
        const size_t cap = k.empty() ? 16 : k.size() * 2;
        keys_.assign(cap, kEmpty);
        values_.assign(cap, 0);
        count_ = 0;
        for (size_t i = 0; i < k.size(); ++i)
            if (k[i] != kEmpty)
                insert(static_cast<int32_t>(k[i] >> 32), static_cast<int32_t>(k[i] & 0xffffffffu), v[i]);
    }
    std::vector<uint64_t> keys_;
    std::vector<uint64_t> values_;
    size_t count_ = 0;
};

// A set of (a, b) pairs of 32-bit values.
class PairSet {
public:
    void insert(uint32_t a, uint32_t b) {
        if ((count_ + 1) * 2 > keys_.size()) grow();
        const uint64_t key = (static_cast<uint64_t>(a) << 32) | b;
        size_t i = mix64(key) & (keys_.size() - 1);
        while (keys_[i] != kEmpty) {
            if (keys_[i] == key) return;
            i = (i + 1) & (keys_.size() - 1);
        }
        keys_[i] = key;
        ++count_;
    }
    bool contains(uint32_t a, uint32_t b) const {
        if (keys_.empty()) return false;
        const uint64_t key = (static_cast<uint64_t>(a) << 32) | b;
        size_t i = mix64(key) & (keys_.size() - 1);
        while (keys_[i] != kEmpty) {
            if (keys_[i] == key) return true;
            i = (i + 1) & (keys_.size() - 1);
        }
        return false;
    }
    size_t size() const { return count_; }

private:
    static constexpr uint64_t kEmpty = ~0ULL;
    void grow() {
        std::vector<uint64_t> old;
        old.swap(keys_);
        keys_.assign(old.empty() ? 16 : old.size() * 2, kEmpty);
        count_ = 0;
        for (uint64_t k : old)
            if (k != kEmpty) insert(static_cast<uint32_t>(k >> 32), static_cast<uint32_t>(k & 0xffffffffu));
    }
    std::vector<uint64_t> keys_;
    size_t count_ = 0;
};

}  // namespace tessera::vocab
