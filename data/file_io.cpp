// Whole-file read and atomic write (see file_io.h).
#include "data/file_io.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/text_file.h"

namespace attn {

std::string read_file_bytes(const std::string& path, std::string_view what) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail("{} {}: does not exist", what, path);
  if (std::filesystem::is_directory(path, ec)) fail("{} {}: is a directory, expected a file", what, path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{} {}: cannot open ({})", what, path, std::strerror(errno));
  std::string bytes;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) fail("{} {}: cannot determine its size", what, path);
  bytes.resize(static_cast<size_t>(size));
  in.seekg(0, std::ios::beg);
  if (size > 0 && !in.read(bytes.data(), size)) fail("{} {}: read failed", what, path);
  return bytes;
}

void write_file_atomic(const std::string& path, std::string_view bytes, std::string_view what) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("{} {}: cannot create {} ({})", what, path, tmp, std::strerror(errno));
    errno = 0;
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      const int err = errno;
      std::remove(tmp.c_str());
      fail("{} {}: {}", what, path, write_failure(tmp, err));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail("{} {}: cannot rename {} onto it ({})", what, path, tmp, ec.message());
  }
}

}  // namespace attn
