#include "train/launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "distributed/launch_env.h"

namespace attn {

namespace {

volatile std::sig_atomic_t g_forward_signal = 0;
void remember_signal(int sig) { g_forward_signal = sig; }

// A TCP port free right now on 127.0.0.1 (the kernel picks it; rank 0 binds it moments later).
int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ATTN_CHECK(fd >= 0, "launcher: socket() failed: {}", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  ATTN_CHECK(ok, "launcher: cannot find a free TCP port on 127.0.0.1: {}", std::strerror(errno));
  return ntohs(a.sin_port);
}

std::string describe(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return "stopped";
}

}  // namespace

bool launched_as_rank() { return detect_dist_env(process_env()).source != "none"; }

int run_local_ranks(int nproc, const std::vector<std::string>& argv, double grace_s) {
  ATTN_CHECK(nproc >= 1, "distributed.nproc = {} must be >= 1", nproc);
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  const int port = free_local_port();
  std::fflush(stdout), std::fflush(stderr);

  struct sigaction sa{};
  sa.sa_handler = remember_signal;  // no SA_RESTART: waitpid returns EINTR and we forward
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int{}, old_term{};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);

  std::vector<pid_t> pids(nproc, -1);
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = ::fork();
    ATTN_CHECK(pid >= 0, "launcher: fork() of rank {} failed: {}", r, std::strerror(errno));
    if (pid == 0) {
      ::setpgid(0, 0);                    // terminal signals reach the launcher only, which forwards them once
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // no orphan ranks if the launcher dies
      ::signal(SIGINT, SIG_DFL), ::signal(SIGTERM, SIG_DFL);
      for (const auto& [k, v] : std::vector<std::pair<const char*, std::string>>{
               {"RANK", std::to_string(r)}, {"LOCAL_RANK", std::to_string(r)}, {"WORLD_SIZE", std::to_string(nproc)},
               {"LOCAL_WORLD_SIZE", std::to_string(nproc)}, {"MASTER_ADDR", "127.0.0.1"},
               {"MASTER_PORT", std::to_string(port)}})
        ::setenv(k, v.c_str(), 1);
      std::vector<char*> args;
      args.push_back(const_cast<char*>(exe.c_str()));
      for (size_t i = 1; i < argv.size(); ++i) args.push_back(const_cast<char*>(argv[i].c_str()));
      args.push_back(nullptr);
      ::execv(exe.c_str(), args.data());
      std::fprintf(stderr, "error: rank %d: cannot exec %s: %s\n", r, exe.c_str(), std::strerror(errno));
      ::_exit(127);
    }
    pids[r] = pid;
  }

  auto signal_alive = [&](int sig) {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, sig);
  };
  int alive = nproc, failed_rank = -1, failed_status = 0;
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (alive > 0) {
    if (const int sig = g_forward_signal; sig != 0) {
      g_forward_signal = 0;
      signal_alive(sig);
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, failed_rank >= 0 ? WNOHANG : 0);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) break;  // no children left
    if (pid == 0) {      // after a failure: wait for the others, within the grace period
      if (std::chrono::steady_clock::now() > deadline) signal_alive(SIGKILL), deadline = deadline.max();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    const auto it = std::find(pids.begin(), pids.end(), pid);
    if (it == pids.end()) continue;
    *it = -1, --alive;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok && failed_rank < 0) {
      failed_rank = static_cast<int>(it - pids.begin()), failed_status = status;
      signal_alive(SIGTERM);
      deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                         std::chrono::duration<double>(grace_s));
    }
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (failed_rank < 0) return 0;
  std::fprintf(stderr, "error: rank %d of %d %s; the other ranks were stopped\n", failed_rank, nproc,
               describe(failed_status).c_str());
  return 1;
}

}  // namespace attn
