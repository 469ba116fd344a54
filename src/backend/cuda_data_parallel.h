// Data parallelism inside the CUDA backend: bucketed gradient all-reduce overlapped with
// backward, and ZeRO-1 (sharded AdamW), over a Communicator (NCCL).
//
// Plain (distributed.zero = 0): the gradient buckets of buckets.h are all-reduced (mean) on
// a second stream, each launched as soon as backward has produced its gradients:
//   compute: ... layer l backward ─ record ev[b] ─ layer l-1 backward ...   ─ wait(done) ─ norm, AdamW
//   comm:                 wait(ev[b]) ─ all_reduce_mean(bucket b) ... ─ record done
// only on the last micro-step of accumulation. The compute stream's wait for `done` is
// timed as "communication": the part of the all-reduce backward did not hide.
//
// ZeRO-1 (distributed.zero = 1): after backward, g[shard r] <- mean over ranks
// (reduce_scatter, in place); |g|^2 = sum over ranks of |g[shard]|^2; AdamW on
// params[shard] with m, v allocated for the shard only; then, in fp32,
// params <- all_gather(shards); in bf16, AdamW writes the bf16 copy of its shard and only the
// bf16 copy is all-gathered (half the bytes, no full-buffer cast): the fp32 master stays
// sharded until gather_master() (checkpoints).
// (Not overlapped: the reduce-scatter runs after backward, on the compute stream.)
//
// Parameter and gradient buffers must be padded_floats(total) long (zeros past total).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <vector>

#include "backend/backend.h"
#include "backend/cuda_memory.h"
#include "backend/cuda_op_timer.h"
#include "distributed/buckets.h"
#include "distributed/comm.h"

namespace attn {

class CudaDataParallel {
 public:
  // Length for parameter/gradient buffers: total rounded up to 840 * kAlign floats, which
  // ZeRO-1 can split evenly for any world size 1..8 (840 = lcm(1..8)); for more ranks the
  // constructor checks.
  static size_t padded_floats(size_t total);

  CudaDataParallel(Communicator& comm, bool zero1, size_t bucket_bytes, const ParamLayout& layout, CudaAllocator& mem,
                   cudaStream_t compute, CudaOpTimer& timer);
  ~CudaDataParallel();
  CudaDataParallel(const CudaDataParallel&) = delete;
  CudaDataParallel& operator=(const CudaDataParallel&) = delete;

  bool zero1() const { return zero1_; }

  // Backward has queued everything of `stage` on the compute stream (buckets.h: n_layer =
  // ln_f, l = layer l, -1 = embeddings, the end). Launches the buckets that became ready;
  // at -1 also makes the compute stream wait for every bucket (ZeRO-1: reduce-scatters).
  void backward_stage_done(int stage, float* grads);

  // ZeRO-1 only. Squared global norm of the averaged gradient, from the shards (collective).
  double grad_norm_squared(const float* grads, float* norm_partials, double* norm_out);
  // AdamW on this rank's shard, then the parameters all-gathered: the bf16 copy when
  // params_bf16 (padded_floats long), else the fp32 params.
  void adamw_step(float* params, __nv_bfloat16* params_bf16, const float* grads, const AdamWConfig& c, float lr,
                  float grad_multiplier, int64_t t);
  // fp32 params <- all_gather(shards) (collective): the whole master after bf16 steps.
  void gather_master(float* params);
  // Whole host moment buffers (layout.total() floats). get uses `scratch` (a padded buffer,
  // e.g. the gradients, consumed by then) and is collective.
  void get_moments(float* m, float* v, float* scratch);
  void set_moments(const float* m, const float* v);

 private:
  Communicator& comm_;
  bool zero1_;
  const ParamLayout& layout_;
  CudaAllocator& mem_;
  cudaStream_t compute_;
  CudaOpTimer& timer_;
  cudaStream_t comm_stream_ = nullptr;
  std::vector<GradBucket> buckets_;
  std::vector<cudaEvent_t> ready_;  // per bucket: backward has produced it
  cudaEvent_t done_ = nullptr;      // every bucket all-reduced
  ZeroShards shards_;
  float *m_ = nullptr, *v_ = nullptr;  // ZeRO-1: this rank's shard of the moments
  uint32_t* shard_decay_bits_ = nullptr;
};

}  // namespace attn
