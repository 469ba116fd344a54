// A prepared dataset directory, as written by `attnlab prepare` (prepare.h):
//   <dir>/tokenizer.json              the tokenizer the ids were made with
//   <dir>/train_000.bin, train_001.bin ...   token shards of the train split (shard.h)
//   <dir>/val_000.bin ...             token shards of the validation split
//   <dir>/meta.json                   tokenizer type, vocab size, eot id, token counts
//                                     and shards per split, source files, documents
// load_dataset_info() reads meta.json and checks that every file it names exists.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attn {

constexpr int kDatasetMetaVersion = 1;

struct DatasetInfo {
  std::string dir, tokenizer_path;
  std::vector<std::string> train_shards, val_shards;  // full paths, in stream order
  int vocab_size = 0;
  int eot_id = -1;
  int64_t train_tokens = 0, val_tokens = 0;
};

// Throws attn::Error naming the missing or corrupt path (and suggesting `attnlab prepare`).
DatasetInfo load_dataset_info(const std::string& dir);

// File name of shard `index` of a split: "train_000.bin", "val_012.bin".
std::string shard_file_name(const std::string& split, int index);

}  // namespace attn
