// Gradient buckets and ZeRO-1 shards over the flat gradient buffer (model/param_layout.h).
//
// Buckets: data-parallel training all-reduces gradients in pieces of about bucket_bytes,
// each launched as soon as backward has produced all of its gradients, so communication
// overlaps the rest of backward. Backward produces gradients in reverse buffer order
// (ln_f, layer L-1, ..., layer 0, then wpe and wte: wte, tied to the LM head, is final only
// after the embedding backward), so buckets are cut walking the buffer from its end, whole
// tensors at a time. Each bucket is one contiguous range [begin, end) of the buffer (the
// alignment gaps between tensors included, so the buckets cover the buffer exactly once)
// and one all-reduce call.
//
// Shards: ZeRO-1 splits the optimizer state; the buffer, padded to world_size * align
// floats, is reduce-scattered into world_size equal shards and parameters all-gathered
// back. Gradient and parameter buffers must be allocated padded_total floats long.
#pragma once
#include <cstddef>
#include <vector>

#include "model/param_layout.h"

namespace attn {

struct GradBucket {
  size_t begin = 0, end = 0;  // floats, [begin, end) of the gradient buffer
  // The bucket is complete once backward has finished this stage: n_layer = ln_f (the
  // first thing backward does), l = transformer layer l, -1 = the embeddings (end of backward).
  int ready_after = 0;
  std::vector<int> tensors;  // indices into ParamLayout::tensors(), in backward order
  size_t size() const { return end - begin; }
};

// Buckets in the order they become ready (decreasing begin). A bucket holds whole tensors
// and at most bucket_bytes, except a single tensor larger than that, which is a bucket alone.
std::vector<GradBucket> plan_grad_buckets(const ParamLayout& layout, size_t bucket_bytes);

// The backward stage after which tensor `index` has its final gradient (see ready_after).
int grad_ready_stage(const ParamLayout& layout, int index);

struct ZeroShards {
  size_t total = 0;         // floats the layout uses
  size_t padded_total = 0;  // total rounded up to world_size * align; buffers need this length
  size_t shard_size = 0;    // padded_total / world_size (a multiple of align)
  int world_size = 1;
  size_t begin(int rank) const { return shard_size * static_cast<size_t>(rank); }
  size_t end(int rank) const { return begin(rank) + shard_size; }
};

// Equal shards of a buffer of `total` floats for world_size ranks, each `align` floats aligned.
ZeroShards plan_zero_shards(size_t total, int world_size, size_t align = ParamLayout::kAlign);

}  // namespace attn
