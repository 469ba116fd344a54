// Device helpers shared by the flash attention kernels: cp.async, ldmatrix, mma.sync
// (m16n8k16 bf16 or fp16 -> fp32), the online-softmax step, the swizzled shared-memory tile layout,
// parameter checks.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/cuda_check.h"
#include "core/error.h"
#include "kernels/flash_attention.h"
#include "kernels/tiles/hardware.cuh"
#include "kernels/tiles/quad.cuh"

namespace attn::flash {

constexpr float kLog2e = 1.4426950408889634f;
// The forward's running row maximum may lag the true one by this much (exp2 units) before it is
// moved and O rescaled: P <= 2^8 then, exact in bf16's and fp32's range.
constexpr float kStaleMaxLog2 = 8.f;
constexpr float kLn2 = 0.6931471805599453f;

// ---- PTX wrappers -----------------------------------------------------------------------
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy global -> shared; when !pred the 16 bytes are zero-filled (no read).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool pred) {
  const int n = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, bool pred) {
  const int n = pred ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
// The inverse of ldsm_x4_t: the four 8x8 b16 pieces of a fragment (r[j]: lane 4a + t holds row a,
// columns 2t, 2t + 1 of piece j) stored transposed; lane 8j + i gives the address of stored row i
// (= column i of piece j) of piece j.
__device__ __forceinline__ void stsm_x4_t(uint32_t addr, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(addr), "r"(r[0]), "r"(r[1]),
               "r"(r[2]), "r"(r[3])
               : "memory");
}

// c += a * b, m16n8k16, bf16 inputs (kF16: fp16, the decode kernel's 8-bit caches, whose e4m3
// and int8 values are exact in fp16), fp32 accumulators.
#define ATTN_MMA16816(T)                                                                    \
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." T "." T ".f32 {%0,%1,%2,%3}, "      \
               "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"                                   \
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                              \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1))
template <bool kF16 = false>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  if constexpr (kF16) ATTN_MMA16816("f16");
  else ATTN_MMA16816("bf16");
}
#undef ATTN_MMA16816

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
__device__ __forceinline__ uint32_t pack_f16(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// One online-softmax step over a warp's score tile in mma accumulator (C) layout: s[4n + 2r + c]
// is row g + 8r, column 8n + 2t + c of the tile (g = lane / 4, t = lane % 4; raw scores, -inf
// where masked), o[4n + 2r + c] likewise the rows' output so far. With sl2 = scale * log2(e):
//   m' = max(m, max_j s_j),  a = exp2((m - m') sl2),  P_j = exp2((s_j - m') sl2),
//   l' = a l + sum_j P_j,    o' = a o;   s becomes P.
// m is the row's (reduced over the quad), l this thread's share (the quad's four add up at the
// end). A row masked so far keeps m = -inf and P = 0.
template <int NS, int NO>
__device__ __forceinline__ void online_softmax_step(float (&s)[4 * NS], float (&o)[4 * NO], float (&m_run)[2],
                                                    float (&l_run)[2], float sl2) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float mx = -INFINITY;
#pragma unroll
    for (int n = 0; n < NS; ++n) mx = fmaxf(mx, fmaxf(s[4 * n + 2 * r], s[4 * n + 2 * r + 1]));
    const float m_new = fmaxf(m_run[r], tiles::quad_max(mx));
    const float m_sc = m_new == -INFINITY ? 0.f : m_new * sl2;
    const float alpha = fast_exp2(m_run[r] * sl2 - m_sc);
    m_run[r] = m_new;
    float sum = 0.f;
#pragma unroll
    for (int n = 0; n < NS; ++n) {
      const float p0 = fast_exp2(fmaf(s[4 * n + 2 * r], sl2, -m_sc));
      const float p1 = fast_exp2(fmaf(s[4 * n + 2 * r + 1], sl2, -m_sc));
      s[4 * n + 2 * r] = p0;
      s[4 * n + 2 * r + 1] = p1;
      sum += p0 + p1;
    }
    l_run[r] = l_run[r] * alpha + sum;
#pragma unroll
    for (int n = 0; n < NO; ++n) {
      o[4 * n + 2 * r] *= alpha;
      o[4 * n + 2 * r + 1] *= alpha;
    }
  }
}

// ---- swizzled tile layout ------------------------------------------------------------------
// A tile of R rows x C bf16 (C = 64 or 128) is stored row-major, 16-byte chunk c of row r at
// chunk position c ^ (r & 7): ldmatrix over 8 consecutive rows at one chunk column then hits
// 8 different bank groups.
template <int C>
__device__ __forceinline__ uint32_t swz(int row, int chunk) {
  return static_cast<uint32_t>(row * (C * 2) + ((chunk ^ (row & 7)) << 4));
}

// Load rows [row0, row0 + R) of a (T x C) bf16 matrix (row stride `stride` elements) into a
// swizzled tile (swz<C>, for ldmatrix); rows >= T are zero-filled.
template <int R, int C, int NT>
__device__ __forceinline__ void load_tile(uint32_t s_base, const __nv_bfloat16* g, int64_t stride,
                                          int row0, int T, int tid) {
  constexpr int CH = C / 8;
  static_assert((R * CH) % NT == 0, "tile load must divide evenly");
#pragma unroll
  for (int i = 0; i < R * CH / NT; ++i) {
    const int idx = tid + i * NT;
    const int r = idx / CH, c = idx % CH;
    const bool ok = row0 + r < T;
    const __nv_bfloat16* src = g + (ok ? (int64_t)(row0 + r) * stride + c * 8 : 0);
    cp_async16(s_base + swz<C>(r, c), src, ok);
  }
}

// ---- the order of the work ---------------------------------------------------------------
// Work item L of a kernel whose items are (block rank, pair) with pair = (head, batch): items go
// in groups of `pairs_per_group` pairs, rank slowest within a group (rank 0 first: the callers
// map it to their heaviest block under a causal mask), groups in order. Blocks start roughly in L
// order, so with a group of about one wave the blocks resident together work on a few heads,
// whose rows then stay in L2; with one group of all pairs, every resident block works on a head
// of its own.
struct GroupedOrder {
  int rank, pair;
  __host__ __device__ __forceinline__ GroupedOrder(int L, int n_ranks, int n_pairs, int pairs_per_group) {
    const int per_group = pairs_per_group * n_ranks;
    const int group = L / per_group, first = group * pairs_per_group;
    const int size = min(pairs_per_group, n_pairs - first), r = L - group * per_group;
    rank = r / size;
    pair = first + r % size;
  }
};
// About one wave of blocks (one per SM) per group, at least one pair.
inline int pairs_per_wave(int n_ranks, int64_t n_pairs) {
  return (int)std::clamp<int64_t>(tiles::sm_count() / std::max(n_ranks, 1), 1, std::max<int64_t>(n_pairs, 1));
}

// ---- host-side helpers -------------------------------------------------------------------
using tiles::set_smem_limit_once;  // kernels/tiles/hardware.cuh

// ---- host-side checks ---------------------------------------------------------------------
void check_forward_params(const FlashAttentionParams& p);

// ---- the fp32 kernels (flash_attention_f32.cu), launched by the dispatchers ----------------
void forward_f32(const FlashAttentionParams& p, cudaStream_t stream);
// dq_acc: the zeroed fp32 dQ accumulator (B, H, T, D) that the main pass adds into with atomics;
// null: deterministic, dQ written by a separate pass.
void backward_f32(const FlashAttentionBackwardParams& p, const float* dsum, float* dq_acc, cudaStream_t stream);
// The bf16 Hopper main pass of flash_attention_bwd_sm90.cu: whether it serves p (every bf16
// backward: plain and general kind, dropout, both modes), and its launch (dq_acc: the zeroed fp32
// dQ accumulator that it adds dQ into; null: deterministic, no dQ, which the dQ pass of
// flash_attention_bwd.cu computes afterwards).
bool backward_sm90_applies(const FlashAttentionBackwardParams& p);
void backward_sm90(const FlashAttentionBackwardParams& p, const float* dsum, float* dq_acc, cudaStream_t stream);

}  // namespace attn::flash
