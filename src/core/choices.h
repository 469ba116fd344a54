// A string option's allowed values as one list, used by its check and by its error message,
// so the two cannot drift apart.
#pragma once
#include <algorithm>
#include <span>
#include <string>
#include <string_view>

namespace attn {

inline bool is_one_of(std::string_view value, std::span<const std::string_view> names) {
  return std::find(names.begin(), names.end(), value) != names.end();
}

// `names` as English: a, b or c; each in double quotes when `quoted` ("a", "b" or "c").
inline std::string or_list(std::span<const std::string_view> names, bool quoted) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    if (quoted) out += '"';
    out += names[i];
    if (quoted) out += '"';
  }
  return out;
}

}  // namespace attn
