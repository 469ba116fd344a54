// The inputs of `attnlab prepare`, read as a stream of documents in bounded memory.
//
// Files: plain text (one document per file), .jsonl (one JSON object per line, the
// document is its text field), each optionally compressed: .gz (zlib) or .zst (zstd).
// Folders are walked recursively in sorted order, following symlinks; files that look
// binary (a NUL byte in the first 8 KiB), empty files and second links to an already
// taken file are skipped (a file named directly must be text).
//
// Documents come out as units of text in order. A plain file of any size is cut into
// units at safe cuts (parallel_encode.h), so encoding the units one by one gives the
// ids of the whole document; units of one document share its index.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace attn {

struct InputFile {
  std::string path;
  int64_t bytes = 0;  // on disk (compressed size for .gz/.zst)
  bool jsonl = false;
  bool named = false;  // given directly (not found by walking a folder)
};

// Input files in stream order (errors name a missing or unreadable input).
std::vector<InputFile> collect_input_files(const std::vector<std::string>& inputs,
                                           const std::function<void(const std::string&)>& log);

struct TextUnit {
  int64_t document = 0;     // index in the stream of documents (0, 1, ...)
  bool starts_document = false;
  std::string text;
};

class DocumentReader {
 public:
  DocumentReader(std::vector<InputFile> files, std::string jsonl_text_key,
                 std::function<void(const std::string&)> log);
  ~DocumentReader();

  // Appends units holding at least `bytes` of text (less at the end); false when nothing is left.
  bool next_batch(size_t bytes, std::vector<TextUnit>& units);

  int64_t documents() const { return next_document_; }
  int64_t disk_bytes_read() const;  // of the input files as stored (progress, ETA)
  int64_t text_bytes_read() const { return text_bytes_; }
  const std::vector<std::string>& sources() const { return sources_; }
  int skipped_binary() const { return skipped_binary_; }

 private:
  class Stream;
  bool open_next_file();
  void read_plain(size_t bytes, std::vector<TextUnit>& units, size_t& produced);
  void read_jsonl(size_t bytes, std::vector<TextUnit>& units, size_t& produced);

  std::vector<InputFile> files_;
  std::string key_;
  std::function<void(const std::string&)> log_;
  size_t file_index_ = 0;
  std::unique_ptr<Stream> stream_;
  std::string pending_;  // read but not yet handed out
  bool starts_document_ = false;
  int64_t line_ = 0, next_document_ = 0, text_bytes_ = 0, finished_disk_bytes_ = 0;
  std::vector<std::string> sources_;
  int skipped_binary_ = 0;
};

}  // namespace attn
