#include "distributed/buckets.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace attn {

int grad_ready_stage(const ParamLayout& layout, int index) {
  const ParamTensor& t = layout.get(index);
  if (t.layer >= 0) return t.layer;
  if (index == layout.lnf_w() || index == layout.lnf_b()) return layout.config().n_layer;
  return -1;  // wte, wpe
}

std::vector<GradBucket> plan_grad_buckets(const ParamLayout& layout, size_t bucket_bytes) {
  ATTN_CHECK(bucket_bytes >= sizeof(float), "gradient buckets must hold at least one float (got {} bytes)",
             bucket_bytes);
  const size_t cap = bucket_bytes / sizeof(float);
  const auto& ts = layout.tensors();
  // Tensors by offset; tensor i owns [offset_i, offset of the next tensor) (its alignment gap).
  std::vector<int> order(ts.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return ts[a].offset < ts[b].offset; });

  std::vector<GradBucket> buckets;
  GradBucket cur;
  size_t region_end = layout.total();
  auto flush = [&] {
    if (!cur.tensors.empty()) buckets.push_back(cur);
    cur = GradBucket{};
  };
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const int i = *it;
    const size_t begin = std::next(it) == order.rend() ? 0 : ts[i].offset;
    const size_t size = region_end - begin;
    if (!cur.tensors.empty() && cur.size() + size > cap) flush();
    if (cur.tensors.empty()) cur.end = region_end;
    cur.begin = begin;
    cur.tensors.push_back(i);
    // Later tensors in backward order finish later: the last added decides readiness.
    cur.ready_after = grad_ready_stage(layout, i);
    region_end = begin;
  }
  flush();
  return buckets;
}

ZeroShards plan_zero_shards(size_t total, int world_size, size_t align) {
  ATTN_CHECK(world_size >= 1, "ZeRO shards need world size >= 1 (got {})", world_size);
  ATTN_CHECK(align >= 1, "ZeRO shard alignment must be >= 1");
  ZeroShards z;
  z.total = total;
  z.world_size = world_size;
  const size_t unit = align * static_cast<size_t>(world_size);
  z.padded_total = (total + unit - 1) / unit * unit;
  z.shard_size = z.padded_total / static_cast<size_t>(world_size);
  return z;
}

}  // namespace attn
