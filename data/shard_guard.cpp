#include "data/shard_guard.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>

#include "core/error.h"

namespace attn {

namespace {

bool stat_of(const std::string& path, uint64_t& inode, uint64_t& bytes, int64_t& mtime_ns) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  inode = st.st_ino, bytes = static_cast<uint64_t>(st.st_size);
  mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return true;
}

// The live mappings, readable from a signal handler: fixed slots, `begin` published last.
struct Mapping {
  std::atomic<uintptr_t> begin{0};
  size_t bytes = 0;
  char path[1024] = {};
};
constexpr int kSlots = 256;
Mapping g_maps[kSlots];
std::mutex g_maps_mutex;

void write_all(const char* s) { (void)!::write(2, s, std::strlen(s)); }

void on_sigbus(int sig, siginfo_t* info, void*) {
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (const Mapping& m : g_maps) {
    const uintptr_t b = m.begin.load(std::memory_order_acquire);
    if (b != 0 && addr >= b && addr < b + m.bytes) {
      write_all("error: shard ");
      write_all(m.path);
      write_all(" changed while training (truncated under the memory map); re-run `attnlab prepare` into a new "
                "folder, not the one a run is reading\n");
      ::_exit(1);
    }
  }
  ::signal(sig, SIG_DFL);  // not ours: the default action (core dump)
  ::raise(sig);
}

}  // namespace

ShardWatch::ShardWatch(const std::vector<std::string>& paths) {
  for (const std::string& p : paths) {
    Seen s;
    s.path = p;
    ATTN_CHECK(stat_of(p, s.inode, s.bytes, s.mtime_ns), "shard {}: cannot stat it", p);
    seen_.push_back(s);
  }
}

void ShardWatch::check() const {
  for (const Seen& s : seen_) {
    Seen now;
    ATTN_CHECK(stat_of(s.path, now.inode, now.bytes, now.mtime_ns), "shard {} changed while training (it is gone)",
               s.path);
    ATTN_CHECK(now.inode == s.inode && now.bytes == s.bytes && now.mtime_ns == s.mtime_ns,
               "shard {} changed while training ({} bytes, was {}{}); the run's data must stay as it was: prepare "
               "new data into another folder",
               s.path, now.bytes, s.bytes, now.inode != s.inode ? ", replaced by another file" : ", modified");
  }
}

void register_shard_mapping(const void* begin, size_t bytes, const std::string& path) {
  std::lock_guard<std::mutex> lock(g_maps_mutex);
  for (Mapping& m : g_maps) {
    if (m.begin.load(std::memory_order_relaxed) != 0) continue;
    m.bytes = bytes;
    std::strncpy(m.path, path.c_str(), sizeof(m.path) - 1);
    m.begin.store(reinterpret_cast<uintptr_t>(begin), std::memory_order_release);
    return;
  }  // all slots taken: this mapping is simply not named on SIGBUS
}

void unregister_shard_mapping(const void* begin) {
  std::lock_guard<std::mutex> lock(g_maps_mutex);
  for (Mapping& m : g_maps)
    if (m.begin.load(std::memory_order_relaxed) == reinterpret_cast<uintptr_t>(begin)) {
      m.begin.store(0, std::memory_order_release);
      return;
    }
}

void install_shard_fault_handler() {
  struct sigaction sa {};
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGBUS, &sa, nullptr);
}

}  // namespace attn
