// Small helpers shared by the test suites.
#pragma once
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"

namespace attn::testing {

// A fresh temporary directory for one test, removed when the test ends.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag = "test") {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("attn_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// A file or folder of the shared data next to the repository ("data/gpt2",
// "data/tinyshakespeare/input.txt"): under $ATTN_SHARED_DIR, ../shared or shared/ of the
// source tree, or /work/shared; "" when none has it (tests then GTEST_SKIP naming it).
inline std::string shared_data(const std::string& relative) {
  std::vector<std::filesystem::path> roots;
  if (const char* env = std::getenv("ATTN_SHARED_DIR")) roots.emplace_back(env);
#ifdef ATTN_SOURCE_DIR
  roots.emplace_back(std::filesystem::path(ATTN_SOURCE_DIR) / ".." / "shared");
  roots.emplace_back(std::filesystem::path(ATTN_SOURCE_DIR) / "shared");
#endif
  roots.emplace_back("/work/shared");
  for (const auto& root : roots)
    if (std::filesystem::exists(root / relative)) return (root / relative).lexically_normal().string();
  return "";
}

// The message of the attn::Error that f throws ("" when it throws none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const attn::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace attn::testing
