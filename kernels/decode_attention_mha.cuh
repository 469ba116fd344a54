// The tensor-core decode split kernel for MHA (one query head per kv head; bf16 activations; an
// e4m3 or int8 cache), its mma fragments loaded straight from global memory into
// registers. Included by kernels/decode_attention.cu after decode_attention_mma.cuh (whose
// to_half2, mma_tile and pack_mma it uses), which owns the contract, the plan and the combine.
//
// Why: with one query head the CUDA-core kernel spends an unpack and an FMA per cache element
// on K and again on V, and the 8-bit caches are bound by those instructions, not by their loads
// (Nsight Compute, H100: 0.48 issued a cycle per scheduler, 55% of DRAM). On mma.sync the
// products are one m16n8k16 per 16 tokens and 16 dims, and an element costs its conversion
// only. With M = 16 of the tile being tokens (not heads, which MHA has one of), the scores of a
// 16-token slice land in 8 lanes, 2 each, and the softmax costs 2 scores a lane:
//   S^T = K Q^T     (A = K: tokens x dims, B = Q^T: dims x heads; only head column 0 is real)
//   s_t = S_t * scale * log2(e) * ks_t,   m' = max(m, max_t s_t),  p_t = 2^(s_t - m'),
//   l' = 2^(m - m') l + sum_t p_t,   O^T' = 2^(m - m') O^T + V^T P^T   (A = V^T: dims x tokens)
// 8-bit: P_t = p_t vs_t / r with r the step's largest V scale, and O kept in units of the last
// r (as in decode_attention_mma.cuh), so P stays in [0, 1] in fp16. Measured against the CUDA-core
// kernel (H100, same call): 2-4% faster at every 8-bit shape of the benchmark; the same kernel
// over a bf16 cache was 0.5-1% slower at ctx 32768 and B = 32, so bf16 MHA stays on CUDA cores.
// Nsight Compute (fp8, B=1 ctx 32768): 0.40 instructions issued a cycle per scheduler (the
// CUDA-core kernel 0.48) from 2.8 warps, 7.1 cycles between issues: now bound by the latency of
// each warp's chain (mma -> softmax -> shuffles -> mma), not by its instruction count.
//
// Fragments (mma.sync m16n8k16, lane = 4 g + t; see decode_attention_mma.cuh for the layout):
//  - K: lane (g, t) reads 16-byte chunks 4i + t of slice rows g and g + 8 (one warp load: 8 whole
//    rows). The k index (the head dim) is in our order: k-step j takes elements 4s .. 4s + 3
//    of the lane's chunk i = j / kStepsPerChunk (s = j % kStepsPerChunk): k 2t, 2t+1 <-> 4s + {0, 1},
//    k 2t+8, 2t+9 <-> 4s + {2, 3}. Q's B fragment follows the same order (lanes g = 0 only).
//  - S^T's C fragment: token g in c0, token g + 8 in c2, head 0 in the lanes t = 0.
//  - V: lane (g, t) reads elements [g D/8, (g+1) D/8) of slice rows 2t, 2t+1, 2t+8, 2t+9 (one
//    warp load: 4 whole rows); m-tile mt of O^T has dim g D/8 + 2 mt in row g and + 1 in row g+8.
//  - P^T's B fragment (tokens 2t, 2t+1 | 2t+8, 2t+9; head g) comes from lanes 8t and 8t + 4 by
//    4 shuffles; O^T's head-0 column is c0, c2 of the lanes t = 0.
#pragma once
#include <cfloat>
#include <cstdint>

#include "kernels/decode_attention_common.cuh"
#include "kernels/decode_attention_mma.cuh"
#include "kernels/tiles/pdl.cuh"

namespace attn::kern {
namespace {

constexpr int kMhaThreads = 128;  // 4 warps, each its own slices of 16 tokens
constexpr int kMhaWarps = kMhaThreads / 32;

template <KVCacheDType C, int D>
struct MhaDirectGeometry {
  static_assert(is_8bit(C), "8-bit caches (bf16 MHA runs on CUDA cores)");
  static constexpr int kElemBytes = element_bytes(C);
  static constexpr int kRowBytes = D * kElemBytes;
  static constexpr int kSteps = D / 16;                  // k-steps of S^T, m-tiles of O^T
  static constexpr int kE = 16 / kElemBytes;             // elements of a 16-byte chunk
  static constexpr int kStepsPerChunk = kE / 4;
  static constexpr int kKChunks = kRowBytes / 64;        // 16-byte chunks a lane reads of a K row
  static constexpr int kVWords = kRowBytes / 8 / 4;      // 32-bit words a lane reads of a V row
  // A lane reads kRowBytes a slice (K and V); two slices an iteration when that is 64 bytes,
  // so that every lane has 128 bytes of the next iteration in flight, as the CUDA-core kernel.
  static constexpr int kSlices = kRowBytes < 128 ? 2 : 1;
  static constexpr int kMinBlocksPerSm = 3;
  static constexpr int kBlockRows = kMhaWarps * kSlices * 16;
  static_assert(kKChunks >= 1 && kSteps == kKChunks * kStepsPerChunk, "K chunks cover the k-steps");
  static_assert(kVWords == 2 || kVWords == 4, "8 or 16 bytes of a V row a lane");
};

// One slice's registers: K chunks of rows g, g + 8; V words of rows 2t, 2t+1, 2t+8, 2t+9; the
// 8-bit scales of the tokens this lane's scores and probabilities belong to (g, g + 8).
template <KVCacheDType C, int D>
struct MhaSlice {
  using Geo = MhaDirectGeometry<C, D>;
  uint4 k[2][Geo::kKChunks];
  uint32_t v[4][Geo::kVWords];
  float ks[2], vs[2];

  // Rows at or past t_end are zero (their memory may hold anything, NaN included) with scales 1
  // (K) and 0 (V).
  __device__ __forceinline__ void load(const DecodeArgs& a, const DecodeBlock& blk, int tok0, int g, int t) {
    const uint8_t* kbase = a.k + blk.row0 * Geo::kRowBytes;
    const uint8_t* vbase = a.v + blk.row0 * Geo::kRowBytes;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int tok = tok0 + g + 8 * r;
      const bool ok = tok < blk.t_end;
#pragma unroll
      for (int i = 0; i < Geo::kKChunks; ++i)
        k[r][i] = ok ? __ldcs(reinterpret_cast<const uint4*>(kbase + (size_t)tok * Geo::kRowBytes) + 4 * i + t)
                     : make_uint4(0, 0, 0, 0);
      ks[r] = ok ? __ldg(a.k_scale + blk.row0 + tok) : 1.0f;
      vs[r] = ok ? __ldg(a.v_scale + blk.row0 + tok) : 0.0f;
    }
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int tok = tok0 + 2 * t + (r & 1) + 8 * (r >> 1);
      const bool ok = tok < blk.t_end;
      const uint8_t* src = vbase + (size_t)tok * Geo::kRowBytes + g * Geo::kVWords * 4;
      if constexpr (Geo::kVWords == 4) {
        const uint4 x = ok ? __ldcs(reinterpret_cast<const uint4*>(src)) : make_uint4(0, 0, 0, 0);
        v[r][0] = x.x, v[r][1] = x.y, v[r][2] = x.z, v[r][3] = x.w;
      } else {
        const uint2 x = ok ? __ldcs(reinterpret_cast<const uint2*>(src)) : make_uint2(0, 0);
        v[r][0] = x.x, v[r][1] = x.y;
      }
    }
  }
};

// x reduced over the 8 lanes of a column t (lanes t, t + 4, ..., t + 28): a slice's 16 tokens
// lie 2 a lane in those lanes (S^T's C fragment).
__device__ __forceinline__ float max_over_tokens(float x) {
#pragma unroll
  for (int off = 4; off < 32; off <<= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
  return x;
}
__device__ __forceinline__ float sum_over_tokens(float x) {
#pragma unroll
  for (int off = 4; off < 32; off <<= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

// One warp's online-softmax state (head 0 in the lanes t = 0; the other lanes carry columns
// no one reads).
template <KVCacheDType C, int D>
struct MhaWarpState {
  using Geo = MhaDirectGeometry<C, D>;
  uint32_t q[Geo::kSteps][2];  // Q^T's B fragments (zero but in the lanes g = 0)
  float acc[Geo::kSteps][4];   // O^T, m-tile mt (C layout)
  float m, l, r_scale;         // l: this lane's tokens (summed over g at the end); r_scale: 8-bit units of acc

  __device__ __forceinline__ void init(const DecodeArgs& a, const DecodeBlock& blk, int g, int t) {
    const bf16* qh = static_cast<const bf16*>(a.q) + (int64_t)blk.b * a.q_batch_stride + (int64_t)blk.h0 * D;
#pragma unroll
    for (int j = 0; j < Geo::kSteps; ++j) {
      const int d = (4 * (j / Geo::kStepsPerChunk) + t) * Geo::kE + 4 * (j % Geo::kStepsPerChunk);
      q[j][0] = g == 0 ? pack_mma<C>(__bfloat162float(qh[d]), __bfloat162float(qh[d + 1])) : 0u;  // exact
      q[j][1] = g == 0 ? pack_mma<C>(__bfloat162float(qh[d + 2]), __bfloat162float(qh[d + 3])) : 0u;
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[j][c] = 0.0f;
    }
    m = -INFINITY;
    l = 0.0f;
    r_scale = 1.0f;
  }

  // S^T of the slice: c0 = token g, c2 = token g + 8 (lanes t = 0).
  __device__ __forceinline__ void scores(const MhaSlice<C, D>& sl, float (&s)[4]) const {
    s[0] = s[1] = s[2] = s[3] = 0.0f;
#pragma unroll
    for (int j = 0; j < Geo::kSteps; ++j) {
      const int i = j / Geo::kStepsPerChunk, st = j % Geo::kStepsPerChunk;
      const uint32_t w0[4] = {sl.k[0][i].x, sl.k[0][i].y, sl.k[0][i].z, sl.k[0][i].w};
      const uint32_t w1[4] = {sl.k[1][i].x, sl.k[1][i].y, sl.k[1][i].z, sl.k[1][i].w};
      const uint32_t af[4] = {to_half2<C>(w0[st], 0x4140u), to_half2<C>(w1[st], 0x4140u), to_half2<C>(w0[st], 0x4342u),
                              to_half2<C>(w1[st], 0x4342u)};
      mma_tile<C>(s, af, q[j][0], q[j][1]);
    }
  }

  // O^T += V^T P^T over the slice (p: P^T's B fragment).
  __device__ __forceinline__ void accumulate(const MhaSlice<C, D>& sl, uint32_t p0, uint32_t p1) {
#pragma unroll
    for (int mt = 0; mt < Geo::kSteps; ++mt) {
      const int e = 2 * mt;  // element e, e + 1 of the lane's bytes: byte e % 4 of word e / 4
      const uint32_t lo = interleave_bytes(sl.v[0][e / 4], sl.v[1][e / 4], e);
      const uint32_t hi = interleave_bytes(sl.v[2][e / 4], sl.v[3][e / 4], e);
      const uint32_t af[4] = {to_half2<C>(lo, 0x4140u), to_half2<C>(lo, 0x4342u), to_half2<C>(hi, 0x4140u),
                              to_half2<C>(hi, 0x4342u)};
      mma_tile<C>(acc[mt], af, p0, p1);
    }
  }

  // The N slices of one iteration, tokens tok0 .. tok0 + 16 N - 1 (tok0 < t_end; slices past t_end
  // hold zero rows and their scores are masked): one online-softmax step for all of them, so the
  // max and V-scale reductions, the rescale of O^T and their latency are paid once per 16 N
  // tokens (D = 64: 32); the N score chains are independent. N = 1 (D = 128) compiles to the
  // machine code of the one-slice step this replaced (an order with the shuffles after the
  // rescale of O^T lost 0.8% on a D = 128 row): the sum of p and the largest V scale start from
  // slice 0's values, not from 0 (0 + x and max(0, x) are not folded away), and the P^T
  // fragments are shuffled before the rescale.
  template <int N>
  __device__ __forceinline__ void consume(const DecodeArgs& a, const MhaSlice<C, D> (&sl)[N], int tok0, int t_end, int g,
                                          int t) {
    float sc[N][2];
    float mx = m;
#pragma unroll
    for (int j = 0; j < N; ++j) {
      float s[4];
      scores(sl[j], s);
      sc[j][0] = s[0] * a.q_scale * sl[j].ks[0];
      sc[j][1] = s[2] * a.q_scale * sl[j].ks[1];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        sc[j][r] = tok0 + 16 * j + g + 8 * r < t_end ? sc[j][r] : -INFINITY;
        mx = fmaxf(mx, sc[j][r]);
      }
    }
    mx = max_over_tokens(mx);
    const float shift = finite_or_zero(mx), alpha = exp2f(m - shift);
    m = mx;
    float p[N][2];
#pragma unroll
    for (int j = 0; j < N; ++j)
#pragma unroll
      for (int r = 0; r < 2; ++r) p[j][r] = exp2f(sc[j][r] - shift);
    // this lane's sum of p and largest V scale (past t_end: 0) over the N slices
    float psum = p[0][0] + p[0][1], vmax = fmaxf(sl[0].vs[0], sl[0].vs[1]);
#pragma unroll
    for (int j = 1; j < N; ++j)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        psum += p[j][r];
        vmax = fmaxf(vmax, sl[j].vs[r]);
      }
    l = fmaf(l, alpha, psum);
    const float rs = fmaxf(max_over_tokens(vmax), FLT_MIN);
    const float inv = 1.0f / rs, factor = alpha * r_scale * inv;
    r_scale = rs;
    uint32_t b[N][2];  // P^T's B fragments, P = p vs / r
#pragma unroll
    for (int j = 0; j < N; ++j) {
      const float p0 = p[j][0] * (sl[j].vs[0] * inv), p1 = p[j][1] * (sl[j].vs[1] * inv);
      // tokens 2t, 2t+1 from lanes 8t, 8t + 4 (c0), tokens 2t+8, 2t+9 (c2)
      const float x0 = __shfl_sync(0xffffffffu, p0, 8 * t), x1 = __shfl_sync(0xffffffffu, p0, 8 * t + 4);
      const float y0 = __shfl_sync(0xffffffffu, p1, 8 * t), y1 = __shfl_sync(0xffffffffu, p1, 8 * t + 4);
      b[j][0] = pack_mma<C>(x0, x1), b[j][1] = pack_mma<C>(y0, y1);
    }
#pragma unroll
    for (int mt = 0; mt < Geo::kSteps; ++mt) {
      acc[mt][0] *= factor;
      acc[mt][2] *= factor;
    }
#pragma unroll
    for (int j = 0; j < N; ++j) accumulate(sl[j], b[j][0], b[j][1]);
  }
};

// Pipeline: each warp takes kSlices consecutive slices of every block iteration (one softmax step
// over them); the next iteration's slices are loaded into registers before the current ones are
// computed.
template <KVCacheDType C, int D>
__global__ void __launch_bounds__(kMhaThreads, MhaDirectGeometry<C, D>::kMinBlocksPerSm) decode_mha_direct_kernel(DecodeArgs a) {
  using Geo = MhaDirectGeometry<C, D>;
  tiles::wait_for_predecessor();  // q, the newest row and the lengths are written
  tiles::launch_dependents();     // the combine pass may start (it waits for this grid)
  const DecodeBlock blk(a, 1, /*read_lengths=*/true, /*interleaved_splits=*/true);
  if (blk.t_begin >= blk.t_end) return;  // this chunk lies beyond the sequence (the whole block agrees)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int warp_row = warp * Geo::kSlices * 16;
  MhaSlice<C, D> cur[Geo::kSlices];
#pragma unroll
  for (int j = 0; j < Geo::kSlices; ++j) cur[j].load(a, blk, blk.t_begin + warp_row + 16 * j, g, t);
  MhaWarpState<C, D> st;
  st.init(a, blk, g, t);
  for (int t0 = blk.t_begin; t0 < blk.t_end; t0 += blk.step) {
    MhaSlice<C, D> next[Geo::kSlices];
#pragma unroll
    for (int j = 0; j < Geo::kSlices; ++j) next[j].load(a, blk, t0 + blk.step + warp_row + 16 * j, g, t);
    if (t0 + warp_row < blk.t_end) st.consume(a, cur, t0 + warp_row, blk.t_end, g, t);  // (warp-uniform)
#pragma unroll
    for (int j = 0; j < Geo::kSlices; ++j) cur[j] = next[j];
  }
  // the warps' states -> shared memory -> write_block_state (head 0 of lanes t = 0)
  st.l = sum_over_tokens(st.l);
  __shared__ float warp_o[kMhaWarps][D];
  __shared__ float warp_m[kMhaWarps], warp_l[kMhaWarps];
  if (t == 0) {
#pragma unroll
    for (int mt = 0; mt < Geo::kSteps; ++mt) {
      warp_o[warp][g * (D / 8) + 2 * mt] = st.acc[mt][0] * st.r_scale;
      warp_o[warp][g * (D / 8) + 2 * mt + 1] = st.acc[mt][2] * st.r_scale;
    }
    if (g == 0) warp_m[warp] = st.m, warp_l[warp] = st.l;
  }
  __syncthreads();
  __shared__ MergeScratch<kMhaThreads> scratch;
  write_block_state<D, kMhaWarps>(a, blk, 1, warp_m, warp_l, PlainStateRows<D>{&warp_o[0][0]}, scratch);
}

}  // namespace
}  // namespace attn::kern
