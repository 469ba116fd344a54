// DataLoader: deterministic random windows over a rank's part of the token stream.
#include "data/loader.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/rng.h"

namespace attn {

namespace {

// "train" for ".../train_003.bin"; the file name itself for other names.
std::string split_name_of(const std::string& shard_path) {
  const std::string stem = std::filesystem::path(shard_path).stem().string();
  const size_t underscore = stem.rfind('_');
  if (underscore != std::string::npos && underscore > 0 && underscore + 1 < stem.size() &&
      std::all_of(stem.begin() + underscore + 1, stem.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return stem.substr(0, underscore);
  return stem;
}

}  // namespace

DataLoader::DataLoader(std::vector<std::string> shard_paths, int vocab_size, int rank, int world_size)
    : rank_(rank), world_size_(world_size) {
  ATTN_CHECK(!shard_paths.empty(), "data loader: no shards given");
  split_name_ = split_name_of(shard_paths.front());
  ATTN_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "data loader ({}): invalid rank {} of world size {}",
             split_name_, rank, world_size);
  shards_.reserve(shard_paths.size());
  for (const auto& path : shard_paths) {
    shards_.emplace_back(path);
    const Shard& s = shards_.back();
    ATTN_CHECK(s.vocab_size() == vocab_size, "shard {}: vocab size {} does not match the dataset's {}", path,
               s.vocab_size(), vocab_size);
    shard_begin_.push_back(total_);
    total_ += s.size();
  }
  part_len_ = total_ / world_size;
  part_begin_ = part_len_ * rank;
}

void DataLoader::copy_stream(int64_t pos, int64_t n, int32_t* out) const {
  // The last shard that starts at or before pos (skipping empty shards naturally).
  size_t k = std::upper_bound(shard_begin_.begin(), shard_begin_.end(), pos) - shard_begin_.begin() - 1;
  while (n > 0) {
    const int64_t offset = pos - shard_begin_[k];
    const int64_t take = std::min(n, shards_[k].size() - offset);
    shards_[k].copy(offset, take, out);
    out += take;
    pos += take;
    n -= take;
    ++k;
  }
}

void DataLoader::batch(uint64_t seed, int64_t step, int micro_step, int B, int T, int32_t* inputs,
                       int32_t* targets) const {
  ATTN_CHECK(B > 0 && T > 0, "data loader ({}): batch size {} and sequence length {} must be positive", split_name_,
             B, T);
  if (part_len_ < static_cast<int64_t>(T) + 1)
    fail("data loader: the {} split is too small: rank {}'s part has {} tokens ({} tokens / {} ranks), "
         "a window needs T + 1 = {}",
         split_name_, rank_, part_len_, total_, world_size_, static_cast<int64_t>(T) + 1);
  const uint64_t key = stream_key(seed, static_cast<uint64_t>(step), static_cast<uint64_t>(micro_step),
                                  static_cast<uint64_t>(rank_));
  const auto num_starts = static_cast<uint64_t>(part_len_ - T);
  for (int b = 0; b < B; ++b) {
    const auto start = part_begin_ + static_cast<int64_t>(random_u64(key, static_cast<uint64_t>(b)) % num_starts);
    copy_stream(start, T, inputs + static_cast<int64_t>(b) * T);
    copy_stream(start + 1, T, targets + static_cast<int64_t>(b) * T);
  }
}

}  // namespace attn
