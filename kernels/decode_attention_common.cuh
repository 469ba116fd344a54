// Pieces shared by the two decode split kernels (kernels/decode_attention.cu: CUDA cores, for
// fp32 activations or an fp32 cache; kernels/decode_attention_mma.cuh: tensor cores): the
// kernel arguments, where a block's work lies, the softmax-state merge and the write of a
// block's result (the output itself with one split, else its partial for the combine pass).
// Included by kernels/decode_attention.cu only.
#pragma once
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "core/kv_cache_dtype.h"
#include "kernels/common.cuh"

namespace attn::kern {
namespace {

constexpr bool is_8bit(KVCacheDType c) { return kv_cache_is_scaled(c); }
constexpr int element_bytes(KVCacheDType c) { return static_cast<int>(kv_cache_element_bytes(c)); }

struct DecodeArgs {
  const void* q;
  int64_t q_batch_stride;
  void* o;  // written here when splits == 1, else by the combine kernel
  int64_t o_batch_stride;
  bool act_bf16;
  const uint8_t* k;
  const uint8_t* v;
  const float* k_scale;  // nullptr unless 8-bit
  const float* v_scale;
  const int32_t* lengths;
  int H, Hkv, G, head_groups, max_len, chunk, splits;
  float q_scale;  // scale * log2(e): scores in the exp2 domain
  float* part_o;  // (B, H, splits, D)
  float* part_m;  // (B, H, splits)
  float* part_l;
};

// exp2 argument shift that is never -inf (a state that has seen no row yet has m = -inf).
__device__ __forceinline__ float finite_or_zero(float m) { return m == -INFINITY ? 0.0f : m; }

// (m, l, o[N]) <- the merge of two partial softmax states over disjoint rows (exp2 domain):
//   M = max(m, m_b),  l = 2^(m - M) l + 2^(m_b - M) l_b,  o = 2^(m - M) o + 2^(m_b - M) o_b
// (lanes of a warp, and the splits in the combine pass).
template <int N>
__device__ __forceinline__ void merge_softmax_state(float& m, float& l, float* o, float m_b, float l_b,
                                                    const float* o_b) {
  const float mx = fmaxf(m, m_b), shift = finite_or_zero(mx);
  const float wa = exp2f(m - shift), wb = exp2f(m_b - shift);
  m = mx;
  l = l * wa + l_b * wb;
#pragma unroll
  for (int e = 0; e < N; ++e) o[e] = o[e] * wa + o_b[e] * wb;
}

// Activations (q, o, the packed qkv rows) are bf16 or fp32, chosen at run time (act_bf16).
__device__ __forceinline__ float load_act(const void* p, int64_t off, bool act_bf16) {
  return act_bf16 ? __bfloat162float(static_cast<const bf16*>(p)[off]) : static_cast<const float*>(p)[off];
}
__device__ __forceinline__ void store_act(void* p, int64_t off, float y, bool act_bf16) {
  if (act_bf16) static_cast<bf16*>(p)[off] = __float2bfloat16_rn(y);
  else static_cast<float*>(p)[off] = y;
}

// Where a block's work lies: block (head group j, split s) x kv head g x sequence b serves
// query heads g*G + j*kHG .. (+ heads - 1) over cache rows [t_begin, t_end).
struct DecodeBlock {
  int head_group, split, g, b, t_begin, t_end, h0, heads;
  size_t row0;  // cache row of (b, g, t = 0)
  __device__ __forceinline__ DecodeBlock(const DecodeArgs& a, int kHG) {
    head_group = blockIdx.x % a.head_groups, split = blockIdx.x / a.head_groups;
    g = blockIdx.y, b = blockIdx.z;
    const int len = min(max(a.lengths[b], 0), a.max_len);
    t_begin = split * a.chunk, t_end = min(t_begin + a.chunk, len);
    h0 = g * a.G + head_group * kHG;
    heads = min(kHG, a.G - head_group * kHG);
    row0 = ((size_t)b * a.Hkv + g) * a.max_len;
  }
};

// Merges the per-warp softmax states of a block's heads, kept in shared memory as
//   m[w * head_stride + h], l[w * head_stride + h], o[(w * head_stride + h) * D + d]   (w < kWarps)
// (states that saw no row have m = -inf, l = 0, o = 0), into M = max_w m_w,
//   L = sum_w 2^(m_w - M) l_w,  O = sum_w 2^(m_w - M) o_w,
// and writes O / L to the output when the block saw every row (one split), else (M, L, O) as
// the partial of (b, h0 + h, split) for the combine pass.
template <int D, int kWarps>
__device__ __forceinline__ void write_block_state(const DecodeArgs& a, const DecodeBlock& blk, int head_stride,
                                                  const float* m, const float* l, const float* o) {
  for (int i = threadIdx.x; i < blk.heads * D; i += blockDim.x) {
    const int h = i / D, d = i % D;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, m[w * head_stride + h]);
    const float shift = finite_or_zero(mx);
    float out = 0.0f, sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float wt = exp2f(m[w * head_stride + h] - shift);
      out = fmaf(o[(w * head_stride + h) * D + d], wt, out);
      sum = fmaf(l[w * head_stride + h], wt, sum);
    }
    if (a.splits == 1) {
      store_act(a.o, (int64_t)blk.b * a.o_batch_stride + (int64_t)(blk.h0 + h) * D + d, sum > 0.0f ? out / sum : 0.0f,
                a.act_bf16);
      continue;
    }
    const int64_t part = ((int64_t)blk.b * a.H + blk.h0 + h) * a.splits + blk.split;
    a.part_o[part * D + d] = out;
    if (d == 0) {
      a.part_m[part] = mx;
      a.part_l[part] = sum;
    }
  }
}

}  // namespace
}  // namespace attn::kern
