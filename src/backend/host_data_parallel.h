// Data parallelism for a backend that keeps its buffers in host memory (the CPU backend):
// gradient averaging and ZeRO-1 over a Communicator (distributed/comm.h).
//
//   plain:  grads <- mean over ranks (all_reduce_mean), then every rank runs the same AdamW.
//   ZeRO-1: g_shard <- mean over ranks of grads[shard] (reduce_scatter_mean over the buffer
//           padded to ZeroShards::padded_total); |g|^2 = sum over ranks of |g_shard|^2;
//           AdamW on params[shard] with moments held for the shard only; params <- all_gather.
#pragma once
#include <vector>

#include "backend/backend.h"
#include "distributed/buckets.h"
#include "distributed/comm.h"

namespace attn {

class HostDataParallel {
 public:
  HostDataParallel(Communicator& comm, bool zero1, const ParamLayout& layout);
  bool zero1() const { return zero1_; }

  // After the last micro-step's backward: plain: grads averaged in place; ZeRO-1: this
  // rank's shard of the average kept here (grads itself is left as it was).
  void sync_grads(float* grads);
  // Squared global norm of the averaged gradient (ZeRO-1: from the shards; collective).
  double grad_norm_squared();
  // ZeRO-1 AdamW on this rank's shard, then the parameters all-gathered (collective).
  void adamw_step(float* params, const AdamWConfig& cfg, float lr, float grad_multiplier, int64_t t);
  // Whole moment buffers (layout.total() floats) from/to the shards (get is collective).
  void get_moments(float* m, float* v);
  void set_moments(const float* m, const float* v);
  size_t moment_floats() const { return m_.size(); }  // per moment, on this rank

 private:
  Communicator& comm_;
  bool zero1_;
  const ParamLayout& layout_;
  ZeroShards shards_;
  std::vector<float> padded_;              // a padded whole buffer for the collectives
  std::vector<float> grad_shard_, m_, v_;  // ZeRO-1: this rank's shard
};

}  // namespace attn
