// One trainer per run directory: <out_dir>/lock holds the trainer's pid and an exclusive
// flock for as long as it runs. The kernel drops the flock when the process dies however it
// dies, so a lock file whose flock is free is stale (its pid is gone): it is taken over with a
// note. A second trainer gets one error naming the holder's pid, before it writes anything.
#pragma once
#include <functional>
#include <string>

namespace attn {

class RunLock {
 public:
  RunLock(const std::string& out_dir, const std::function<void(const std::string&)>& note);
  ~RunLock();  // empties the pid file, then releases the flock
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace attn
