// Tokenizer: the interface shared by the byte-level BPE, GPT-2's and the character-level
// tokenizers. A tokenizer turns text (any bytes) into token ids and back, and
// saves itself as a JSON file ({"type": ..., "version": ...}) that load_tokenizer()
// reads back, so a dataset and a trained model always carry the exact tokenizer
// their token ids were made with.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace attn {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::string type() const = 0;  // "bpe", "gpt2" or "char"
  virtual int vocab_size() const = 0;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Throws attn::Error on an id outside [0, vocab_size).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // Id of the end-of-text token that separates documents, -1 if there is none.
  virtual int eot_id() const = 0;
  // Writes the tokenizer as JSON (to path + ".tmp", then renamed onto path).
  virtual void save(const std::string& path) const = 0;
};

// Reads a tokenizer JSON file written by Tokenizer::save, or an HF tokenizer.json of the
// GPT-2 family. A missing, unreadable or corrupt file throws attn::Error naming the file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace attn
