#include "io/text_file.h"

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

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  ATTN_CHECK(out.good(), "cannot write '{}'", path);
  out << text;
  out.flush();
  ATTN_CHECK(out.good(), "writing '{}' failed (disk full?)", path);
}

}  // namespace attn
