// Byte-level BPE tokenizer (GPT-2 style), trained and applied here.
//
// Ids 0..255 are the raw bytes, id 256 + k is the k-th learned merge (the
// concatenation of two earlier tokens), and the last id is the special
// <|endoftext|> token (eot_id) that prepare puts between documents. Text is first
// split into words by the GPT-2-like pre-tokenizer (pretokenizer.h); merges never
// cross words. Every byte string round-trips exactly: decode(encode(x)) == x.
// The literal text "<|endoftext|>" in the input is encoded as ordinary bytes.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data/bpe_merges.h"
#include "data/tokenizer.h"

namespace attn {

class BpeTokenizer final : public Tokenizer {
 public:
  static constexpr int kNumByteTokens = 256;
  static constexpr const char* kEndOfText = "<|endoftext|>";

  // merges[k] = (left id, right id) of token 256 + k; both must be < 256 + k.
  explicit BpeTokenizer(std::vector<std::pair<int32_t, int32_t>> merges);

  // Learns vocab_size - 257 merges on the words of `documents` (the most frequent
  // adjacent pair first; ties go to the smallest (left, right) pair of ids, so the
  // result is deterministic). Stops early, with a smaller vocabulary, only when no
  // adjacent pair is left to merge. vocab_size must be >= 257.
  static BpeTokenizer train(const std::vector<std::string_view>& documents, int vocab_size);

  std::string type() const override { return "bpe"; }
  int vocab_size() const override { return static_cast<int>(token_bytes_.size()) + 1; }
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int eot_id() const override { return static_cast<int>(token_bytes_.size()); }
  void save(const std::string& path) const override;

  const std::vector<std::pair<int32_t, int32_t>>& merges() const { return merges_; }
  // The bytes that token `id` stands for (throws on an id out of range).
  std::string_view token_bytes(int32_t id) const;

  // Builds from the parsed JSON of a tokenizer file; `path` names it in errors.
  static BpeTokenizer from_json_text(const std::string& json_text, const std::string& path);

 private:
  std::vector<std::pair<int32_t, int32_t>> merges_;
  std::vector<std::string> token_bytes_;  // bytes of ids 0 .. 255 + merges
  BpeMerges bpe_;                         // merge k: (left, right) -> 256 + k
};

}  // namespace attn
