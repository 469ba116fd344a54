// Byte-pair merges applied to one word: the encoding step shared by our BPE tokenizer
// (bpe_tokenizer.h) and GPT-2's (gpt2_tokenizer.h).
//
// A word starts as one token per byte (byte_id[b]); then, repeatedly, the adjacent pair
// with the lowest merge rank is replaced by its merged token, leftmost occurrence first,
// until no adjacent pair has a rank. This is GPT-2's bpe() and HF tokenizers' BPE
// (a heap of (rank, position) candidates, O(n log n) per word of n bytes).
//
// encode_cached() remembers the ids of words up to kMaxCachedWordBytes in a per-thread
// cache (no lock: every encoding thread has its own), emptied when it grows too large.
#pragma once
#include <array>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace attn {

class BpeMerges {
 public:
  BpeMerges();
  BpeMerges(const BpeMerges& other);
  BpeMerges& operator=(const BpeMerges& other);

  // The token of byte b before any merge.
  void set_byte_id(unsigned char b, int32_t id) { byte_id_[b] = id; }
  // Adds the merge (left, right) -> merged with the next rank (ranks count from 0).
  // Returns false (and adds nothing) if the pair already has a merge.
  bool add(int32_t left, int32_t right, int32_t merged);
  size_t size() const { return merge_of_pair_.size(); }

  // Appends the tokens of `word` to out.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  // The same, through this thread's cache of recent words.
  void encode_cached(std::string_view word, std::vector<int32_t>& out) const;

 private:
  struct Merge {
    int32_t rank, merged;
  };
  const Merge* find(int32_t left, int32_t right) const;

  std::array<int32_t, 256> byte_id_{};
  std::unordered_map<uint64_t, Merge> merge_of_pair_;  // (left << 32 | right) -> merge
  uint64_t instance_id_;  // tells this thread's cache whose words it holds
};

}  // namespace attn
