// GPT-2's tokenizer: vocabulary loading (three file forms), encoding with special
// tokens, decoding, and saving (see gpt2_tokenizer.h).
#include "data/gpt2_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/file_io.h"
#include "data/pretokenizer.h"
#include "data/utf8.h"

namespace attn {

namespace fs = std::filesystem;

namespace {

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the others
// (control bytes, space, 0x7F..0xA0, 0xAD) for U+0100, U+0101, ... in byte order.
std::array<char32_t, 256> make_byte_to_unicode() {
  std::array<char32_t, 256> map{};
  auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) map[b] = printable(b) ? static_cast<char32_t>(b) : next++;
  return map;
}
const std::array<char32_t, 256> kByteToUnicode = make_byte_to_unicode();

// The bytes a vocabulary name stands for; throws when a character is not in the map.
std::string name_to_bytes(const std::string& name, const std::string& source) {
  static const std::unordered_map<char32_t, unsigned char> unicode_to_byte = [] {
    std::unordered_map<char32_t, unsigned char> m;
    for (int b = 0; b < 256; ++b) m[kByteToUnicode[b]] = static_cast<unsigned char>(b);
    return m;
  }();
  std::string bytes;
  for (size_t i = 0; i < name.size();) {
    char32_t cp;
    i += decode_utf8(name, i, cp);
    const auto it = unicode_to_byte.find(cp);
    ATTN_CHECK(it != unicode_to_byte.end(),
               "tokenizer {}: token '{}' has a character outside GPT-2's byte-to-unicode map", source, name);
    bytes += static_cast<char>(it->second);
  }
  return bytes;
}

// "a b" -> (a, b): merges.txt lines and tokenizer.json's string merges.
std::pair<std::string, std::string> split_merge(const std::string& line, const std::string& source, size_t index) {
  const size_t space = line.find(' ');
  ATTN_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                 line.find(' ', space + 1) == std::string::npos,
             "tokenizer {}: merge {} ('{}') is not two tokens separated by one space", source, index, line);
  return {line.substr(0, space), line.substr(space + 1)};
}

std::vector<std::pair<std::string, int32_t>> vocab_from_json(const nlohmann::json& j, const std::string& source) {
  ATTN_CHECK(j.is_object() && !j.empty(), "tokenizer {}: the vocabulary must be a non-empty object", source);
  std::vector<std::pair<std::string, int32_t>> vocab;
  vocab.reserve(j.size());
  for (const auto& [name, id] : j.items()) {
    ATTN_CHECK(id.is_number_integer(), "tokenizer {}: token '{}' has a non-integer id", source, name);
    vocab.emplace_back(name, id.get<int32_t>());
  }
  return vocab;
}

}  // namespace

char32_t gpt2_byte_to_unicode(unsigned char b) { return kByteToUnicode[b]; }

// ---- construction ---------------------------------------------------------------------
Gpt2Tokenizer::Gpt2Tokenizer(std::vector<std::pair<std::string, int32_t>> vocab,
                             std::vector<std::pair<std::string, std::string>> merges,
                             std::vector<std::pair<std::string, int32_t>> special, const std::string& source)
    : vocab_(std::move(vocab)), merges_(std::move(merges)), special_(std::move(special)) {
  std::sort(vocab_.begin(), vocab_.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  int32_t max_id = -1;
  for (const auto& [name, id] : vocab_) max_id = std::max(max_id, id);
  for (const auto& [text, id] : special_) max_id = std::max(max_id, id);
  ATTN_CHECK(max_id >= 0 && max_id < (1 << 30), "tokenizer {}: token ids must be in [0, 2^30)", source);
  token_bytes_.assign(static_cast<size_t>(max_id) + 1, std::string());
  std::vector<bool> used(token_bytes_.size(), false);
  std::unordered_map<std::string, int32_t> id_of;
  id_of.reserve(vocab_.size() * 2);
  for (const auto& [name, id] : vocab_) {
    ATTN_CHECK(id >= 0, "tokenizer {}: token '{}' has a negative id {}", source, name, id);
    ATTN_CHECK(!used[id], "tokenizer {}: id {} is used twice", source, id);
    used[id] = true;
    ATTN_CHECK(id_of.emplace(name, id).second, "tokenizer {}: token '{}' appears twice", source, name);
  }
  for (const auto& [text, id] : special_) {
    ATTN_CHECK(id >= 0 && !text.empty(), "tokenizer {}: invalid special token '{}' ({})", source, text, id);
    token_bytes_[id] = text;  // GPT-2's vocabulary also lists <|endoftext|> as an ordinary name
    used[id] = true;
    if (text == kEndOfText) eot_id_ = id;
  }
  for (const auto& [name, id] : vocab_)
    if (token_bytes_[id].empty()) token_bytes_[id] = name_to_bytes(name, source);
  for (size_t id = 0; id < used.size(); ++id)
    ATTN_CHECK(used[id], "tokenizer {}: id {} has no token (ids must be 0 .. {} without gaps)", source, id,
               used.size() - 1);

  for (int b = 0; b < 256; ++b) {
    std::string name;
    append_utf8(name, kByteToUnicode[b]);
    const auto it = id_of.find(name);
    ATTN_CHECK(it != id_of.end(), "tokenizer {}: the vocabulary has no token for byte 0x{:02X} ('{}')", source, b,
               name);
    bpe_.set_byte_id(static_cast<unsigned char>(b), it->second);
  }
  for (size_t k = 0; k < merges_.size(); ++k) {
    const auto& [left, right] = merges_[k];
    const auto l = id_of.find(left), r = id_of.find(right), m = id_of.find(left + right);
    ATTN_CHECK(l != id_of.end() && r != id_of.end() && m != id_of.end(),
               "tokenizer {}: merge {} ('{} {}') names a token that is not in the vocabulary", source, k, left, right);
    ATTN_CHECK(bpe_.add(l->second, r->second, m->second), "tokenizer {}: merge {} ('{} {}') is a duplicate", source,
               k, left, right);
  }
}

Gpt2Tokenizer Gpt2Tokenizer::from_vocab_files(const std::string& encoder_json, const std::string& vocab_bpe) {
  std::vector<std::pair<std::string, int32_t>> vocab;
  try {
    vocab = vocab_from_json(nlohmann::json::parse(read_file_bytes(encoder_json, "tokenizer vocabulary")), encoder_json);
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer {}: not valid JSON ({})", encoder_json, e.what());
  }
  std::vector<std::pair<std::string, std::string>> merges;
  std::istringstream lines(read_file_bytes(vocab_bpe, "tokenizer merges"));
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    merges.push_back(split_merge(line, vocab_bpe, merges.size()));
  }
  std::vector<std::pair<std::string, int32_t>> special;
  for (const auto& [name, id] : vocab)
    if (name == kEndOfText) special.emplace_back(name, id);
  return Gpt2Tokenizer(std::move(vocab), std::move(merges), std::move(special), encoder_json);
}

Gpt2Tokenizer Gpt2Tokenizer::from_hf_json(const std::string& json_text, const std::string& path) {
  try {
    const nlohmann::json j = nlohmann::json::parse(json_text);
    const auto& model = j.at("model");
    ATTN_CHECK(model.value("type", "") == "BPE", "tokenizer {}: model type '{}' is not BPE", path,
               model.value("type", ""));
    // GPT-2's family: a byte-level pre-tokenizer with GPT-2's regex, no normalizer, no prefix space.
    const nlohmann::json& pre = j.at("pre_tokenizer");
    ATTN_CHECK(pre.is_object() && pre.value("type", "") == "ByteLevel",
               "tokenizer {}: pre_tokenizer is not ByteLevel (not a GPT-2-family tokenizer)", path);
    ATTN_CHECK(!pre.value("add_prefix_space", false), "tokenizer {}: pre_tokenizer.add_prefix_space = true is not "
               "supported (GPT-2 adds no prefix space)", path);
    ATTN_CHECK(pre.value("use_regex", true), "tokenizer {}: pre_tokenizer.use_regex = false is not supported", path);
    ATTN_CHECK(!j.contains("normalizer") || j["normalizer"].is_null(),
               "tokenizer {}: a normalizer is not supported (GPT-2 has none)", path);
    std::vector<std::pair<std::string, std::string>> merges;
    for (const auto& m : model.at("merges")) {
      if (m.is_string()) merges.push_back(split_merge(m.get<std::string>(), path, merges.size()));
      else if (m.is_array() && m.size() == 2) merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      else fail("tokenizer {}: merge {} is neither \"a b\" nor [a, b]", path, merges.size());
    }
    std::vector<std::pair<std::string, int32_t>> special;
    if (j.contains("added_tokens"))
      for (const auto& t : j["added_tokens"]) special.emplace_back(t.at("content").get<std::string>(), t.at("id").get<int32_t>());
    return Gpt2Tokenizer(vocab_from_json(model.at("vocab"), path), std::move(merges), std::move(special), path);
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer {}: not an HF tokenizer.json of the GPT-2 family ({})", path, e.what());
  }
}

Gpt2Tokenizer Gpt2Tokenizer::from_json_text(const std::string& json_text, const std::string& path) {
  try {
    const nlohmann::json j = nlohmann::json::parse(json_text);
    std::vector<std::pair<std::string, std::string>> merges;
    for (const auto& m : j.at("merges")) merges.push_back(split_merge(m.get<std::string>(), path, merges.size()));
    std::vector<std::pair<std::string, int32_t>> special;
    for (const auto& [text, id] : j.at("special_tokens").items()) special.emplace_back(text, id.get<int32_t>());
    return Gpt2Tokenizer(vocab_from_json(j.at("vocab"), path), std::move(merges), std::move(special), path);
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer {}: invalid gpt2 tokenizer JSON ({})", path, e.what());
  }
}

// ---- encoding and decoding ------------------------------------------------------------
void Gpt2Tokenizer::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
  for_each_gpt2_word(text, [&](std::string_view word) { bpe_.encode_cached(word, out); });
}

std::vector<int32_t> Gpt2Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 4 + 16);
  size_t pos = 0;
  while (pos < text.size()) {
    // The earliest special token from pos (the longest one where several start there).
    size_t at = std::string_view::npos;
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (const auto& s : special_) {
      const size_t f = text.find(s.first, pos);
      if (f < at || (f == at && f != std::string_view::npos && s.first.size() > hit->first.size())) at = f, hit = &s;
    }
    encode_ordinary(text.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos), ids);
    if (!hit) break;
    ids.push_back(hit->second);
    pos = at + hit->first.size();
  }
  return ids;
}

std::string Gpt2Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string text;
  text.reserve(ids.size() * 4);
  for (int32_t id : ids) {
    ATTN_CHECK(id >= 0 && id < vocab_size(), "gpt2 tokenizer: token id {} is out of range [0, {})", id, vocab_size());
    text += token_bytes_[id];
  }
  return text;
}

void Gpt2Tokenizer::save(const std::string& path) const {
  nlohmann::ordered_json j;
  j["type"] = "gpt2";
  j["version"] = 1;
  j["vocab_size"] = vocab_size();
  j["eot_id"] = eot_id_;
  nlohmann::ordered_json special = nlohmann::ordered_json::object();
  for (const auto& [text, id] : special_) special[text] = id;
  j["special_tokens"] = std::move(special);
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (const auto& [name, id] : vocab_) vocab[name] = id;
  j["vocab"] = std::move(vocab);
  nlohmann::ordered_json merges = nlohmann::ordered_json::array();
  for (const auto& [a, b] : merges_) merges.push_back(a + " " + b);
  j["merges"] = std::move(merges);
  write_file_atomic(path, j.dump() + "\n", "tokenizer");
}

// ---- files ------------------------------------------------------------------------------
bool has_gpt2_vocab_files(const std::string& dir) {
  const fs::path d(dir);
  return (fs::exists(d / "encoder.json") && fs::exists(d / "vocab.bpe")) ||
         (fs::exists(d / "vocab.json") && fs::exists(d / "merges.txt"));
}

Gpt2Tokenizer load_gpt2_tokenizer(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path d(path);
    if (fs::exists(d / "encoder.json") && fs::exists(d / "vocab.bpe"))
      return Gpt2Tokenizer::from_vocab_files((d / "encoder.json").string(), (d / "vocab.bpe").string());
    if (fs::exists(d / "vocab.json") && fs::exists(d / "merges.txt"))
      return Gpt2Tokenizer::from_vocab_files((d / "vocab.json").string(), (d / "merges.txt").string());
    if (fs::exists(d / "tokenizer.json")) return load_gpt2_tokenizer((d / "tokenizer.json").string());
    fail("gpt2 tokenizer: {} has neither encoder.json + vocab.bpe, vocab.json + merges.txt nor tokenizer.json", path);
  }
  const auto tok = load_tokenizer(path);
  const auto* gpt2 = dynamic_cast<const Gpt2Tokenizer*>(tok.get());
  ATTN_CHECK(gpt2, "gpt2 tokenizer: {} is a '{}' tokenizer, not GPT-2's", path, tok->type());
  return *gpt2;
}

}  // namespace attn
