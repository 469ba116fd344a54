#include "train/signals.h"

#include <atomic>
#include <csignal>
#include <unistd.h>

namespace attn {

namespace {
std::atomic<bool> g_stop{false};

void on_signal(int sig) {
  if (g_stop.exchange(true)) {  // second signal: give up at once
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  const char msg[] = "\n[attnlab] stop requested: finishing this step and saving a checkpoint (again to abort)\n";
  (void)!::write(2, msg, sizeof(msg) - 1);
}
}  // namespace

void install_stop_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}
bool stop_requested() { return g_stop.load(); }
void request_stop() { g_stop.store(true); }
void clear_stop_request() { g_stop.store(false); }

}  // namespace attn
