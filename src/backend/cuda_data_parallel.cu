#include "backend/cuda_data_parallel.h"

#include <algorithm>
#include <cmath>

#include "core/cuda_check.h"
#include "core/error.h"
#include "kernels/kernels.h"

namespace attn {

size_t CudaDataParallel::padded_floats(size_t total) {
  const size_t unit = 840 * ParamLayout::kAlign;
  return (total + unit - 1) / unit * unit;
}

CudaDataParallel::CudaDataParallel(Communicator& comm, bool zero1, size_t bucket_bytes, const ParamLayout& layout,
                                   CudaAllocator& mem, cudaStream_t compute, CudaOpTimer& timer)
    : comm_(comm), zero1_(zero1), layout_(layout), mem_(mem), compute_(compute), timer_(timer) {
  const size_t n = layout_.total();
  if (zero1_) {
    shards_ = plan_zero_shards(n, comm_.world_size());
    ATTN_CHECK(shards_.padded_total <= padded_floats(n),
               "distributed.zero = 1 with {} ranks: the parameter buffer cannot be split evenly (use 1 to 8 ranks "
               "per ZeRO-1 group, or distributed.zero = 0)",
               comm_.world_size());
    const size_t s = shards_.shard_size;
    m_ = mem_.allocate_n<float>(s, MemCategory::Optimizer);
    v_ = mem_.allocate_n<float>(s, MemCategory::Optimizer);
    CUDA_CHECK(cudaMemsetAsync(m_, 0, s * sizeof(float), compute_));
    CUDA_CHECK(cudaMemsetAsync(v_, 0, s * sizeof(float), compute_));
    // Decay bit c covers shard floats [64c, 64c + 64): the shard starts on a 64-float
    // boundary, so each chunk lies in one tensor (or padding) as in the whole buffer.
    const size_t sb = shards_.begin(comm_.rank()), chunks = (s + 63) / 64;
    std::vector<uint32_t> bits((chunks + 31) / 32, 0u);
    for (const ParamTensor& t : layout_.tensors()) {
      if (!t.decay()) continue;
      const size_t lo = std::max(t.offset, sb), hi = std::min(t.offset + t.numel, sb + s);
      for (size_t i = lo; i < hi; i += 64) {
        const size_t c = (i - sb) / 64;
        bits[c / 32] |= 1u << (c % 32);
      }
    }
    shard_decay_bits_ = mem_.allocate_n<uint32_t>(bits.size(), MemCategory::Optimizer);
    CUDA_CHECK(cudaMemcpyAsync(shard_decay_bits_, bits.data(), bits.size() * sizeof(uint32_t), cudaMemcpyHostToDevice,
                               compute_));
    CUDA_CHECK(cudaStreamSynchronize(compute_));  // `bits` dies here
    return;
  }
  CUDA_CHECK(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking));
  buckets_ = plan_grad_buckets(layout_, bucket_bytes);
  ready_.resize(buckets_.size(), nullptr);
  for (cudaEvent_t& e : ready_) CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
}

CudaDataParallel::~CudaDataParallel() {  // destructors do not throw: best effort
  if (comm_stream_) cudaStreamSynchronize(comm_stream_);
  for (cudaEvent_t e : ready_) cudaEventDestroy(e);
  if (done_) cudaEventDestroy(done_);
  if (comm_stream_) cudaStreamDestroy(comm_stream_);
  for (void* p : {static_cast<void*>(m_), static_cast<void*>(v_), static_cast<void*>(shard_decay_bits_)})
    if (p) mem_.release(p);
}

void CudaDataParallel::backward_stage_done(int stage, float* grads) {
  if (zero1_) {
    if (stage != -1) return;
    // In place: rank r's shard of the mean lands at grads + r * shard_size.
    timer_.time(OpCategory::Communication, [&] {
      comm_.reduce_scatter_mean(grads, grads + shards_.begin(comm_.rank()), shards_.shard_size, compute_);
    });
    return;
  }
  for (size_t b = 0; b < buckets_.size(); ++b) {
    if (buckets_[b].ready_after != stage) continue;
    CUDA_CHECK(cudaEventRecord(ready_[b], compute_));
    CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, ready_[b], 0));
    comm_.all_reduce_mean(grads + buckets_[b].begin, buckets_[b].size(), comm_stream_);
  }
  if (stage == -1) {
    CUDA_CHECK(cudaEventRecord(done_, comm_stream_));
    timer_.time(OpCategory::Communication, [&] { CUDA_CHECK(cudaStreamWaitEvent(compute_, done_, 0)); });
  }
}

double CudaDataParallel::grad_norm_squared(const float* grads, float* norm_partials, double* norm_out) {
  timer_.time(OpCategory::Optimizer, [&] {
    kern::global_norm_squared(norm_out, norm_partials, grads + shards_.begin(comm_.rank()), shards_.shard_size,
                              compute_);
  });
  // summed over ranks on the device (float64): one wait for the host
  timer_.time(OpCategory::Communication, [&] { comm_.all_reduce_sum(norm_out, 1, compute_); });
  double sum = 0;
  CUDA_CHECK(cudaMemcpyAsync(&sum, norm_out, sizeof(double), cudaMemcpyDeviceToHost, compute_));
  CUDA_CHECK(cudaStreamSynchronize(compute_));
  return sum;
}

void CudaDataParallel::adamw_step(float* params, __nv_bfloat16* params_bf16, const float* grads,
                                  const AdamWConfig& c, float lr, float grad_multiplier, int64_t t) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(c.beta1), static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(static_cast<double>(c.beta2), static_cast<double>(t));
  const size_t sb = shards_.begin(comm_.rank()), s = shards_.shard_size;
  timer_.time(OpCategory::Optimizer, [&] {
    kern::adamw_update(params + sb, grads + sb, m_, v_, params_bf16 ? params_bf16 + sb : nullptr, shard_decay_bits_,
                       s, lr, c.beta1, c.beta2, static_cast<float>(bc1), static_cast<float>(bc2), c.eps,
                       c.weight_decay, grad_multiplier, compute_);
  });
  timer_.time(OpCategory::Communication, [&] {
    if (params_bf16)
      comm_.all_gather_bytes(params_bf16 + sb, params_bf16, s * sizeof(__nv_bfloat16), compute_);
    else
      gather_master(params);
  });
}

void CudaDataParallel::gather_master(float* params) {
  comm_.all_gather(params + shards_.begin(comm_.rank()), params, shards_.shard_size, compute_);
}

void CudaDataParallel::get_moments(float* m, float* v, float* scratch) {
  const size_t s = shards_.shard_size, n = layout_.total();
  for (auto [shard, host] : {std::pair{m_, m}, std::pair{v_, v}}) {
    comm_.all_gather(shard, scratch, s, compute_);
    CUDA_CHECK(cudaMemcpyAsync(host, scratch, n * sizeof(float), cudaMemcpyDeviceToHost, compute_));
    CUDA_CHECK(cudaStreamSynchronize(compute_));
  }
}

void CudaDataParallel::set_moments(const float* m, const float* v) {
  const size_t sb = shards_.begin(comm_.rank()), s = shards_.shard_size, n = layout_.total();
  const size_t have = sb < n ? std::min(s, n - sb) : 0;  // the shard's floats inside the layout
  for (auto [shard, host] : {std::pair{m_, m}, std::pair{v_, v}}) {
    CUDA_CHECK(cudaMemsetAsync(shard, 0, s * sizeof(float), compute_));
    if (have > 0)
      CUDA_CHECK(cudaMemcpyAsync(shard, host + sb, have * sizeof(float), cudaMemcpyHostToDevice, compute_));
  }
  CUDA_CHECK(cudaStreamSynchronize(compute_));
}

}  // namespace attn
