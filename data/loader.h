// DataLoader: random training windows from a split's token shards.
//
// The shards of a split are memory-mapped and read as one concatenated stream
// (windows may cross shard boundaries). The stream is cut into world_size equal
// contiguous parts (the remainder at the end is unused); rank r only ever reads
// part r. Row b of a batch is the window of T + 1 tokens starting at
//   random_u64(stream_key(seed, step, micro_step, rank), b) % (part_len - T)
// within the part; inputs = window[0, T), targets = window[1, T + 1).
// batch() is a pure function of its arguments: the loader has no state to save,
// so a run resumed at step s draws exactly the batches of an uninterrupted run.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/shard.h"

namespace attn {

class DataLoader {
 public:
  // Every shard must have vocab size vocab_size; 0 <= rank < world_size.
  DataLoader(std::vector<std::string> shard_paths, int vocab_size, int rank = 0, int world_size = 1);

  int64_t num_tokens() const { return part_len_; }  // of this rank's part
  int64_t part_begin() const { return part_begin_; }  // offset of this rank's part in the stream
  // The split's name for messages ("train", "val"), taken from the shard file names.
  const std::string& split_name() const { return split_name_; }

  // Fills inputs and targets, each B * T int32 (row-major [B][T]).
  void batch(uint64_t seed, int64_t step, int micro_step, int B, int T, int32_t* inputs, int32_t* targets) const;

 private:
  // Copies stream tokens [pos, pos + n) to out, crossing shards as needed.
  void copy_stream(int64_t pos, int64_t n, int32_t* out) const;

  std::vector<Shard> shards_;
  std::vector<int64_t> shard_begin_;  // stream offset of each shard's first token
  int64_t total_ = 0, part_begin_ = 0, part_len_ = 0;
  int rank_ = 0, world_size_ = 1;
  std::string split_name_;
};

}  // namespace attn
