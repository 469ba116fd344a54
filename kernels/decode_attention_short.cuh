// Decode attention for short caches: one block a (sequence, head) holds the head's whole cache
// in shared memory, so there are no splits, no partials and no combine pass. MHA over a bf16
// cache with bf16 activations (the batch-1 decode step's shape), when both K and V of max_len
// rows fit in shared memory. Included by kernels/decode_attention.cu, which owns the contract
// (kernels/decode_attention.h) and chooses it (plan_decode).
//
// Block (0, h, b), length L = lengths[b], rows t < L of kv head h (= query head h):
//   before waiting for the kernel before it (programmatic dependent launch): the rows t < L - 1,
//     final since earlier steps, by two bulk copies (K, V) into shared memory; the newest row
//     (t = L - 1, which that kernel may still be writing) after the wait;
//   s_t = (scale log2 e) q . k_t,  m = max_t s_t,  p_t = 2^(s_t - m),  l = sum_t p_t
//   o = sum_t p_t v_t / l   (fp32 throughout; o rounded to bf16 once)
// Threads take rows for the scores (a thread a row, its 16-byte chunks in a lane-rotated order so
// that the 8 lanes of a load phase hit 8 bank groups) and (row group, 8 dims) for o, whose row
// groups are summed through shared memory in a fixed order (deterministic).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/decode_attention_common.cuh"
#include "kernels/tiles/mbarrier.cuh"
#include "kernels/tiles/pdl.cuh"
#include "kernels/tiles/tma.cuh"

namespace attn::kern {
namespace {

constexpr int kShortThreads = 512;  // one block an SM (its shared memory): many warps share the work after the wait
constexpr int kShortWarps = kShortThreads / 32;

// Shared memory of one block (byte offsets, each 16-byte aligned): K and V (max_len rows each),
// the scores, q, the row groups' o, the reductions' scratch and the copies' mbarrier.
template <int D>
struct ShortHeadLayout {
  static constexpr int kChunks = D / 8;                        // 16-byte chunks of a row
  static constexpr int kGroups = kShortThreads / kChunks;      // row groups of the o pass
  static constexpr size_t kRowBytes = D * sizeof(__nv_bfloat16);
  size_t k = 0, v, s, q, o, red, bar, bytes;
  static __host__ __device__ size_t up16(size_t n) { return (n + 15) / 16 * 16; }
  explicit __host__ __device__ ShortHeadLayout(int max_len) {
    v = k + (size_t)max_len * kRowBytes;
    s = v + (size_t)max_len * kRowBytes;
    q = up16(s + (size_t)max_len * sizeof(float));
    o = q + D * sizeof(float);
    red = o + (size_t)kGroups * D * sizeof(float);
    bar = red + kShortWarps * sizeof(float);
    bytes = bar + sizeof(uint64_t);
  }
};

// The block's reduction of v (max or sum) over its threads, in every thread. common.cuh's
// block_max / block_sum would do, but their static shared arrays come on top of this kernel's
// dynamic shared memory, which is sized against the device's whole opt-in maximum (short_head_smem).
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v, float* red) {
  for (int off = 16; off > 0; off >>= 1) {
    const float o = __shfl_xor_sync(0xffffffffu, v, off);
    v = kMax ? fmaxf(v, o) : v + o;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = red[0];
  for (int w = 1; w < kShortWarps; ++w) v = kMax ? fmaxf(v, red[w]) : v + red[w];
  __syncthreads();  // red may be written again
  return v;
}

template <int D>
__global__ void __launch_bounds__(kShortThreads) decode_short_head_kernel(DecodeArgs a) {
  using Layout = ShortHeadLayout<D>;
  constexpr int kChunks = Layout::kChunks, kGroups = Layout::kGroups;
  extern __shared__ __align__(128) unsigned char smem[];
  const Layout lay(a.max_len);
  const uint4* ks = reinterpret_cast<const uint4*>(smem + lay.k);
  const uint4* vs = reinterpret_cast<const uint4*>(smem + lay.v);
  float* s = reinterpret_cast<float*>(smem + lay.s);
  float* q = reinterpret_cast<float*>(smem + lay.q);
  float* o_part = reinterpret_cast<float*>(smem + lay.o);
  float* red = reinterpret_cast<float*>(smem + lay.red);
  const uint32_t bar = tiles::smem_addr(smem + lay.bar);
  const int h = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
  const size_t row0 = ((size_t)b * a.Hkv + h) * a.max_len;

  // Before the wait: the rows that are final (lengths[b] was written kernels ago, decode_attention.h).
  const int length = min(max(a.lengths[b], 0), a.max_len), early = max(length - 1, 0);
  const uint32_t early_bytes = (uint32_t)(early * Layout::kRowBytes);
  if (tid == 0) {
    tiles::mbar_init(bar, 1);
    tiles::fence_barrier_init();
  }
  __syncthreads();
  if (tid == 0 && early > 0) {  // one copy each: copies of 32-128 rows were 1-15% slower (H100, session 33)
    tiles::mbar_arrive_expect_tx(bar, 2 * early_bytes);
    tiles::bulk_load(tiles::smem_addr(smem + lay.k), a.k + row0 * Layout::kRowBytes, early_bytes, bar);
    tiles::bulk_load(tiles::smem_addr(smem + lay.v), a.v + row0 * Layout::kRowBytes, early_bytes, bar);
  }
  tiles::wait_for_predecessor();  // q and the newest row are written
  tiles::launch_dependents();
  if (length == 0) return;  // (no row: nothing to attend; lengths >= 1 by the contract)

  const __nv_bfloat16* qrow = static_cast<const __nv_bfloat16*>(a.q) + (int64_t)b * a.q_batch_stride + (int64_t)h * D;
  if (tid < D) q[tid] = __bfloat162float(qrow[tid]) * a.q_scale;
  if (tid < 2 * kChunks) {  // the newest row, from L2, into its slot of K (tid < kChunks) or V
    const int c = tid % kChunks;
    const uint8_t* src = (tid < kChunks ? a.k : a.v) + (row0 + length - 1) * Layout::kRowBytes + c * 16;
    unsigned char* row = smem + (tid < kChunks ? lay.k : lay.v) + (length - 1) * Layout::kRowBytes;
    uint4* dst = reinterpret_cast<uint4*>(row) + c;
    *dst = __ldcg(reinterpret_cast<const uint4*>(src));
  }
  if (early > 0) tiles::mbar_wait(bar, 0);
  __syncthreads();

  // Scores: a thread a row; chunk (i + lane) % kChunks at step i (bank groups apart in a phase).
  float m = -INFINITY;
  for (int t = tid; t < length; t += kShortThreads) {
    float acc = 0.0f;
#pragma unroll
    for (int i = 0; i < kChunks; ++i) {
      const int c = (i + tid) % kChunks;
      float kf[8];
      unpack_bf16x8(ks[t * kChunks + c], kf);
      const float4 q0 = reinterpret_cast<const float4*>(q)[2 * c], q1 = reinterpret_cast<const float4*>(q)[2 * c + 1];
      const float qf[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
#pragma unroll
      for (int e = 0; e < 8; ++e) acc = fmaf(qf[e], kf[e], acc);
    }
    s[t] = acc;
    m = fmaxf(m, acc);
  }
  m = block_reduce<true>(m, red);
  float l = 0.0f;
  for (int t = tid; t < length; t += kShortThreads) {
    const float p = exp2f(s[t] - m);
    s[t] = p;
    l += p;
  }
  l = block_reduce<false>(l, red);  // (its barrier also orders the p writes before the reads below)

  // o: thread (group, chunk c) sums p_t v_t[8c .. 8c + 8) over the rows t = group, group + kGroups, ...
  const int c = tid % kChunks, group = tid / kChunks;
  float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  for (int t = group; t < length; t += kGroups) {
    float vf[8];
    unpack_bf16x8(vs[t * kChunks + c], vf);
    const float p = s[t];
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[e] = fmaf(p, vf[e], acc[e]);
  }
  float4* dst = reinterpret_cast<float4*>(o_part + group * D + c * 8);
  dst[0] = make_float4(acc[0], acc[1], acc[2], acc[3]);
  dst[1] = make_float4(acc[4], acc[5], acc[6], acc[7]);
  __syncthreads();
  if (tid < D) {
    float o = 0.0f;
#pragma unroll
    for (int g = 0; g < kGroups; ++g) o += o_part[g * D + tid];
    static_cast<__nv_bfloat16*>(a.o)[(int64_t)b * a.o_batch_stride + (int64_t)h * D + tid] = __float2bfloat16_rn(o / l);
  }
}

}  // namespace
}  // namespace attn::kern
