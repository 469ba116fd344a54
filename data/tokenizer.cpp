// load_tokenizer: reads a tokenizer JSON file and dispatches on its "type".
#include "data/tokenizer.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/bpe_tokenizer.h"
#include "data/char_tokenizer.h"
#include "data/file_io.h"
#include "data/gpt2_tokenizer.h"

namespace attn {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  const std::string text = read_file_bytes(path, "tokenizer");
  std::string type;
  int version = 0;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    ATTN_CHECK(j.is_object(), "tokenizer {}: expected a JSON object", path);
    // HF's tokenizer.json (no "type" of ours, a "model"): GPT-2's family is read.
    if (!j.contains("type") && j.contains("model"))
      return std::make_unique<Gpt2Tokenizer>(Gpt2Tokenizer::from_hf_json(text, path));
    ATTN_CHECK(j.contains("type") && j["type"].is_string(), "tokenizer {}: missing \"type\"", path);
    ATTN_CHECK(j.contains("version") && j["version"].is_number_integer(), "tokenizer {}: missing \"version\"",
               path);
    type = j["type"].get<std::string>();
    version = j["version"].get<int>();
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer {}: not valid JSON ({})", path, e.what());
  }
  ATTN_CHECK(version == 1, "tokenizer {}: unsupported version {} (this build reads version 1)", path, version);
  if (type == "bpe") return std::make_unique<BpeTokenizer>(BpeTokenizer::from_json_text(text, path));
  if (type == "char") return std::make_unique<CharTokenizer>(CharTokenizer::from_json_text(text, path));
  if (type == "gpt2") return std::make_unique<Gpt2Tokenizer>(Gpt2Tokenizer::from_json_text(text, path));
  fail("tokenizer {}: unknown type '{}' (expected bpe, char or gpt2)", path, type);
}

}  // namespace attn
