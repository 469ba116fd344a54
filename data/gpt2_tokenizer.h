// GPT-2's tokenizer (OpenAI's encoder.py, tiktoken's "gpt2", HF's GPT2TokenizerFast), bit-exact.
//
// Text is split into words by GPT-2's regex with Unicode classes (for_each_gpt2_word,
// pretokenizer.h); each word's UTF-8 bytes start as one token per byte and are merged by
// rank (bpe_merges.h). Vocabulary files name tokens by GPT-2's byte-to-unicode map
// (every byte as a printable character: '!'..'~', '¡'..'¬', '®'..'ÿ' stand for
// themselves, the other 68 bytes for U+0100 onwards; a space is 'Ġ'); internally tokens
// are their bytes, so decode(encode(x)) == x for any bytes.
//
// Special tokens (GPT-2: <|endoftext|> = 50256) are matched in the text first, as HF's
// tokenizer does with its added tokens and tiktoken's encode(allowed_special="all"): the
// literal text "<|endoftext|>" becomes id 50256 and the text on each side is encoded on
// its own.
//
// Bytes that are not valid UTF-8 (HF and tiktoken take only Unicode strings) are kept as
// they are: each counts as an "other" character for the regex and is encoded by its byte
// tokens. That is GPT-2's encoder.py on the text decoded with errors="surrogateescape";
// HF on the text decoded with errors="replace" gives the same ids wherever the text is
// valid and U+FFFD's tokens in place of the invalid bytes (scripts/compare_gpt2_tokenizer.py).
//
// Sources: GPT-2's encoder.json + vocab.bpe, HF's vocab.json + merges.txt (the same
// files) or HF's tokenizer.json (model BPE, pre-tokenizer ByteLevel), or our own saved
// tokenizer.json (type "gpt2").
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data/bpe_merges.h"
#include "data/tokenizer.h"

namespace attn {

class Gpt2Tokenizer final : public Tokenizer {
 public:
  static constexpr const char* kEndOfText = "<|endoftext|>";

  // vocab: token name (byte-to-unicode form) -> id; merges: pairs of token names in rank
  // order; special: token text -> id (matched in the text before pre-tokenization).
  Gpt2Tokenizer(std::vector<std::pair<std::string, int32_t>> vocab,
                std::vector<std::pair<std::string, std::string>> merges,
                std::vector<std::pair<std::string, int32_t>> special, const std::string& source);

  // GPT-2's encoder.json + vocab.bpe (HF: vocab.json + merges.txt); specials: <|endoftext|>
  // when the vocabulary has it.
  static Gpt2Tokenizer from_vocab_files(const std::string& encoder_json, const std::string& vocab_bpe);
  // An HF tokenizer.json of the GPT-2 family.
  static Gpt2Tokenizer from_hf_json(const std::string& json_text, const std::string& path);
  // Our own tokenizer.json (type "gpt2").
  static Gpt2Tokenizer from_json_text(const std::string& json_text, const std::string& path);

  std::string type() const override { return "gpt2"; }
  int vocab_size() const override { return static_cast<int>(token_bytes_.size()); }
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int eot_id() const override { return eot_id_; }
  void save(const std::string& path) const override;

  // Encodes ordinary text only: special tokens' text is encoded like any other (tiktoken's
  // encode_ordinary).
  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const;

 private:
  std::vector<std::pair<std::string, int32_t>> vocab_;
  std::vector<std::pair<std::string, std::string>> merges_;
  std::vector<std::pair<std::string, int32_t>> special_;
  std::vector<std::string> token_bytes_;  // by id
  BpeMerges bpe_;
  int32_t eot_id_ = -1;
};

// GPT-2's byte-to-unicode map: the code point that stands for byte b in vocabulary files.
char32_t gpt2_byte_to_unicode(unsigned char b);

// A GPT-2-family tokenizer from a directory (encoder.json + vocab.bpe, vocab.json +
// merges.txt, or tokenizer.json) or a file (HF's tokenizer.json or ours).
Gpt2Tokenizer load_gpt2_tokenizer(const std::string& path);

// True when the directory holds GPT-2 vocabulary files load_gpt2_tokenizer reads.
bool has_gpt2_vocab_files(const std::string& dir);

}  // namespace attn
