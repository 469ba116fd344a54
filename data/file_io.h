// Small whole-file helpers shared by the data layer: read a file into a string and
// write a file atomically (to path + ".tmp", then rename), so a crash never leaves
// a half-written tokenizer, shard or meta file under its final name.
#pragma once
#include <string>
#include <string_view>

namespace attn {

// Reads the whole file; throws attn::Error "<what> <path>: ..." when it cannot.
std::string read_file_bytes(const std::string& path, std::string_view what = "file");

// Writes `bytes` to path + ".tmp" and renames it onto path; throws attn::Error on failure.
void write_file_atomic(const std::string& path, std::string_view bytes, std::string_view what = "file");

}  // namespace attn
