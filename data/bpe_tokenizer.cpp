// Byte-level BPE: training (on unique words with incremental pair counts),
// encoding (lowest-rank merge first, with a per-word cache), decoding, and JSON I/O.
#include "data/bpe_tokenizer.h"

#include <algorithm>
#include <optional>
#include <queue>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/file_io.h"
#include "data/pretokenizer.h"

namespace attn {

namespace {

constexpr uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
constexpr int32_t key_left(uint64_t key) { return static_cast<int32_t>(key >> 32); }
constexpr int32_t key_right(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

// ---- training state ----------------------------------------------------------
struct TrainWord {
  std::vector<int32_t> symbols;
  int64_t count = 0;
};

struct HeapEntry {
  int64_t count;
  uint64_t key;
  // priority_queue pops the "largest": highest count, then the smallest pair key.
  bool operator<(const HeapEntry& o) const { return count != o.count ? count < o.count : key > o.key; }
};

class PairCounts {
 public:
  void add(uint64_t key, int64_t delta) {
    counts_[key] += delta;
    changed_.push_back(key);
  }
  int64_t get(uint64_t key) const {
    auto it = counts_.find(key);
    return it == counts_.end() ? 0 : it->second;
  }
  void erase(uint64_t key) { counts_.erase(key); }
  // Pushes the current count of every pair changed since the last call.
  void push_changed(std::priority_queue<HeapEntry>& heap) {
    std::sort(changed_.begin(), changed_.end());
    changed_.erase(std::unique(changed_.begin(), changed_.end()), changed_.end());
    for (uint64_t key : changed_) {
      const int64_t c = get(key);
      if (c > 0) heap.push({c, key});
    }
    changed_.clear();
  }

 private:
  std::unordered_map<uint64_t, int64_t> counts_;
  std::vector<uint64_t> changed_;
};

// Replaces every (left, right) in word w by `merged`, left to right, updating the
// global pair counts locally (only the pairs next to each merge change) and
// recording w as a holder of each newly created pair.
void merge_in_word(TrainWord& word, int32_t w, int32_t left, int32_t right, int32_t merged,
                   PairCounts& counts, std::unordered_map<uint64_t, std::vector<int32_t>>& words_with_pair) {
  std::vector<int32_t>& s = word.symbols;
  const size_t n = s.size();
  const int64_t c = word.count;
  auto is_occurrence = [&](size_t i) { return i + 1 < n && s[i] == left && s[i + 1] == right; };
  auto created = [&](int32_t a, int32_t b) {
    counts.add(pair_key(a, b), c);
    words_with_pair[pair_key(a, b)].push_back(w);
  };
  std::vector<int32_t> out;
  out.reserve(n);
  bool previous_was_merge = false;
  size_t i = 0;
  while (i < n) {
    if (!is_occurrence(i)) {
      out.push_back(s[i]);
      previous_was_merge = false;
      ++i;
      continue;
    }
    counts.add(pair_key(left, right), -c);
    if (i > 0) {
      if (previous_was_merge) {
        created(merged, merged);  // the old (right, left) between the merges was removed below
      } else {
        counts.add(pair_key(s[i - 1], left), -c);
        created(out.back(), merged);
      }
    }
    if (i + 2 < n) {
      counts.add(pair_key(right, s[i + 2]), -c);
      if (!is_occurrence(i + 2)) created(merged, s[i + 2]);
    }
    out.push_back(merged);
    previous_was_merge = true;
    i += 2;
  }
  s = std::move(out);
}

}  // namespace

// ---- construction ---------------------------------------------------------------
BpeTokenizer::BpeTokenizer(std::vector<std::pair<int32_t, int32_t>> merges) : merges_(std::move(merges)) {
  token_bytes_.reserve(kNumByteTokens + merges_.size());
  for (int b = 0; b < kNumByteTokens; ++b) token_bytes_.emplace_back(1, static_cast<char>(b));
  for (size_t k = 0; k < merges_.size(); ++k) {
    const auto [a, b] = merges_[k];
    const int32_t next_id = static_cast<int32_t>(kNumByteTokens + k);
    ATTN_CHECK(a >= 0 && b >= 0 && a < next_id && b < next_id,
               "bpe tokenizer: merge {} ({}, {}) refers to a token that does not exist yet", k, a, b);
    ATTN_CHECK(bpe_.add(a, b, next_id),
               "bpe tokenizer: merge {} ({}, {}) is a duplicate", k, a, b);
    token_bytes_.push_back(token_bytes_[a] + token_bytes_[b]);
  }
}

// ---- training --------------------------------------------------------------------
BpeTokenizer BpeTokenizer::train(const std::vector<std::string_view>& documents, int vocab_size) {
  ATTN_CHECK(vocab_size >= kNumByteTokens + 1,
             "bpe tokenizer: vocab_size {} is too small (256 byte tokens + <|endoftext|> need at least 257)",
             vocab_size);
  const size_t num_merges = static_cast<size_t>(vocab_size - kNumByteTokens - 1);

  // 1. Unique words with their frequencies.
  std::unordered_map<std::string_view, int64_t> word_freq;
  for (std::string_view doc : documents) for_each_word(doc, [&](std::string_view w) { ++word_freq[w]; });
  std::vector<TrainWord> words;
  words.reserve(word_freq.size());
  for (const auto& [text, count] : word_freq) {
    if (text.size() < 2) continue;  // a single byte has no pair to merge
    TrainWord tw;
    tw.symbols.assign(reinterpret_cast<const unsigned char*>(text.data()),
                      reinterpret_cast<const unsigned char*>(text.data()) + text.size());
    tw.count = count;
    words.push_back(std::move(tw));
  }
  word_freq.clear();

  // 2. Initial pair counts and, for each pair, the words that hold it.
  PairCounts counts;
  std::unordered_map<uint64_t, std::vector<int32_t>> words_with_pair;
  for (size_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t key = pair_key(s[i], s[i + 1]);
      counts.add(key, words[w].count);
      words_with_pair[key].push_back(static_cast<int32_t>(w));
    }
  }
  std::priority_queue<HeapEntry> heap;
  counts.push_changed(heap);

  // 3. Merge the best pair, update the counts of the words that held it, repeat.
  std::vector<std::pair<int32_t, int32_t>> merges;
  merges.reserve(num_merges);
  std::vector<int32_t> last_visit(words.size(), -1);
  while (merges.size() < num_merges && !heap.empty()) {
    const HeapEntry top = heap.top();
    heap.pop();
    if (counts.get(top.key) != top.count) continue;  // stale entry
    const int32_t left = key_left(top.key), right = key_right(top.key);
    const int32_t merged = static_cast<int32_t>(kNumByteTokens + merges.size());
    merges.emplace_back(left, right);

    auto holders_it = words_with_pair.find(top.key);
    std::vector<int32_t> holders = std::move(holders_it->second);
    words_with_pair.erase(holders_it);
    for (int32_t w : holders) {
      if (last_visit[w] == merged) continue;  // a word listed twice
      last_visit[w] = merged;
      merge_in_word(words[w], w, left, right, merged, counts, words_with_pair);
    }
    counts.erase(top.key);
    counts.push_changed(heap);
  }
  return BpeTokenizer(std::move(merges));
}

// ---- encoding ----------------------------------------------------------------------
std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 16);
  for_each_word(text, [&](std::string_view word) { bpe_.encode_cached(word, ids); });
  return ids;
}

// ---- decoding ----------------------------------------------------------------------
std::string_view BpeTokenizer::token_bytes(int32_t id) const {
  if (id == eot_id()) return kEndOfText;
  ATTN_CHECK(id >= 0 && id < vocab_size(), "bpe tokenizer: token id {} is out of range [0, {})", id,
             vocab_size());
  return token_bytes_[id];
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::string text;
  text.reserve(ids.size() * 4);
  for (int32_t id : ids) text += token_bytes(id);
  return text;
}

// ---- JSON ------------------------------------------------------------------------------
void BpeTokenizer::save(const std::string& path) const {
  nlohmann::json j;
  j["type"] = "bpe";
  j["version"] = 1;
  j["vocab_size"] = vocab_size();
  j["eot_id"] = eot_id();
  j["special_tokens"] = {{kEndOfText, eot_id()}};
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& [a, b] : merges_) merges.push_back({a, b});
  j["merges"] = std::move(merges);
  write_file_atomic(path, j.dump(1) + "\n", "tokenizer");
}

BpeTokenizer BpeTokenizer::from_json_text(const std::string& json_text, const std::string& path) {
  try {
    const nlohmann::json j = nlohmann::json::parse(json_text);
    const auto& jm = j.at("merges");
    ATTN_CHECK(jm.is_array(), "tokenizer {}: \"merges\" must be an array", path);
    std::vector<std::pair<int32_t, int32_t>> merges;
    merges.reserve(jm.size());
    for (const auto& m : jm) {
      ATTN_CHECK(m.is_array() && m.size() == 2 && m[0].is_number_integer() && m[1].is_number_integer(),
                 "tokenizer {}: merge {} is not a pair of token ids", path, merges.size());
      merges.emplace_back(m[0].get<int32_t>(), m[1].get<int32_t>());
    }
    std::optional<BpeTokenizer> tok;
    try {
      tok.emplace(std::move(merges));
    } catch (const Error& e) {
      fail("tokenizer {}: {}", path, e.what());
    }
    if (j.contains("vocab_size"))
      ATTN_CHECK(j["vocab_size"].get<int>() == tok->vocab_size(),
                 "tokenizer {}: vocab_size {} does not match its {} merges (expected {})", path,
                 j["vocab_size"].get<int>(), tok->merges().size(), tok->vocab_size());
    return std::move(*tok);
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer {}: invalid bpe tokenizer JSON ({})", path, e.what());
  }
}

}  // namespace attn
