#include "train/environment.h"

#include <unistd.h>

#include <ctime>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "io/text_file.h"
#include "train/subprocess.h"

namespace attn {

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(0, 1);
  return s;
}

// This process's argv as a shell would need it typed: words with spaces or quotes in '...'.
std::string command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()), out;
  std::istringstream words(all);
  for (std::string w; std::getline(words, w, '\0');) {
    const bool plain = !w.empty() && w.find_first_of(" \t\"'\\$`*?;&|<>()") == std::string::npos;
    if (!out.empty()) out += ' ';
    if (plain) {
      out += w;
      continue;
    }
    out += '\'';
    for (char c : w) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

std::string commit() {
  if (const char* c = std::getenv("ATTN_COMMIT"); c != nullptr && *c != '\0') return c;
  const std::string head = trimmed(command_output("git rev-parse HEAD 2>/dev/null"));
  if (head.empty()) return "unknown (not run from a git checkout)";
  const bool dirty = !trimmed(command_output("git status --porcelain --untracked-files=no 2>/dev/null")).empty();
  return dirty ? head + " (with uncommitted changes)" : head;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos)
      return trimmed(line.substr(line.find(':') + 1));
  return "unknown";
}

}  // namespace

nlohmann::json describe_environment(const std::string& backend) {
  nlohmann::json gpus = nlohmann::json::array();
  std::istringstream smi(command_output(
      "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null"));
  for (std::string line; std::getline(smi, line);) {
    std::vector<std::string> f;
    std::istringstream fields(line);
    for (std::string x; std::getline(fields, x, ',');) f.push_back(trimmed(x));
    if (f.size() == 3) gpus.push_back({{"name", f[0]}, {"memory", f[1]}, {"driver", f[2]}});
  }
  // the CUDA version the driver supports, from nvidia-smi's header line "... CUDA Version: 12.8 |"
  std::string cuda_driver;
  const std::string header = command_output("nvidia-smi 2>/dev/null");
  if (const size_t at = header.find("CUDA Version:"); at != std::string::npos) {
    std::istringstream rest(header.substr(at + 13));
    rest >> cuda_driver;
  }
#if defined(ATTN_CUDA_TOOLKIT_VERSION)
  const std::string toolkit = ATTN_CUDA_TOOLKIT_VERSION;
#else
  const std::string toolkit;  // a CPU-only build
#endif
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return {{"command", command_line()},
          {"cwd", std::filesystem::current_path().string()},
          {"date", fmt::format("{:%Y-%m-%d %H:%M:%S} UTC", fmt::gmtime(std::time(nullptr)))},
          {"host", host},
          {"commit", commit()},
          {"backend", backend},
          {"gpus", gpus},
          {"cuda_driver", cuda_driver},
          {"cuda_toolkit", toolkit},
          {"cpu", cpu_model()},
          {"cpu_threads", static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN))}};
}

void write_environment(const std::string& dir, const std::string& backend) {
  std::filesystem::create_directories(dir);
  write_text_file((std::filesystem::path(dir) / "env.json").string(), describe_environment(backend).dump(2) + "\n");
}

}  // namespace attn
