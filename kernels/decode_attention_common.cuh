// Pieces shared by the two decode split kernels (kernels/decode_attention.cu: CUDA cores, for
// fp32 activations or an fp32 cache; kernels/decode_attention_mma.cuh: tensor cores): the
// kernel arguments, where a block's work lies, the softmax-state merge and the write of a
// block's result (the output itself with one split, else its partial, which the head group's last
// block merges).
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
  void* o;  // written by the block when splits == 1, else by the head group's last block
  int64_t o_batch_stride;
  bool act_bf16;
  uint8_t* k;  // written only by the split kernel's append (kAppend)
  uint8_t* v;
  const float* k_scale;  // nullptr unless 8-bit
  const float* v_scale;
  const int32_t* lengths;
  int H, Hkv, G, head_groups, max_len, chunk, splits;
  float q_scale;  // scale * log2(e): scores in the exp2 domain
  float* part_o;  // (B, H, splits, D)
  float* part_m;  // (B, H, splits)
  float* part_l;
  unsigned* done;  // (B, Hkv, head_groups): blocks of a head group finished, back to 0 after each call
  bool merge_in_kernel;  // the head group's last block merges the partials (else a combine kernel)
};

// exp2 argument shift that is never -inf (a state that has seen no row yet has m = -inf).
__device__ __forceinline__ float finite_or_zero(float m) { return m == -INFINITY ? 0.0f : m; }

// (m, l, o[N]) <- the merge of two partial softmax states over disjoint rows (exp2 domain):
//   M = max(m, m_b),  l = 2^(m - M) l + 2^(m_b - M) l_b,  o = 2^(m - M) o + 2^(m_b - M) o_b
// (the lanes of a warp; the splits fold in batches, fold_states below).
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
// The same as a load the compiler keeps in program order (volatile asm): issued ahead of a
// branch that does not need it.
__device__ __forceinline__ float load_act_volatile(const void* p, int64_t off, bool act_bf16) {
  if (act_bf16) {
    unsigned short x;
    asm volatile("ld.global.nc.u16 %0, [%1];" : "=h"(x) : "l"(static_cast<const bf16*>(p) + off));
    return __uint_as_float((uint32_t)x << 16);
  }
  float x;
  asm volatile("ld.global.nc.f32 %0, [%1];" : "=f"(x) : "l"(static_cast<const float*>(p) + off));
  return x;
}
__device__ __forceinline__ void store_act(void* p, int64_t off, float y, bool act_bf16) {
  if (act_bf16) static_cast<bf16*>(p)[off] = __float2bfloat16_rn(y);
  else static_cast<float*>(p)[off] = y;
}

// Splits of sequence b that have rows: the blocks that write a partial for it.
__device__ __forceinline__ int splits_run(const DecodeArgs& a, int b) {
  const int len = min(max(a.lengths[b], 0), a.max_len);
  return min(a.splits, ceil_div(len, a.chunk));
}

// Where a block's work lies: block (head group j, split s) x kv head g x sequence b serves
// query heads g*G + j*kHG .. (+ heads - 1) over cache rows t_begin, t_begin + 1, ... below t_end.
// Contiguous splits (the tensor-core kernel): split s reads rows [s chunk, (s + 1) chunk).
// Interleaved splits (the MHA kernels, whose chunk is one iteration's rows): split s reads the
// row blocks s, s + splits, s + 2 splits, ... of chunk rows, one an iteration (step apart), so
// that at any moment the splits of a head stream neighbouring rows. Measured on the H200 (same
// call, 2026-12-06): B=1 ctx 32768 MHA D=128 bf16 69.3 -> 66.8 us, int8 42.3 -> 40.7, D=64 fp8
// 21.5 -> 21.0, bf16 31.7 -> 31.6, B=32 level; a plain read shaped like contiguous splits took
// 27.8 us against 26.0 interleaved.
struct DecodeBlock {
  int head_group, split, g, b, t_begin, t_end, h0, heads;
  int step;        // interleaved: rows from one row block of the split to its next
  bool interleaved;
  int length;      // lengths[b] clamped to [0, max_len]
  int splits_run;  // splits of this sequence with rows (the blocks that write a partial)
  size_t row0;  // cache row of (b, g, t = 0)
  // read_length false: t_end and splits_run wait for read_length() (what can go before the
  // lengths[b] read, the CUDA-core kernel issues first).
  __device__ __forceinline__ DecodeBlock(const DecodeArgs& a, int kHG, bool read_lengths = true,
                                         bool interleaved_splits = false)
      : interleaved(interleaved_splits) {
    head_group = blockIdx.x % a.head_groups, split = blockIdx.x / a.head_groups;
    g = blockIdx.y, b = blockIdx.z;
    t_begin = split * a.chunk;
    step = a.splits * a.chunk;
    h0 = g * a.G + head_group * kHG;
    heads = min(kHG, a.G - head_group * kHG);
    row0 = ((size_t)b * a.Hkv + g) * a.max_len;
    if (read_lengths) read_length(a);
  }
  __device__ __forceinline__ void read_length(const DecodeArgs& a) {
    length = min(max(a.lengths[b], 0), a.max_len);
    t_end = interleaved ? length : min(t_begin + a.chunk, length);
    splits_run = kern::splits_run(a, b);
  }
};

template <int kThreads>
struct MergeScratch {  // shared memory of merge_splits
  float4 o[kThreads];
  float m[kThreads], l[kThreads];
};

// Folds the partial states s0 + j stride (j < K) into (M, L, o): the K loads are straight-line
// code, so they are in flight together (an index past n loads state n - 1 and is then made an
// empty state), and the batch costs one rescale of the running state:
//   M' = max(M, max_j m_j),  L' = 2^(M - M') L + sum_j 2^(m_j - M') l_j,  o' the same with o
template <int K, int N, typename Load>
__device__ __forceinline__ void fold_batch(float& M, float& L, float (&o)[N], int s0, int n, int stride, Load load) {
  float m_b[K], l_b[K], o_b[K][N];
#pragma unroll
  for (int j = 0; j < K; ++j) {
    const bool past_n = s0 + j * stride >= n;
    load(past_n ? n - 1 : s0 + j * stride, m_b[j], l_b[j], o_b[j]);
    if (past_n) {
      m_b[j] = -INFINITY, l_b[j] = 0.0f;
#pragma unroll
      for (int e = 0; e < N; ++e) o_b[j][e] = 0.0f;
    }
  }
  float mx = M;
#pragma unroll
  for (int j = 0; j < K; ++j) mx = fmaxf(mx, m_b[j]);
  const float shift = finite_or_zero(mx), w = exp2f(M - shift);
  M = mx;
  L *= w;
#pragma unroll
  for (int e = 0; e < N; ++e) o[e] *= w;
#pragma unroll
  for (int j = 0; j < K; ++j) {
    const float w_j = exp2f(m_b[j] - shift);
    L = fmaf(l_b[j], w_j, L);
#pragma unroll
    for (int e = 0; e < N; ++e) o[e] = fmaf(o_b[j][e], w_j, o[e]);
  }
}

// Folds the partial states s = first, first + stride, ... below n (first < stride) into
// (M, L, o), in batches of up to kFoldBatch (fold_batch). A batch's size is the smallest power of
// two that holds first = 0's share of it, the same for every first, so the branches are uniform
// and few loads are wasted when there are few states (a fixed batch of 8 cost the decode step's
// 10-split merge and B = 32's 3-split ones 1-1.4%, H100, session 21).
// Why batches: a fold that rescaled after each load waited one L2 round trip per state; Nsight
// Compute found the combine pass of MQA at B = 1 (12 heads x 128 splits) stalled on exactly
// that, 78% of its cycles, for 6.5 us of one SM's time (H100, session 21).
constexpr int kFoldBatch = 8;  // (the batch sizes below: 8, 4, 2, 1)
template <int N, typename Load>
__device__ __forceinline__ void fold_states(float& M, float& L, float (&o)[N], int first, int n, int stride, Load load) {
  for (int base = 0; base < n; base += kFoldBatch * stride) {
    const int most = ceil_div(n - base, stride);  // states of this batch for first = 0
    if (most > 4) fold_batch<8>(M, L, o, base + first, n, stride, load);
    else if (most > 2) fold_batch<4>(M, L, o, base + first, n, stride, load);
    else if (most == 2) fold_batch<2>(M, L, o, base + first, n, stride, load);
    else fold_batch<1>(M, L, o, base + first, n, stride, load);
  }
}

// merge_splits' threads: one (head, float4 column) item each, an item's splits shared by `rows`
// threads (the plan's merge_in_last_block reads it too).
struct MergeLayout {
  int items, rows;
  __host__ __device__ MergeLayout(int heads, int D, int threads)
      : items(heads * (D / 4)), rows(max(1, threads / items)) {}
};

// The combine of heads h0 .. h0 + heads - 1 of sequence b over its n splits, by one block of
// kThreads threads: each (head, float4 column) of the output is merged from the n partials by
// rows = kThreads / columns threads (thread r folds splits r, r + rows, ...), whose states then
// fold in a fixed order from shared memory, so the result does not depend on which block runs it.
//   M = max_s m_s,  o = sum_s 2^(m_s - M) o_s / sum_s 2^(m_s - M) l_s
template <int D, int kThreads>
__device__ __forceinline__ void merge_splits(const DecodeArgs& a, int b, int h0, int heads, int n,
                                             MergeScratch<kThreads>& scratch) {
  constexpr int kCols = D / 4;
  float4* red_o = scratch.o;
  float *red_m = scratch.m, *red_l = scratch.l;
  const MergeLayout layout(heads, D, kThreads);
  const int items = layout.items, rows = layout.rows;
  auto write = [&](int c, float L, const float* o) {
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    const int64_t off = (int64_t)b * a.o_batch_stride + (int64_t)(h0 + c / kCols) * D + 4 * (c % kCols);
#pragma unroll
    for (int e = 0; e < 4; ++e) store_act(a.o, off + e, o[e] * inv, a.act_bf16);
  };
  auto as_array = [](float (&o)[4], float4 x) { o[0] = x.x, o[1] = x.y, o[2] = x.z, o[3] = x.w; };
  for (int idx = threadIdx.x; idx < items * rows; idx += kThreads) {
    const int c = idx % items, r = idx / items;
    const int64_t part = ((int64_t)b * a.H + h0 + c / kCols) * a.splits;
    const float4* po = reinterpret_cast<const float4*>(a.part_o + part * D) + c % kCols;
    float M = -INFINITY, L = 0.0f, o[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    // L2 reads (__ldcg): the partials came from other SMs
    fold_states(M, L, o, r, n, rows, [&](int s, float& m_s, float& l_s, float (&o_s)[4]) {
      m_s = __ldcg(a.part_m + part + s), l_s = __ldcg(a.part_l + part + s);
      as_array(o_s, __ldcg(po + (int64_t)s * kCols));
    });
    if (rows == 1) {
      write(c, L, o);
    } else {
      red_o[idx] = make_float4(o[0], o[1], o[2], o[3]);
      red_m[idx] = M, red_l[idx] = L;
    }
  }
  if (rows == 1) return;  // (uniform: rows depends on the heads only)
  __syncthreads();
  for (int c = threadIdx.x; c < items; c += kThreads) {
    float M = -INFINITY, L = 0.0f, o[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    fold_states(M, L, o, 0, rows, 1, [&](int r, float& m_s, float& l_s, float (&o_s)[4]) {
      m_s = red_m[r * items + c], l_s = red_l[r * items + c];
      as_array(o_s, red_o[r * items + c]);
    });
    write(c, L, o);
  }
}

// After a block wrote its partials, with a.merge_in_kernel: the last of the splits_run blocks
// of its head group (the count in a.done, which atomicInc wraps back to 0 for the next call)
// merges them. The fences order every thread's partial writes before the count, and the count
// before the last block's reads (the classic threadfence reduction).
template <int D, int kThreads>
__device__ __forceinline__ void merge_if_last(const DecodeArgs& a, const DecodeBlock& blk, MergeScratch<kThreads>& scratch) {
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned n = (unsigned)blk.splits_run;
    unsigned* done = a.done + ((int64_t)blk.b * a.Hkv + blk.g) * a.head_groups + blk.head_group;
    last = atomicInc(done, n - 1) == n - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  merge_splits<D, kThreads>(a, blk.b, blk.h0, blk.heads, blk.splits_run, scratch);
}

// The warps' O rows in shared memory, row r = w * head_stride + h: o[r * D + d].
template <int D>
struct PlainStateRows {
  const float* o;
  __device__ __forceinline__ float operator()(int r, int d) const { return o[r * D + d]; }
};

// Merges the per-warp softmax states of a block's heads, kept in shared memory as
//   m[w * head_stride + h], l[w * head_stride + h], o_rows(w * head_stride + h, d)   (w < kWarps)
// (states that saw no row have m = -inf, l = 0, o = 0), into M = max_w m_w,
//   L = sum_w 2^(m_w - M) l_w,  O = sum_w 2^(m_w - M) o_w,
// and writes O / L to the output when the block saw every row (one split), else (M, L, O) as
// the partial of (b, h0 + h, split), which the head group's last block (a.merge_in_kernel;
// scratch: merge_splits' shared memory) or the combine kernel merges.
template <int D, int kWarps, typename ORows>
__device__ __forceinline__ void write_block_state(const DecodeArgs& a, const DecodeBlock& blk, int head_stride,
                                                  const float* m, const float* l, ORows o_rows,
                                                  MergeScratch<kWarps * 32>& scratch) {
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
      out = fmaf(o_rows(w * head_stride + h, d), wt, out);
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
  if (a.splits > 1 && a.merge_in_kernel) merge_if_last<D>(a, blk, scratch);
}

}  // namespace
}  // namespace attn::kern
