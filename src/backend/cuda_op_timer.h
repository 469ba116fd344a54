// Times named calls on one CUDA stream by category and name (OpTag): a cudaEvent pair recorded around each
// call (only while enabled: otherwise nothing is recorded and nothing synchronises). The
// pairs are read back when the backend synchronises anyway (collect(false) after a stream
// sync) or, from profile(), after waiting once for the last event. Events are pooled and
// reused after they have been read.
#pragma once
#include <cuda_runtime.h>

#include <utility>
#include <vector>

#include "core/cuda_check.h"
#include "core/step_profile.h"

namespace attn {

class CudaOpTimer {
 public:
  explicit CudaOpTimer(cudaStream_t stream) : stream_(stream) {}
  ~CudaOpTimer() {
    for (cudaEvent_t e : pool_) cudaEventDestroy(e);
  }
  CudaOpTimer(const CudaOpTimer&) = delete;
  CudaOpTimer& operator=(const CudaOpTimer&) = delete;

  void set_enabled(bool on) {
    if (!on) collect(/*wait=*/true);
    enabled_ = on;
  }

  template <typename F>
  void time(const OpTag& op, F&& call) {
    if (!enabled_) {
      std::forward<F>(call)();
      return;
    }
    cudaEvent_t begin = next_event(), end = next_event();
    CUDA_CHECK(cudaEventRecord(begin, stream_));
    std::forward<F>(call)();
    CUDA_CHECK(cudaEventRecord(end, stream_));
    pending_.push_back({op, begin, end});
  }

  // Adds the recorded pairs to the profile. wait = false only right after a stream sync.
  void collect(bool wait) const {
    if (pending_.empty()) return;
    if (wait) CUDA_CHECK(cudaEventSynchronize(pending_.back().end));
    for (const Pair& p : pending_) {
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, p.begin, p.end));
      profile_.add(p.op, ms);
    }
    pending_.clear();
    used_ = 0;  // every pooled event has completed: reusable
  }

  StepProfile profile() const {
    collect(/*wait=*/true);
    return profile_;
  }
  void reset() {
    collect(/*wait=*/true);
    profile_ = StepProfile{};
  }

 private:
  struct Pair {
    OpTag op;
    cudaEvent_t begin, end;
  };
  cudaEvent_t next_event() {
    if (used_ == pool_.size()) {
      cudaEvent_t e = nullptr;
      CUDA_CHECK(cudaEventCreate(&e));
      pool_.push_back(e);
    }
    return pool_[used_++];
  }

  cudaStream_t stream_;
  bool enabled_ = false;
  std::vector<cudaEvent_t> pool_;
  mutable size_t used_ = 0;
  mutable std::vector<Pair> pending_;
  mutable StepProfile profile_;
};

}  // namespace attn
