// Token shards: the on-disk form of a tokenized split, read back by mmap.
//
// Layout (all little-endian), a 64-byte header then the tokens:
//   offset  0  char[8]  magic "ATTNTOK1"
//   offset  8  uint32   version (1)
//   offset 12  uint32   dtype: 1 = uint16 tokens, 2 = uint32 tokens (uint16 when vocab <= 65536)
//   offset 16  uint64   token count
//   offset 24  uint32   vocab size
//   offset 28  uint32   reserved (0), keeps the checksum 8-byte aligned
//   offset 32  uint64   FNV-1a 64 checksum of the token bytes
//   offset 40  zeros up to 64
//   offset 64  count tokens of the dtype's size
// Opening a shard validates everything once (magic, version, dtype, exact file size,
// checksum, every token < vocab), so the loader can then read it without checks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

namespace attn {

constexpr size_t kShardHeaderBytes = 64;
constexpr char kShardMagic[8] = {'A', 'T', 'T', 'N', 'T', 'O', 'K', '1'};
constexpr uint32_t kShardVersion = 1;

// FNV-1a 64-bit hash of bytes (continuing from `hash`).
uint64_t fnv1a64(const void* data, size_t n, uint64_t hash = 0xcbf29ce484222325ull);
// FNV-1a 64 of a whole file, streamed (throws attn::Error naming it when it cannot be read).
uint64_t file_fnv1a64(const std::string& path);
// The token checksum a shard's header stores (reads the header only; no validation).
uint64_t shard_stored_checksum(const std::string& path);

// Writes tokens (each in [0, vocab_size)) to path + ".tmp", then renames it onto path.
void write_shard(const std::string& path, std::span<const int32_t> tokens, int vocab_size);

// Writes one shard as its tokens arrive (append), in bounded memory: the header is written
// last, with the count and the checksum, then path + ".tmp" is renamed onto path (finish).
// Destroyed unfinished, it removes its .tmp file.
class ShardWriter {
 public:
  ShardWriter(const std::string& path, int vocab_size);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  void append(std::span<const int32_t> tokens);
  int64_t count() const { return count_; }
  void finish();

 private:
  std::string path_, tmp_;
  int vocab_size_;
  uint32_t dtype_;
  std::FILE* file_ = nullptr;
  int64_t count_ = 0;
  uint64_t checksum_;
  std::vector<unsigned char> buffer_;
};

// A validated, memory-mapped, read-only token shard (RAII: unmapped on destruction).
class Shard {
 public:
  explicit Shard(const std::string& path);
  ~Shard();
  Shard(Shard&& other) noexcept;
  Shard& operator=(Shard&& other) noexcept;
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  const std::string& path() const { return path_; }
  int64_t size() const { return count_; }
  int vocab_size() const { return vocab_size_; }
  int32_t token(int64_t i) const;
  // Copies tokens [begin, begin + n) to out as int32 (throws if out of range).
  void copy(int64_t begin, int64_t n, int32_t* out) const;

 private:
  void release();

  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const unsigned char* tokens_ = nullptr;
  int64_t count_ = 0;
  int vocab_size_ = 0;
  int token_bytes_ = 2;
};

}  // namespace attn
