// Whole small text files (JSON, TOML, README, the `latest` pointer), read and written in
// one piece; every failure throws attn::Error naming the file.
#pragma once
#include <string>

namespace attn {

// The file's bytes as they are (binary mode: no newline translation).
std::string read_text_file(const std::string& path);

// "writing 'PATH' failed (disk full or file-size limit: No space left on device)" for the
// errno a failed write left (ENOSPC, EFBIG, EDQUOT, or 0 when the stream did not say),
// "writing 'PATH' failed (Permission denied)" for others.
std::string write_failure(const std::string& path, int err);

// Replaces the file with `text` and checks that the write reached the stream (disk full).
void write_text_file(const std::string& path, const std::string& text);

}  // namespace attn
