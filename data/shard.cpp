// Token shard writer and validating mmap reader (format in shard.h).
#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include "core/error.h"
#include "data/shard_guard.h"

namespace attn {

static_assert(std::endian::native == std::endian::little,
              "token shards are little-endian and read in place: big-endian hosts are not supported");

namespace {

template <typename T>
void put(unsigned char* dst, T value) {
  std::memcpy(dst, &value, sizeof(T));
}
template <typename T>
T get(const unsigned char* src) {
  T value;
  std::memcpy(&value, src, sizeof(T));
  return value;
}

int dtype_bytes(uint32_t dtype) { return dtype == 1 ? 2 : 4; }

}  // namespace

uint64_t fnv1a64(const void* data, size_t n, uint64_t hash) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) hash = (hash ^ p[i]) * 0x100000001b3ull;
  return hash;
}

uint64_t file_fnv1a64(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ATTN_CHECK(in.good(), "cannot read {}", path);
  std::vector<char> buf(1 << 20);
  uint64_t hash = 0xcbf29ce484222325ull;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    hash = fnv1a64(buf.data(), static_cast<size_t>(in.gcount()), hash);
  }
  ATTN_CHECK(in.eof(), "reading {} failed", path);
  return hash;
}

uint64_t shard_stored_checksum(const std::string& path) {
  unsigned char header[kShardHeaderBytes];
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(header), sizeof(header));
  ATTN_CHECK(in.gcount() == static_cast<std::streamsize>(sizeof(header)), "shard {}: cannot read its header", path);
  return get<uint64_t>(header + 32);
}

// ---- writing ---------------------------------------------------------------------
namespace {

void fill_header(unsigned char* header, uint32_t dtype, uint64_t count, int vocab_size, uint64_t checksum) {
  std::memset(header, 0, kShardHeaderBytes);
  std::memcpy(header, kShardMagic, 8);
  put<uint32_t>(header + 8, kShardVersion);
  put<uint32_t>(header + 12, dtype);
  put<uint64_t>(header + 16, count);
  put<uint32_t>(header + 24, static_cast<uint32_t>(vocab_size));
  put<uint64_t>(header + 32, checksum);
}

}  // namespace

ShardWriter::ShardWriter(const std::string& path, int vocab_size)
    : path_(path), tmp_(path + ".tmp"), vocab_size_(vocab_size), dtype_(vocab_size <= 65536 ? 1 : 2),
      checksum_(fnv1a64(nullptr, 0)) {
  ATTN_CHECK(vocab_size > 0, "shard {}: vocab size {} must be positive", path, vocab_size);
  file_ = std::fopen(tmp_.c_str(), "wb");
  if (!file_) fail("shard {}: cannot create {} ({})", path, tmp_, std::strerror(errno));
  unsigned char header[kShardHeaderBytes] = {};  // placeholder until finish()
  if (std::fwrite(header, 1, sizeof(header), file_) != sizeof(header)) {
    std::fclose(file_), file_ = nullptr, std::remove(tmp_.c_str());
    fail("shard {}: write failed (disk full?)", path);
  }
}

ShardWriter::~ShardWriter() {
  if (file_) {
    std::fclose(file_);
    std::remove(tmp_.c_str());
  }
}

void ShardWriter::append(std::span<const int32_t> tokens) {
  if (tokens.empty()) return;  // (fwrite of an empty buffer would pass its null data pointer)
  const size_t width = dtype_bytes(dtype_);
  buffer_.resize(tokens.size() * width);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t t = tokens[i];
    ATTN_CHECK(t >= 0 && t < vocab_size_, "shard {}: token {} at position {} is outside [0, {})", path_, t,
               count_ + static_cast<int64_t>(i), vocab_size_);
    if (dtype_ == 1) put<uint16_t>(&buffer_[i * 2], static_cast<uint16_t>(t));
    else put<uint32_t>(&buffer_[i * 4], static_cast<uint32_t>(t));
  }
  checksum_ = fnv1a64(buffer_.data(), buffer_.size(), checksum_);
  if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size())
    fail("shard {}: write failed (disk full?)", path_);
  count_ += static_cast<int64_t>(tokens.size());
}

void ShardWriter::finish() {
  unsigned char header[kShardHeaderBytes];
  fill_header(header, dtype_, static_cast<uint64_t>(count_), vocab_size_, checksum_);
  const bool ok = std::fseek(file_, 0, SEEK_SET) == 0 && std::fwrite(header, 1, sizeof(header), file_) == sizeof(header);
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!ok || !closed) {
    std::remove(tmp_.c_str());
    fail("shard {}: write failed (disk full?)", path_);
  }
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) {
    std::remove(tmp_.c_str());
    fail("shard {}: cannot rename {} onto it ({})", path_, tmp_, ec.message());
  }
}

void write_shard(const std::string& path, std::span<const int32_t> tokens, int vocab_size) {
  ShardWriter writer(path, vocab_size);
  writer.append(tokens);
  writer.finish();
}

// ---- reading ---------------------------------------------------------------------
Shard::Shard(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("shard {}: cannot open ({})", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail("shard {}: cannot stat ({})", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("shard {}: not a regular file", path);
  }
  const auto file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < kShardHeaderBytes) {
    ::close(fd);
    fail("shard {}: truncated (expected at least {} bytes, found {})", path, kShardHeaderBytes, file_bytes);
  }
  map_ = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping stays valid
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail("shard {}: mmap failed ({})", path, std::strerror(map_errno));
  }
  map_bytes_ = file_bytes;
  register_shard_mapping(map_, map_bytes_, path);

  try {
    const auto* base = static_cast<const unsigned char*>(map_);
    ATTN_CHECK(std::memcmp(base, kShardMagic, 8) == 0, "shard {}: bad magic (not an attnlab token shard)", path);
    const auto version = get<uint32_t>(base + 8);
    ATTN_CHECK(version == kShardVersion, "shard {}: unsupported version {} (this build reads version {})", path,
               version, kShardVersion);
    const auto dtype = get<uint32_t>(base + 12);
    ATTN_CHECK(dtype == 1 || dtype == 2, "shard {}: unknown dtype {} (expected 1 = uint16 or 2 = uint32)", path,
               dtype);
    token_bytes_ = dtype_bytes(dtype);
    const auto count = get<uint64_t>(base + 16);
    const auto vocab = get<uint32_t>(base + 24);
    ATTN_CHECK(vocab > 0 && vocab <= static_cast<uint32_t>(INT32_MAX), "shard {}: invalid vocab size {}", path,
               vocab);
    ATTN_CHECK(dtype == 2 || vocab <= 65536, "shard {}: vocab size {} does not fit its uint16 tokens", path, vocab);
    const uint64_t max_count = (UINT64_MAX - kShardHeaderBytes) / token_bytes_;
    ATTN_CHECK(count <= max_count, "shard {}: corrupt header (token count {})", path, count);
    const uint64_t expected = kShardHeaderBytes + count * token_bytes_;
    ATTN_CHECK(file_bytes >= expected, "shard {}: truncated (expected {} bytes, found {})", path, expected,
               file_bytes);
    ATTN_CHECK(file_bytes == expected, "shard {}: {} bytes of trailing data (expected {} bytes, found {})", path,
               file_bytes - expected, expected, file_bytes);
    tokens_ = base + kShardHeaderBytes;
    count_ = static_cast<int64_t>(count);
    vocab_size_ = static_cast<int>(vocab);

    // One pass: checksum and largest token, then locate the first bad token if any.
    const uint64_t checksum = fnv1a64(tokens_, count * token_bytes_);
    const auto stored = get<uint64_t>(base + 32);
    ATTN_CHECK(checksum == stored, "shard {}: checksum mismatch (header 0x{:016x}, data 0x{:016x}): file is corrupt",
               path, stored, checksum);
    uint32_t largest = 0;
    if (token_bytes_ == 2) {
      for (int64_t i = 0; i < count_; ++i) largest = std::max<uint32_t>(largest, get<uint16_t>(tokens_ + 2 * i));
    } else {
      for (int64_t i = 0; i < count_; ++i) largest = std::max<uint32_t>(largest, get<uint32_t>(tokens_ + 4 * i));
    }
    if (largest >= vocab) {
      for (int64_t i = 0; i < count_; ++i) {
        const uint32_t t = token_bytes_ == 2 ? get<uint16_t>(tokens_ + 2 * i) : get<uint32_t>(tokens_ + 4 * i);
        if (t >= vocab) fail("shard {}: token {} at position {} is >= vocab size {}", path, t, i, vocab);
      }
    }
  } catch (...) {
    release();
    throw;
  }
}

Shard::~Shard() { release(); }

void Shard::release() {
  if (map_) {
    unregister_shard_mapping(map_);
    ::munmap(map_, map_bytes_);
  }
  map_ = nullptr;
  map_bytes_ = 0;
  tokens_ = nullptr;
  count_ = 0;
}

Shard::Shard(Shard&& o) noexcept { *this = std::move(o); }

Shard& Shard::operator=(Shard&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    map_ = std::exchange(o.map_, nullptr);
    map_bytes_ = std::exchange(o.map_bytes_, 0);
    tokens_ = std::exchange(o.tokens_, nullptr);
    count_ = std::exchange(o.count_, 0);
    vocab_size_ = o.vocab_size_;
    token_bytes_ = o.token_bytes_;
  }
  return *this;
}

int32_t Shard::token(int64_t i) const {
  ATTN_CHECK(i >= 0 && i < count_, "shard {}: position {} is out of range [0, {})", path_, i, count_);
  return token_bytes_ == 2 ? static_cast<int32_t>(get<uint16_t>(tokens_ + 2 * i))
                           : static_cast<int32_t>(get<uint32_t>(tokens_ + 4 * i));
}

void Shard::copy(int64_t begin, int64_t n, int32_t* out) const {
  ATTN_CHECK(begin >= 0 && n >= 0 && begin <= count_ && n <= count_ - begin,
             "shard {}: range [{}, {}) is out of range [0, {})", path_, begin, begin + n, count_);
  if (token_bytes_ == 2) {
    const unsigned char* p = tokens_ + 2 * begin;
    for (int64_t i = 0; i < n; ++i) out[i] = get<uint16_t>(p + 2 * i);
  } else {
    const unsigned char* p = tokens_ + 4 * begin;
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(get<uint32_t>(p + 4 * i));
  }
}

}  // namespace attn
