// Byte-pair merge application with a per-thread word cache (see bpe_merges.h).
#include "data/bpe_merges.h"

#include <atomic>
#include <functional>
#include <queue>
#include <string>

namespace attn {

namespace {

constexpr uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// Words up to this length are cached; the cache is emptied when it holds this many words
// (a few MB per thread: frequent words come back within a few thousand words).
constexpr size_t kMaxCachedWordBytes = 64;
constexpr size_t kMaxCachedWords = size_t{1} << 16;

uint64_t next_instance_id() {
  static std::atomic<uint64_t> counter{1};
  return counter++;
}

// One thread's cache: word -> [begin, end) in a flat token array. It belongs to one
// BpeMerges instance at a time (instance ids are never reused).
struct WordCache {
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  uint64_t owner = 0;
  std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, Hash, std::equal_to<>> words;
  std::vector<int32_t> tokens;

  void reset(uint64_t new_owner) {
    owner = new_owner;
    words.clear();
    tokens.clear();
  }
};

}  // namespace

BpeMerges::BpeMerges() : instance_id_(next_instance_id()) {
  for (int b = 0; b < 256; ++b) byte_id_[b] = b;
}

// A copy is a new instance: the caches of the original never answer for it.
BpeMerges::BpeMerges(const BpeMerges& o)
    : byte_id_(o.byte_id_), merge_of_pair_(o.merge_of_pair_), instance_id_(next_instance_id()) {}

BpeMerges& BpeMerges::operator=(const BpeMerges& o) {
  byte_id_ = o.byte_id_;
  merge_of_pair_ = o.merge_of_pair_;
  instance_id_ = next_instance_id();
  return *this;
}

bool BpeMerges::add(int32_t left, int32_t right, int32_t merged) {
  const auto rank = static_cast<int32_t>(merge_of_pair_.size());
  return merge_of_pair_.emplace(pair_key(left, right), Merge{rank, merged}).second;
}

const BpeMerges::Merge* BpeMerges::find(int32_t left, int32_t right) const {
  const auto it = merge_of_pair_.find(pair_key(left, right));
  return it == merge_of_pair_.end() ? nullptr : &it->second;
}

void BpeMerges::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  const int n = static_cast<int>(word.size());
  if (n == 1) {
    out.push_back(byte_id_[static_cast<unsigned char>(word[0])]);
    return;
  }
  struct Symbol {
    int32_t id;
    int prev, next;  // -1 at the ends; id -1: merged into its left neighbour
  };
  std::vector<Symbol> sym(n);
  for (int i = 0; i < n; ++i) sym[i] = {byte_id_[static_cast<unsigned char>(word[i])], i - 1, i + 1 < n ? i + 1 : -1};
  using Candidate = std::pair<int32_t, int>;  // (rank, position of the left symbol)
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto consider = [&](int pos) {
    if (pos < 0 || sym[pos].next < 0) return;
    if (const Merge* m = find(sym[pos].id, sym[sym[pos].next].id)) heap.push({m->rank, pos});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const auto [rank, pos] = heap.top();
    heap.pop();
    if (sym[pos].id < 0 || sym[pos].next < 0) continue;  // merged away
    const int nxt = sym[pos].next;
    const Merge* m = find(sym[pos].id, sym[nxt].id);
    if (!m || m->rank != rank) continue;  // the pair changed since it was queued
    sym[pos].id = m->merged;
    sym[pos].next = sym[nxt].next;
    if (sym[nxt].next >= 0) sym[sym[nxt].next].prev = pos;
    sym[nxt].id = -1;
    consider(sym[pos].prev);
    consider(pos);
  }
  for (int i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

void BpeMerges::encode_cached(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() > kMaxCachedWordBytes) return encode_word(word, out);
  thread_local WordCache cache;
  if (cache.owner != instance_id_) cache.reset(instance_id_);
  if (const auto it = cache.words.find(word); it != cache.words.end()) {
    out.insert(out.end(), cache.tokens.begin() + it->second.first, cache.tokens.begin() + it->second.second);
    return;
  }
  const size_t first = out.size();
  encode_word(word, out);
  if (cache.words.size() >= kMaxCachedWords) cache.reset(instance_id_);
  const auto begin = static_cast<uint32_t>(cache.tokens.size());
  cache.tokens.insert(cache.tokens.end(), out.begin() + static_cast<ptrdiff_t>(first), out.end());
  cache.words.emplace(std::string(word), std::make_pair(begin, static_cast<uint32_t>(cache.tokens.size())));
}

}  // namespace attn
