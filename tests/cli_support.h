// The attnlab program run as a user runs it (tests/test_cli.cpp, tests/test_faults.cpp): a
// fresh folder with a small text per test, the binary through the shell, and the check that
// a failure is one "error: " line with exit code 1.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include <signal.h>
#include <unistd.h>

namespace fs = std::filesystem;
namespace {

struct RunResult {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Cli : public ::testing::Test {
 protected:
  fs::path root;
  void SetUp() override {
    root = fs::temp_directory_path() / ("attn_cli_" + std::to_string(std::random_device{}()));
    fs::create_directories(root / "text");
    std::mt19937 rng(std::random_device{}());
    std::ofstream out(root / "text" / "a.txt");
    for (int i = 0; i < 3000; ++i) out << "lorem ipsum dolor sit amet consectetur"[rng() % 38];
  }
  void TearDown() override { fs::remove_all(root); }

  // `prefix` runs first in the same shell (e.g. "ulimit -f 64;").
  RunResult run(const std::string& args, const std::string& prefix = "") {
    const std::string cmd = prefix + std::string(ATTN_BINARY) + " " + args + " > " + (root / "stdout").string() + " 2> " +
                            (root / "stderr").string();
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(root / "stdout"), slurp(root / "stderr")};
  }
  std::string tiny() const {
    return "--model.n_layer=1 --model.n_head=2 --model.n_embd=16 --model.block_size=16 --training.batch_size=2 "
           "--training.eval_iters=1 --training.eval_interval=0 --device.backend=cpu --data.tokenizer=char "
           "--data.inputs='[\"" + (root / "text").string() + "\"]' --data.dir=\"" + (root / "data").string() +
           "\" --training.out_dir=\"" + (root / "run").string() + "\"";
  }
  // Starts `attnlab ARGS > log 2>&1` in the background (own process group); returns its pid.
  pid_t spawn(const std::string& args, const fs::path& log) {
    const std::string cmd = "exec " + std::string(ATTN_BINARY) + " " + args + " > " + log.string() + " 2>&1";
    const pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  }
  // Waits (at most 120 s) until `file` exists and contains `needle`.
  static bool wait_for(const fs::path& file, const std::string& needle = "") {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline) {
      if (fs::exists(file) && slurp(file).find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  // Exit code of a spawned process (-1 when a signal ended it; the signal in *sig).
  static int wait_exit(pid_t pid, int* sig = nullptr) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (sig) *sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  // One error line on stderr that contains `needle`, and exit code 1.
  void expect_error(const RunResult& r, const std::string& needle) {
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
};

}  // namespace
