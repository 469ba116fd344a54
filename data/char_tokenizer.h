// Character-level tokenizer over Unicode code points (nanoGPT's shakespeare_char).
//
// The vocabulary is the sorted set of code points seen in the training text; id i
// is the i-th smallest. There are no special tokens (eot_id() == -1), so a single
// file tokenizes exactly as nanoGPT does (tiny shakespeare: 65 characters). Bytes
// that are not valid UTF-8 become their own symbols (0xDC00 + byte, see utf8.h),
// so the round trip is exact on arbitrary bytes. Encoding a character that is not
// in the vocabulary throws attn::Error naming it (U+XXXX) and its byte offset.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/tokenizer.h"

namespace attn {

class CharTokenizer final : public Tokenizer {
 public:
  // code_points: the vocabulary; sorted and de-duplicated here.
  explicit CharTokenizer(std::vector<char32_t> code_points);

  static CharTokenizer train(const std::vector<std::string_view>& documents);

  std::string type() const override { return "char"; }
  int vocab_size() const override { return static_cast<int>(code_points_.size()); }
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int eot_id() const override { return -1; }
  void save(const std::string& path) const override;

  const std::vector<char32_t>& code_points() const { return code_points_; }

  static CharTokenizer from_json_text(const std::string& json_text, const std::string& path);

 private:
  int32_t id_of(char32_t cp) const;  // -1 when not in the vocabulary

  std::vector<char32_t> code_points_;
  std::array<int32_t, 128> ascii_ids_;  // fast path for ASCII, -1 when absent
  std::unordered_map<char32_t, int32_t> other_ids_;
};

// "U+00E9 'é'", or "byte 0xFF (invalid UTF-8)" for an escaped byte: for messages.
std::string describe_code_point(char32_t cp);

}  // namespace attn
