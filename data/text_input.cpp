// Input files of prepare as a stream of document units (see text_input.h).
#include "data/text_input.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/parallel_encode.h"

namespace attn {

namespace fs = std::filesystem;

namespace {

constexpr size_t kBinarySniffBytes = 8192;
constexpr size_t kReadBlockBytes = size_t{4} << 20;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string without_compression_suffix(const std::string& path) {
  for (const char* ext : {".gz", ".zst"})
    if (ends_with(path, ext)) return path.substr(0, path.size() - std::strlen(ext));
  return path;
}

}  // namespace

// ---- the files -------------------------------------------------------------------------
std::vector<InputFile> collect_input_files(const std::vector<std::string>& inputs,
                                           const std::function<void(const std::string&)>& log) {
  std::vector<InputFile> files;
  std::set<std::string> visited_dirs, taken;
  int skipped_empty = 0, skipped_duplicate = 0;
  auto take = [&](const fs::path& p, bool named) {
    std::error_code ec;
    const std::string canonical = fs::canonical(p, ec).string();
    if (!ec && !taken.insert(canonical).second) return void(++skipped_duplicate);
    const auto size = static_cast<int64_t>(fs::file_size(p, ec));
    if (ec) fail("prepare: cannot read {} ({})", p.string(), ec.message());
    if (size == 0) return void(++skipped_empty);
    files.push_back({p.string(), size, ends_with(without_compression_suffix(p.string()), ".jsonl"), named});
  };
  std::function<void(const fs::path&)> walk = [&](const fs::path& dir) {
    std::error_code ec;
    const fs::path canonical = fs::canonical(dir, ec);
    if (ec || !visited_dirs.insert(canonical.string()).second) return;
    std::vector<fs::path> entries;
    for (const auto& entry : fs::directory_iterator(dir, ec)) entries.push_back(entry.path());
    if (ec) fail("prepare: cannot read directory {} ({})", dir.string(), ec.message());
    std::sort(entries.begin(), entries.end());
    for (const fs::path& p : entries) {
      const fs::file_status st = fs::status(p, ec);  // follows symlinks
      if (ec) {
        if (log) log(fmt::format("skip {} (broken link or unreadable)", p.string()));
      } else if (fs::is_directory(st)) {
        walk(p);
      } else if (fs::is_regular_file(st)) {
        take(p, false);
      }
    }
  };
  for (const std::string& input : inputs) {
    std::error_code ec;
    const fs::file_status st = fs::status(input, ec);
    if (ec || !fs::exists(st)) fail("prepare: input {} does not exist", input);
    if (fs::is_directory(st)) walk(input);
    else if (fs::is_regular_file(st)) take(input, true);
    else fail("prepare: input {} is neither a regular file nor a directory", input);
  }
  if (log && (skipped_empty || skipped_duplicate))
    log(fmt::format("skipped {} empty and {} duplicate (second link to a file) files", skipped_empty, skipped_duplicate));
  return files;
}

// ---- decompressed bytes of one file ------------------------------------------------------
class DocumentReader::Stream {
 public:
  explicit Stream(const std::string& path) : path_(path) {
    if (ends_with(path, ".gz")) {
      gz_ = gzopen(path.c_str(), "rb");
      if (!gz_) fail("prepare: cannot open {} ({})", path, std::strerror(errno));
      gzbuffer(gz_, 1 << 20);
      return;
    }
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_) fail("prepare: cannot open {} ({})", path, std::strerror(errno));
    if (ends_with(path, ".zst")) {
      zstd_ = ZSTD_createDStream();
      in_.resize(ZSTD_DStreamInSize());
    }
  }
  ~Stream() {
    if (gz_) gzclose(gz_);
    if (file_) std::fclose(file_);
    if (zstd_) ZSTD_freeDStream(zstd_);
  }

  // Appends up to n decompressed bytes to out; returns how many (0 at the end).
  size_t read(std::string& out, size_t n) {
    const size_t old = out.size();
    out.resize(old + n);
    char* dst = out.data() + old;
    size_t got = 0;
    if (gz_) {
      const int r = gzread(gz_, dst, static_cast<unsigned>(n));
      int err = 0;
      if (r < 0) fail("prepare: {}: corrupt gzip data ({})", path_, gzerror(gz_, &err));
      got = static_cast<size_t>(r);
    } else if (zstd_) {
      got = read_zstd(dst, n);
    } else {
      got = std::fread(dst, 1, n, file_);
      if (got < n && std::ferror(file_)) fail("prepare: {}: read failed ({})", path_, std::strerror(errno));
    }
    out.resize(old + got);
    return got;
  }

  int64_t disk_offset() const {
    if (gz_) return static_cast<int64_t>(gzoffset(gz_));
    return file_ ? static_cast<int64_t>(std::ftell(file_)) : 0;
  }

 private:
  size_t read_zstd(char* dst, size_t n) {
    ZSTD_outBuffer out{dst, n, 0};
    while (out.pos < out.size) {
      if (in_pos_ == in_size_) {
        in_size_ = std::fread(in_.data(), 1, in_.size(), file_), in_pos_ = 0;
        if (in_size_ == 0) {
          if (std::ferror(file_)) fail("prepare: {}: read failed ({})", path_, std::strerror(errno));
          if (!frame_done_) fail("prepare: {}: truncated zstd data", path_);
          break;
        }
      }
      ZSTD_inBuffer in{in_.data(), in_size_, in_pos_};
      const size_t r = ZSTD_decompressStream(zstd_, &out, &in);
      if (ZSTD_isError(r)) fail("prepare: {}: corrupt zstd data ({})", path_, ZSTD_getErrorName(r));
      frame_done_ = r == 0;
      in_pos_ = in.pos;
    }
    return out.pos;
  }

  std::string path_;
  gzFile gz_ = nullptr;
  std::FILE* file_ = nullptr;
  ZSTD_DStream* zstd_ = nullptr;
  std::vector<char> in_;
  size_t in_pos_ = 0, in_size_ = 0;
  bool frame_done_ = true;
};

// ---- documents ---------------------------------------------------------------------------
DocumentReader::DocumentReader(std::vector<InputFile> files, std::string jsonl_text_key,
                               std::function<void(const std::string&)> log)
    : files_(std::move(files)), key_(std::move(jsonl_text_key)), log_(std::move(log)) {}

DocumentReader::~DocumentReader() = default;

int64_t DocumentReader::disk_bytes_read() const {
  return finished_disk_bytes_ + (stream_ ? stream_->disk_offset() : 0);
}

bool DocumentReader::open_next_file() {
  while (file_index_ < files_.size()) {
    const InputFile& f = files_[file_index_++];
    stream_ = std::make_unique<Stream>(f.path);
    pending_.clear();
    line_ = 0;
    if (f.jsonl) {
      sources_.push_back(f.path);
      return true;
    }
    while (pending_.size() < kBinarySniffBytes && stream_->read(pending_, kBinarySniffBytes) > 0) {
    }
    if (std::memchr(pending_.data(), '\0', std::min(pending_.size(), kBinarySniffBytes))) {
      ATTN_CHECK(!f.named, "prepare: input {} looks binary (a NUL byte in its first 8 KiB)", f.path);
      if (log_ && skipped_binary_ < 3) log_(fmt::format("skip {} (binary: a NUL byte in its first 8 KiB)", f.path));
      ++skipped_binary_;
      finished_disk_bytes_ += f.bytes;
      stream_.reset();
      continue;
    }
    if (pending_.empty()) {  // compressed empty text
      finished_disk_bytes_ += f.bytes;
      stream_.reset();
      continue;
    }
    sources_.push_back(f.path);
    starts_document_ = true;
    return true;
  }
  return false;
}

bool DocumentReader::next_batch(size_t bytes, std::vector<TextUnit>& units) {
  size_t produced = 0;
  while (produced < bytes) {
    if (!stream_ && !open_next_file()) break;
    const bool jsonl = files_[file_index_ - 1].jsonl;
    if (jsonl) read_jsonl(bytes, units, produced);
    else read_plain(bytes, units, produced);
    if (!stream_) finished_disk_bytes_ += files_[file_index_ - 1].bytes;
  }
  return produced > 0;
}

// A plain file is one document: cut at the last safe cut of what has been read.
void DocumentReader::read_plain(size_t bytes, std::vector<TextUnit>& units, size_t& produced) {
  while (produced < bytes) {
    const bool more = stream_->read(pending_, kReadBlockBytes) > 0;
    size_t cut = pending_.size();
    if (more) {
      cut = 0;
      for (size_t from = pending_.size() / 2; from > 0 && cut == 0; from /= 2) {
        const size_t c = next_safe_cut(pending_, from);
        if (c < pending_.size()) cut = c;
      }
      if (cut == 0) continue;  // no safe cut yet: read more
    }
    if (cut == 0) {  // the end, with nothing left over
      stream_.reset();
      return;
    }
    if (starts_document_) ++next_document_;
    units.push_back({next_document_ - 1, starts_document_, pending_.substr(0, cut)});
    starts_document_ = false;
    pending_.erase(0, cut);
    produced += cut, text_bytes_ += static_cast<int64_t>(cut);
    if (!more) {
      stream_.reset();
      return;
    }
  }
}

// A .jsonl file: each non-empty line is an object whose text field is a document. Lines
// are taken from pending_ at an offset (pending_ is compacted only when more is read).
void DocumentReader::read_jsonl(size_t bytes, std::vector<TextUnit>& units, size_t& produced) {
  const std::string& path = files_[file_index_ - 1].path;
  size_t pos = 0;
  while (produced < bytes) {
    size_t newline = pending_.find('\n', pos);
    bool at_end = false;
    while (newline == std::string::npos) {
      pending_.erase(0, pos);
      pos = 0;
      const size_t old = pending_.size();
      if (stream_->read(pending_, kReadBlockBytes) == 0) {
        at_end = true;
        break;
      }
      newline = pending_.find('\n', old);
    }
    const size_t line_end = newline == std::string::npos ? pending_.size() : newline;
    ++line_;
    const std::string_view line = std::string_view(pending_).substr(pos, line_end - pos);
    if (!line.empty() && line != "\r") {
      std::string text;
      try {
        const nlohmann::json j = nlohmann::json::parse(line);
        ATTN_CHECK(j.is_object() && j.contains(key_) && j[key_].is_string(),
                   "prepare: {} line {}: no string field \"{}\" (set the key with --jsonl-key)", path, line_, key_);
        text = j[key_].get<std::string>();
      } catch (const nlohmann::json::exception& e) {
        fail("prepare: {} line {}: not valid JSON ({})", path, line_, e.what());
      }
      if (!text.empty()) {
        produced += text.size(), text_bytes_ += static_cast<int64_t>(text.size());
        units.push_back({next_document_++, true, std::move(text)});
      }
    }
    pos = std::min(pending_.size(), line_end + 1);
    if (at_end && pos == pending_.size()) {
      pending_.clear();
      stream_.reset();
      return;
    }
  }
  pending_.erase(0, pos);
}

}  // namespace attn
