// Dataset preparation (`attnlab prepare`): text files in, token shards out.
//
// Collects the input files (folders are walked recursively in sorted order,
// following symlinks; files that look binary, empty files and second links to an
// already-taken file are skipped), trains a tokenizer on them (or loads one), tokenizes
// each file as one document, joins the documents with the end-of-text token when the
// tokenizer has one (else with nothing, so a single file reproduces nanoGPT's char
// setup exactly), splits the stream like nanoGPT (the first 1 - val_fraction is
// train, the rest val), and writes the dataset directory described in dataset.h.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace attn {

struct PrepareOptions {
  std::vector<std::string> inputs;  // files or folders (recursive, sorted for determinism)
  std::string out_dir;
  std::string tokenizer = "bpe";  // or "char"
  int vocab_size = 4096;          // bpe only
  double val_fraction = 0.1;
  int64_t shard_tokens = 100'000'000;
  std::string tokenizer_path;  // optional: reuse an existing tokenizer.json instead of training
};

// Log receives one human-readable line per step (may be empty: no logging).
DatasetInfo prepare_dataset(const PrepareOptions& options, std::function<void(const std::string&)> log);

}  // namespace attn
