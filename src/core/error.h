// Errors: one exception type for every user-facing failure (bad config, corrupt file,
// out-of-range token, NaN loss, out of memory). The CLI catches it, prints one line,
// and exits non-zero. Messages name the thing at fault (key, file, category).
#pragma once
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace attn {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// fail("shard {}: truncated", path) -> throws attn::Error with the formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace attn

// ATTN_CHECK(cond, "message {}", x): throws attn::Error when cond is false.
#define ATTN_CHECK(cond, ...)         \
  do {                                \
    if (!(cond)) ::attn::fail(__VA_ARGS__); \
  } while (0)
