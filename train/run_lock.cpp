#include "train/run_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "core/error.h"

namespace attn {

namespace {
std::string read_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  std::string s(buf, n > 0 ? static_cast<size_t>(n) : 0);
  s.erase(s.find_last_not_of(" \n") + 1);
  return s;
}
}  // namespace

RunLock::RunLock(const std::string& out_dir, const std::function<void(const std::string&)>& note) {
  const std::string path = (std::filesystem::path(out_dir) / "lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ATTN_CHECK(fd_ >= 0, "cannot open the run lock {} ({})", path, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const std::string holder = read_pid(fd_);
    ::close(fd_);
    fd_ = -1;
    fail("{} is in use by another trainer (pid {}, lock {}); wait for it to end or train into another "
         "training.out_dir",
         out_dir, holder.empty() ? std::string("unknown") : holder, path);
  }
  const std::string previous = read_pid(fd_);
  if (!previous.empty())
    note(fmt::format("note: took over the stale lock {} of pid {}, which is no longer running", path, previous));
  const std::string mine = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, mine.data(), mine.size(), 0) != static_cast<ssize_t>(mine.size())) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    fail("writing {} failed ({})", path, std::strerror(err));
  }
}

RunLock::~RunLock() {
  if (fd_ < 0) return;
  (void)!::ftruncate(fd_, 0);  // a clean end leaves no pid behind: only a dead trainer's lock is stale
  ::close(fd_);
}

}  // namespace attn
