// Dataset preparation (`attnlab prepare`): text in, token shards out, in bounded memory.
//
// Reads the inputs as a stream of documents (text_input.h: files, folders, .jsonl, .gz,
// .zst), gets a tokenizer (GPT-2's vocabulary files, an existing tokenizer.json, or one
// trained here: BPE on the first train_sample_bytes of text, characters on all of it),
// encodes the documents on every core (parallel_encode.h) and writes shards of
// shard_tokens tokens as it goes. Within a split, documents are joined by the end-of-text
// token when the tokenizer has one (else by nothing); the loader reads a split's shards as
// one stream, so a document may continue into the next shard.
//
// The validation split (val_split):
//   "documents": each document goes to val with probability val_fraction, by a hash of
//                its index in the stream (deterministic; a prefix of the inputs gives a
//                prefix of both splits);
//   "tail":      nanoGPT's: the last val_fraction of the token stream (the shards are
//                written first, then the tail is moved into val shards);
//   "auto":      "tail" when the inputs are fewer than kAutoDocumentSplitFiles plain text
//                files (a single file reproduces nanoGPT's split exactly), else "documents".
// A progress line (MB/s, tokens/s, ETA) is logged every few seconds.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.h"

namespace attn {

constexpr int kAutoDocumentSplitFiles = 100;

// The values of `tokenizer` and `val_split` (and of data.tokenizer / data.val_split, which the
// config checks against these same lists: core/choices.h).
inline constexpr std::array<std::string_view, 3> kTokenizerNames{"bpe", "char", "gpt2"};
inline constexpr std::array<std::string_view, 3> kValSplitNames{"auto", "documents", "tail"};

struct PrepareOptions {
  std::vector<std::string> inputs;  // files or folders (recursive, sorted for determinism)
  std::string out_dir;
  std::string tokenizer = "bpe";  // bpe, char or gpt2
  int vocab_size = 4096;          // bpe only
  double val_fraction = 0.1;
  std::string val_split = "auto";  // auto, documents or tail
  int64_t shard_tokens = 100'000'000;
  std::string tokenizer_path;   // optional: reuse an existing tokenizer.json instead of training
  std::string gpt2_vocab;       // gpt2: folder or file of GPT-2's vocabulary (gpt2_tokenizer.h)
  std::string jsonl_key = "text";
  int threads = 0;              // encoding threads (0: all cores)
  int64_t train_sample_bytes = int64_t{256} << 20;  // bpe training reads at most this much text
  size_t batch_bytes = size_t{64} << 20;            // text encoded per parallel batch
};

// Log receives one human-readable line per step (may be empty: no logging).
DatasetInfo prepare_dataset(const PrepareOptions& options, std::function<void(const std::string&)> log);

}  // namespace attn
