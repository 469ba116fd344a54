#include "io/text_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace attn {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ATTN_CHECK(in.good(), "cannot read '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string write_failure(const std::string& path, int err) {
  if (err == 0 || err == ENOSPC || err == EFBIG || err == EDQUOT)
    return fmt::format("writing '{}' failed (disk full or file-size limit{}{})", path, err ? ": " : "",
                       err ? std::strerror(err) : "");
  return fmt::format("writing '{}' failed ({})", path, std::strerror(err));
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  ATTN_CHECK(out.good(), "cannot write '{}' ({})", path, std::strerror(errno));
  errno = 0;
  out << text;
  out.flush();
  if (!out.good()) fail("{}", write_failure(path, errno));
}

}  // namespace attn
