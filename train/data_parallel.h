// The data-parallel side of a training run: which rank this process is, the rendezvous
// (kept for the host-side scalar reductions: losses, stop requests), the communicator the
// backend averages gradients with, and the rule mapping ranks to micro-batches.
//
// Batch rule (same model as one process with the same global batch): rank r of W, micro-step
// m of A, draws the one-process run's micro-batch (m * W + r) of a run with grad_accum A * W
// (same data, same dropout masks), scales its gradient by 1 / A and the ranks average; so
// W ranks with grad_accum A compute the gradient of 1 rank with grad_accum A * W, up to the
// order of the floating-point sums. Ranks read disjoint micro-batches by construction.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/config.h"
#include "distributed/comm.h"
#include "distributed/launch_env.h"
#include "distributed/rendezvous.h"

namespace attn {

class DataParallelRun {
 public:
  // World size 1: no rendezvous, nothing to do. Otherwise connects to the other ranks
  // (bounded by distributed.timeout_s), checks they run the same config (hash of
  // config_toml) and, for the cuda backend, selects CUDA device env.local_rank.
  DataParallelRun(const DistEnv& env, const Config& cfg, const std::string& config_toml);

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_root() const { return env_.rank == 0; }
  bool active() const { return env_.world_size > 1; }

  // After make_backend: builds the communicator (NCCL for cuda, TCP for cpu) and hands it
  // to the backend (distributed.zero, distributed.bucket_mb).
  void attach(Backend& backend, const Config& cfg);

  // The one-process micro-step index this rank's micro-step m stands for.
  int global_micro(int m) const { return m * env_.world_size + env_.rank; }

  // Element-wise sums over the ranks of a few host doubles (collective; rank order, so every
  // rank gets the same bits).
  std::vector<double> sum(const std::vector<double>& mine);

 private:
  DistEnv env_;
  std::unique_ptr<Rendezvous> rv_;
  std::unique_ptr<Communicator> comm_;
};

}  // namespace attn
