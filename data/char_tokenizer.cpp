// Character-level tokenizer: vocabulary = sorted code points of the training text.
#include "data/char_tokenizer.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/file_io.h"
#include "data/utf8.h"

namespace attn {

std::string describe_code_point(char32_t cp) {
  if (is_escaped_byte(cp)) return fmt::format("byte 0x{:02X} (invalid UTF-8)", static_cast<unsigned>(cp - kEscapeBase));
  std::string s = fmt::format("U+{:04X}", static_cast<uint32_t>(cp));
  if (cp >= 0x20 && cp != 0x7F && !(cp >= 0x80 && cp < 0xA0)) {
    s += " '";
    append_utf8(s, cp);
    s += "'";
  }
  return s;
}

CharTokenizer::CharTokenizer(std::vector<char32_t> code_points) : code_points_(std::move(code_points)) {
  std::sort(code_points_.begin(), code_points_.end());
  code_points_.erase(std::unique(code_points_.begin(), code_points_.end()), code_points_.end());
  ascii_ids_.fill(-1);
  for (size_t i = 0; i < code_points_.size(); ++i) {
    const char32_t cp = code_points_[i];
    ATTN_CHECK(cp <= 0x10FFFF, "char tokenizer: code point 0x{:X} is beyond U+10FFFF", static_cast<uint32_t>(cp));
    if (cp < 128) ascii_ids_[cp] = static_cast<int32_t>(i);
    else other_ids_.emplace(cp, static_cast<int32_t>(i));
  }
}

CharTokenizer CharTokenizer::train(const std::vector<std::string_view>& documents) {
  std::array<bool, 128> seen_ascii{};
  std::set<char32_t> seen_other;
  for (std::string_view doc : documents) {
    for (size_t i = 0; i < doc.size();) {
      char32_t cp;
      i += decode_utf8(doc, i, cp);
      if (cp < 128) seen_ascii[cp] = true;
      else seen_other.insert(cp);
    }
  }
  std::vector<char32_t> cps;
  for (char32_t c = 0; c < 128; ++c) if (seen_ascii[c]) cps.push_back(c);
  cps.insert(cps.end(), seen_other.begin(), seen_other.end());
  return CharTokenizer(std::move(cps));
}

int32_t CharTokenizer::id_of(char32_t cp) const {
  if (cp < 128) return ascii_ids_[cp];
  auto it = other_ids_.find(cp);
  return it == other_ids_.end() ? -1 : it->second;
}

std::vector<int32_t> CharTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    char32_t cp;
    const size_t len = decode_utf8(text, i, cp);
    const int32_t id = id_of(cp);
    if (id < 0)
      fail("char tokenizer: character {} at byte offset {} is not in the vocabulary ({} characters)",
           describe_code_point(cp), i, code_points_.size());
    ids.push_back(id);
    i += len;
  }
  return ids;
}

std::string CharTokenizer::decode(std::span<const int32_t> ids) const {
  std::string text;
  text.reserve(ids.size());
  for (int32_t id : ids) {
    ATTN_CHECK(id >= 0 && id < vocab_size(), "char tokenizer: token id {} is out of range [0, {})", id,
               vocab_size());
    append_utf8(text, code_points_[id]);
  }
  return text;
}

void CharTokenizer::save(const std::string& path) const {
  nlohmann::json j;
  j["type"] = "char";
  j["version"] = 1;
  j["vocab_size"] = vocab_size();
  j["eot_id"] = -1;
  j["code_points"] = std::vector<uint32_t>(code_points_.begin(), code_points_.end());
  write_file_atomic(path, j.dump() + "\n", "tokenizer");
}

CharTokenizer CharTokenizer::from_json_text(const std::string& json_text, const std::string& path) {
  try {
    const nlohmann::json j = nlohmann::json::parse(json_text);
    const auto& jc = j.at("code_points");
    ATTN_CHECK(jc.is_array() && !jc.empty(), "tokenizer {}: \"code_points\" must be a non-empty array", path);
    std::vector<char32_t> cps;
    cps.reserve(jc.size());
    for (const auto& c : jc) {
      ATTN_CHECK(c.is_number_unsigned() && c.get<uint64_t>() <= 0x10FFFF,
                 "tokenizer {}: code point #{} is not an integer in [0, 0x10FFFF]", path, cps.size());
      cps.push_back(static_cast<char32_t>(c.get<uint32_t>()));
    }
    ATTN_CHECK(std::is_sorted(cps.begin(), cps.end()) &&
                   std::adjacent_find(cps.begin(), cps.end()) == cps.end(),
               "tokenizer {}: code points must be sorted and unique", path);
    return CharTokenizer(std::move(cps));
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer {}: invalid char tokenizer JSON ({})", path, e.what());
  }
}

}  // namespace attn
