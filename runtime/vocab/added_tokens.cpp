// Added tokens in raw text: a byte trie of their texts and the longest-first resolution of
// overlapping occurrences (see added_tokens.h).
#include "runtime/vocab/added_tokens.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace tessera::vocab {

namespace {

// C's isspace in the "C" locale: what the reference strips beside a token.
bool is_ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// Occurrences held before resolving a group that never ends (megabytes of one character
// that is an added token's): past this, the group is resolved where it stands.
constexpr size_t kMaxGroup = size_t{1} << 20;

}  // namespace

AddedTokens::AddedTokens() : nodes_(1) {
    std::fill(std::begin(root_any_), std::end(root_any_), -1);
    std::fill(std::begin(root_plain_), std::end(root_plain_), -1);
}

void AddedTokens::add(std::string_view text, int32_t id, bool plain, uint8_t strip) {
    if (text.empty() || id < 0) return;
    int32_t node = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        const uint8_t b = static_cast<uint8_t>(text[i]);
        if (plain) nodes_[static_cast<size_t>(node)].plain_below = true;
        int32_t next = child(node, b);
        if (next < 0) {
            next = static_cast<int32_t>(nodes_.size());
            nodes_.emplace_back();
            edges_.insert(node, b, static_cast<uint64_t>(next));
            Node& parent = nodes_[static_cast<size_t>(node)];
            if (parent.children == 0) parent.only_child = next, parent.only_byte = b;
            if (parent.children < INT16_MAX) ++parent.children;
            nodes_[static_cast<size_t>(next)].byte_run =
                node == 0 || (parent.byte_run && static_cast<uint8_t>(text[0]) == b);
        }
        if (node == 0) {
            root_any_[b] = next;
            if (plain) root_plain_[b] = next;
        }
        node = next;
    }
    Node& end = nodes_[static_cast<size_t>(node)];
    // Of several tokens with one text the lowest id wins, as it comes first among equals.
    if (end.any_id < 0 || id < end.any_id) end.any_id = id;
    if (plain && (end.plain_id < 0 || id < end.plain_id)) end.plain_id = id;
    if (strip != kStripNone) {
        if (strip_.size() <= static_cast<size_t>(id)) strip_.resize(static_cast<size_t>(id) + 1, kStripNone);
        strip_[static_cast<size_t>(id)] = strip;
        any_left_strip_ |= (strip & kStripLeft) != 0;
    }
}

// The state of one split() call.
class AddedTokens::Splitter {
public:
    Splitter(const AddedTokens& tokens, std::string_view text, bool parse_special)
        : t_(tokens), text_(text), parse_special_(parse_special) {}

    void run(std::vector<Fragment>& out) {
        const size_t n = text_.size();
        const char* const data = text_.data();
        const bool special = parse_special_;
        const int32_t* const root = special ? t_.root_any_ : t_.root_plain_;
        const Node* const nodes = t_.nodes_.data();
        size_t reach = 0;  // where the current group's occurrences (and what they strip) end
        for (size_t p = 0; p < n; ++p) {
            int32_t node = root[static_cast<uint8_t>(data[p])];
            if (node < 0) continue;  // most bytes start no added token
            // Settling a group later than it could be is always exact (a bigger group);
            // settling it before its last overlap would not be.
            if (!group_.empty() && ((p >= reach && can_cut_at(p)) || group_.size() >= kMaxGroup)) resolve_group();
            size_t q = p;
            while (node >= 0) {
                const Node& nd = nodes[node];
                const int32_t id = special ? nd.any_id : nd.plain_id;
                ++q;  // [p, q) is the text of this node
                if (id >= 0) {
                    const uint8_t strip = t_.strip_of(id);
                    if (group_.empty()) group_byte_ = data[p], group_is_run_ = true;
                    group_is_run_ &= nd.byte_run && data[p] == group_byte_ && strip == kStripNone;
                    group_.push_back(Match{p, static_cast<uint32_t>(q - p), id});
                    reach = std::max(reach, (strip & kStripRight) ? space_run_end(q) : q);
                }
                if (q == n || (!special && !nd.plain_below)) break;
                node = t_.child(node, static_cast<uint8_t>(data[q]));
            }
        }
        if (!group_.empty()) resolve_group();
        emit(out);
    }

private:
    // Whether the occurrences before p can be settled without those from p on: with
    // left-stripping tokens, not inside a run of whitespace that one of them could take.
    bool can_cut_at(size_t p) const { return !t_.any_left_strip_ || !is_ascii_space(text_[p - 1]); }

    // The end of the run of whitespace that starts at q.
    size_t space_run_end(size_t q) {
        if (q >= run_begin_ && q < run_end_) return run_end_;
        run_begin_ = q;
        run_end_ = q;
        while (run_end_ < text_.size() && is_ascii_space(text_[run_end_])) ++run_end_;
        return run_end_;
    }

    bool is_free(const Match& m) const {
        // Taken bytes come from tokens at least as long as m (the resolution order), and
        // such a token overlaps m only by covering one of m's ends; stripped whitespace
        // may sit anywhere inside m.
        if (stripped_any_) {
            for (size_t i = m.pos; i < m.pos + m.len; ++i)
                if (state_[i] != kFree) return false;
            return true;
        }
        return state_[m.pos] == kFree && state_[m.pos + m.len - 1] == kFree;
    }

    void resolve_group() {
        if (state_.empty()) state_.assign(text_.size(), kFree);
        if (group_is_run_) {
            resolve_run();
            return;
        }
        sort_small(group_.begin(), group_.end(), [](const Match& a, const Match& b) {
            if (a.len != b.len) return a.len > b.len;
            if (a.id != b.id) return a.id < b.id;
            return a.pos < b.pos;
        });
        const size_t accepted_before = accepted_.size();
        for (const Match& m : group_) {
            if (!is_free(m)) continue;
            std::fill(state_.begin() + m.pos, state_.begin() + m.pos + m.len, kTaken);
            accepted_.push_back(m);
            const uint8_t strip = t_.strip_of(m.id);
            if (strip & kStripLeft) {
                for (size_t i = m.pos; i > 0 && state_[i - 1] == kFree && is_ascii_space(text_[i - 1]); --i) {
                    state_[i - 1] = kStripped;
                    stripped_any_ = true;
                }
            }
            if (strip & kStripRight) {
                for (size_t i = m.pos + m.len; i < text_.size() && state_[i] == kFree && is_ascii_space(text_[i]);
                     ++i) {
                    state_[i] = kStripped;
                    stripped_any_ = true;
                }
            }
        }
        group_.clear();
        // Groups come in text order, so sorting each group's tokens sorts them all.
        sort_small(accepted_.begin() + static_cast<ptrdiff_t>(accepted_before), accepted_.end(),
                   [](const Match& a, const Match& b) { return a.pos < b.pos; });
    }

    // A group of tokens that are all runs of one byte (Gemma's and GPT-NeoX's runs of
    // spaces, tabs, newlines) inside one run of that byte in the text: the longest token
    // at the run's start, then again from where it ends, is what the longest-first order
    // gives there, without sorting. The occurrences come in text order, the longest last
    // at each position.
    void resolve_run() {
        size_t cursor = 0;
        for (size_t i = 0; i < group_.size(); ++i) {
            const Match& m = group_[i];
            if (i + 1 < group_.size() && group_[i + 1].pos == m.pos) continue;  // a longer one follows
            if (m.pos < cursor || !is_free(m)) continue;
            std::fill(state_.begin() + static_cast<ptrdiff_t>(m.pos),
                      state_.begin() + static_cast<ptrdiff_t>(m.pos + m.len), kTaken);
            accepted_.push_back(m);
            cursor = m.pos + m.len;
        }
        group_.clear();
    }

    // Insertion sort below 32 elements (most groups are one token or a short run of
    // whitespace), std::sort above.
    template <typename It, typename Less>
    static void sort_small(It begin, It end, Less less) {
        if (end - begin > 32) {
            std::sort(begin, end, less);
            return;
        }
        for (It i = begin + (begin != end); i < end; ++i) {
            const Match m = *i;
            It j = i;
            for (; j != begin && less(m, *(j - 1)); --j) *j = *(j - 1);
            *j = m;
        }
    }

    void emit(std::vector<Fragment>& out) {
        auto raw = [&](size_t b, size_t e) {
            // Stripped whitespace sits only right beside a token: trim it off both ends.
            while (b < e && state_[b] == kStripped) ++b;
            while (e > b && state_[e - 1] == kStripped) --e;
            if (b < e) out.push_back(Fragment{b, e, -1});
        };
        size_t cursor = 0;
        for (const Match& m : accepted_) {
            raw(cursor, m.pos);
            out.push_back(Fragment{m.pos, m.pos + m.len, m.id});
            cursor = m.pos + m.len;
        }
        if (accepted_.empty()) {
            if (!text_.empty()) out.push_back(Fragment{0, text_.size(), -1});
        } else {
            raw(cursor, text_.size());
        }
    }

    enum : uint8_t { kFree = 0, kTaken = 1, kStripped = 2 };

    const AddedTokens& t_;
    std::string_view text_;
    bool parse_special_;
    std::vector<Match> group_;     // unresolved occurrences that overlap one another
    char group_byte_ = 0;          // the first byte of the group's first occurrence
    bool group_is_run_ = false;    // every occurrence is a run of group_byte_, stripping nothing
    std::vector<Match> accepted_;  // tokens taken, in text order
    std::vector<uint8_t> state_;   // per byte of text: free, taken by a token, stripped
    bool stripped_any_ = false;
    size_t run_begin_ = 0, run_end_ = 0;
};

void AddedTokens::split(std::string_view text, bool parse_special, std::vector<Fragment>& out) const {
    out.clear();
    if (empty() || text.empty()) {
        if (!text.empty()) out.push_back(Fragment{0, text.size(), -1});
        return;
    }
    Splitter(*this, text, parse_special).run(out);
}

}  // namespace tessera::vocab
