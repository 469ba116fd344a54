#include "backend/host_data_parallel.h"

#include <algorithm>

#include "model/adamw.h"

namespace attn {

HostDataParallel::HostDataParallel(Communicator& comm, bool zero1, const ParamLayout& layout)
    : comm_(comm), zero1_(zero1), layout_(layout) {
  if (!zero1_) return;
  shards_ = plan_zero_shards(layout_.total(), comm_.world_size());
  padded_.assign(shards_.padded_total, 0.0f);
  grad_shard_.assign(shards_.shard_size, 0.0f);
  m_.assign(shards_.shard_size, 0.0f);
  v_.assign(shards_.shard_size, 0.0f);
}

void HostDataParallel::sync_grads(float* grads) {
  const size_t n = layout_.total();
  if (!zero1_) return comm_.all_reduce_mean(grads, n, nullptr);
  std::copy(grads, grads + n, padded_.begin());
  std::fill(padded_.begin() + n, padded_.end(), 0.0f);
  comm_.reduce_scatter_mean(padded_.data(), grad_shard_.data(), shards_.shard_size, nullptr);
}

double HostDataParallel::grad_norm_squared() {
  double sum = 0;
  for (float g : grad_shard_) sum += static_cast<double>(g) * g;
  comm_.all_reduce_sum(&sum, 1, nullptr);
  return sum;
}

void HostDataParallel::adamw_step(float* params, const AdamWConfig& c, float lr, float grad_multiplier, int64_t t) {
  const size_t sb = shards_.begin(comm_.rank()), se = shards_.end(comm_.rank());
  // One call per tensor piece inside the shard (weight decay per tensor, as on one rank).
  for (const ParamTensor& pt : layout_.tensors()) {
    const size_t lo = std::max(sb, pt.offset), hi = std::min(se, pt.offset + pt.numel);
    if (lo >= hi) continue;
    adamw_update(params + lo, grad_shard_.data() + (lo - sb), m_.data() + (lo - sb), v_.data() + (lo - sb), hi - lo,
                 lr, c.beta1, c.beta2, c.eps, pt.decay() ? c.weight_decay : 0.0f, grad_multiplier, t);
  }
  const size_t n = layout_.total();
  std::copy(params, params + n, padded_.begin());
  std::fill(padded_.begin() + n, padded_.end(), 0.0f);
  comm_.all_gather(padded_.data() + sb, padded_.data(), shards_.shard_size, nullptr);
  std::copy(padded_.begin(), padded_.begin() + n, params);
}

void HostDataParallel::get_moments(float* m, float* v) {
  const size_t n = layout_.total(), sb = shards_.begin(comm_.rank());
  for (auto [mine, out] : {std::pair{&m_, m}, std::pair{&v_, v}}) {
    std::copy(mine->begin(), mine->end(), padded_.begin() + sb);
    comm_.all_gather(padded_.data() + sb, padded_.data(), shards_.shard_size, nullptr);
    std::copy(padded_.begin(), padded_.begin() + n, out);
  }
}

void HostDataParallel::set_moments(const float* m, const float* v) {
  const size_t n = layout_.total(), sb = shards_.begin(comm_.rank());
  for (auto [mine, in] : {std::pair{&m_, m}, std::pair{&v_, v}}) {
    for (size_t i = 0; i < shards_.shard_size; ++i) (*mine)[i] = sb + i < n ? in[sb + i] : 0.0f;
  }
}

}  // namespace attn
