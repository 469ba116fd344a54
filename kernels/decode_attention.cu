// Decode attention over a KV cache ("flash-decoding") and the cache writes that feed it.
// The contract and the math are in kernels/decode_attention.h; here, how it runs:
//
// Short caches take one kernel with no splits (kernels/decode_attention_short.cuh: MHA over bf16
// whose whole head fits one block's shared memory; short_head_smem). Otherwise,
// three split kernels, grid (head groups x splits, Hkv, B), 128 threads; block (j, s, g, b)
// streams its split's cache rows below lengths[b] of kv head g once (the tensor-core kernel: rows
// [s * chunk, (s + 1) * chunk); the MHA kernels: the row blocks s, s + splits, ... of chunk rows,
// see DecodeBlock) and serves the query heads of head group j of kv head g from that read:
//   s_t = (scale * log2 e) * ks_t * (q_h . k_t)             (ks_t = 1 unless 8-bit)
//   m = max_t s_t,  l = sum_t 2^(s_t - m),  o = sum_t 2^(s_t - m) vs_t v_t   (online)
// and writes the partial (m, l, o) of its rows to fp32 workspace (with one split, o / l to
// the output directly). Blocks whose first row is at or beyond lengths[b] exit at once; the
// split count depends on (B, Hkv, H, max_len, dtypes, device) only (one full wave of resident
// blocks), so a captured CUDA graph stays valid while the lengths grow.
//  - decode_mma_kernel (kernels/decode_attention_mma.cuh), bf16 activations over a bf16, e4m3
//    or int8 cache: 16 query heads per block on mma.sync tensor cores, the cache through a
//    3-4 stage cp.async ring in shared memory, 8-bit dequantized in registers after the read.
//  - decode_mha_direct_kernel (kernels/decode_attention_mha.cuh), bf16 activations over an e4m3
//    or int8 cache, MHA: mma.sync with the 16 tokens of a slice as M, fragments loaded straight
//    from global memory into registers, the next iteration's before the current one is computed.
//  - decode_split_kernel (below), MHA over bf16, fp32 activations or an fp32 cache (fp32
//    accuracy): CUDA cores, 4 query heads per block (MHA: 1), 16-byte loads (8-byte for 8-bit
//    with 4 heads) straight into registers, the next iteration's issued before the current one
//    is computed. Its kAppend instantiation (bf16 MHA with append_at) also appends the newest
//    row; every other kernel has a kv_cache_write launched before it for that.
// With more than one split, the partials are merged by the log-sum-exp rule
//   M = max_s m_s,  o = sum_s 2^(m_s - M) o_s / sum_s 2^(m_s - M) l_s
// (decode_attention_common.cuh: merge_splits), either by the last block of each head group to
// finish (a count per head group in the workspace; one kernel per call) when each of its threads
// folds at most one partial, or by decode_combine_kernel (grid B * H, launched with programmatic
// dependent launch); the rule and its measurements: merge_in_last_block.
// Measured on the H100 (bench_decode_attention, CUDA-core kernel): staging the rows through a
// cp.async ring of 2-6 stages read 2-6% less than its register loads (there the CUDA cores,
// not the loads, were the limit for grouped heads); sizing the splits for 0.5, 0.75 or 1.5
// waves instead of 1 did not help.
#include "kernels/decode_attention.h"

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>

#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/decode_attention_common.cuh"
#include "kernels/decode_attention_mha.cuh"
#include "kernels/decode_attention_mma.cuh"
#include "kernels/decode_attention_short.cuh"
#include "kernels/tiles/pdl.cuh"

namespace attn {

namespace kern {
namespace {

constexpr int kDecodeThreads = 128;  // 4 warps
constexpr int kDecodeWarps = kDecodeThreads / 32;
// Query heads of one kv head served by one block: kHeadsPerBlock (q and acc in registers), or
// one for MHA, whose kernel then needs half the registers: twice the resident blocks, twice
// the loads in flight.
constexpr int kHeadsPerBlock = 4;
// Bytes of K (and as many of V) a lane reads per iteration.
constexpr int kDecodeLaneKBytes = 64;

// Register geometry of one (cache dtype, D, heads per block). A lane owns kVec consecutive
// columns of a row: one 16-byte load (4 fp32, 8 bf16, 16 8-bit columns), except 8-bit with
// several heads per block, which loads 8 bytes (8 columns) so that the dot products and the
// output accumulators of its kHG heads fit the registers. (8-bit MHA at 16 bytes against 8, H100,
// same call: B=1 ctx 32768 fp8 27.5 -> 27.0 us, int8 27.8 -> 27.1, D=128 int8 57.3 -> 55.1;
// B=32 ctx 4096 fp8 77.1 -> 75.2, int8 77.4 -> 75.2: half the load and scale instructions,
// one shuffle level fewer per dot product.) kLanesPerRow lanes cover a row, so one
// warp load instruction reads kRowsPerLoad consecutive rows (contiguous bytes). Each lane issues
// kLoadsPerLane loads of K and as many of V per iteration (128 bytes per lane, 16 KiB per block in
// flight: Little's law wants ~24 KiB per SM), and the next iteration's loads are issued before
// the current one is computed.
template <KVCacheDType C, int D, int kHG>
struct DecodeGeometry {
  static constexpr int kVec = C == KVCacheDType::FP32 ? 4 : (is_8bit(C) && kHG == 1 ? 16 : 8);
  static constexpr int kLoadBytes = kVec * element_bytes(C);
  static constexpr int kLanesPerRow = D / kVec;
  static constexpr int kRowsPerLoad = 32 / kLanesPerRow;
  static constexpr int kLoadsPerLane = kDecodeLaneKBytes / kLoadBytes;
  static constexpr int kWarpRows = kRowsPerLoad * kLoadsPerLane;  // rows per warp per iteration
  static constexpr int kBlockRows = kDecodeWarps * kWarpRows;       // rows per block per iteration
  using Raw = std::conditional_t<kLoadBytes == 16, int4, uint2>;
  static_assert(kLanesPerRow <= 32 && 32 % kLanesPerRow == 0, "a row must be covered by a power-of-two lane group");
};

// Stored cache elements of one load -> floats (the stored values; 8-bit scales applied later).
__device__ __forceinline__ void unpack(const int4& w, float* out, std::integral_constant<KVCacheDType, KVCacheDType::FP32>) {
  out[0] = __int_as_float(w.x); out[1] = __int_as_float(w.y); out[2] = __int_as_float(w.z); out[3] = __int_as_float(w.w);
}
// bf16 is the top half of an fp32: element 2i is the low half of word i.
__device__ __forceinline__ void unpack(const int4& w, float* out, std::integral_constant<KVCacheDType, KVCacheDType::BF16>) {
  const uint32_t u[4] = {(uint32_t)w.x, (uint32_t)w.y, (uint32_t)w.z, (uint32_t)w.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    out[2 * i] = __uint_as_float(u[i] << 16);
    out[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
  }
}
// e4m3 pairs -> half2 in one conversion each, then to float.
__device__ __forceinline__ void unpack(const uint2& w, float* out, std::integral_constant<KVCacheDType, KVCacheDType::FP8_E4M3>) {
  const uint32_t u[2] = {w.x, w.y};
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float2 a = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(u[i] & 0xffffu), __NV_E4M3)));
    const float2 b = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(u[i] >> 16), __NV_E4M3)));
    out[4 * i + 0] = a.x; out[4 * i + 1] = a.y; out[4 * i + 2] = b.x; out[4 * i + 3] = b.y;
  }
}
// int8 x -> float exactly: the byte (x + 128) as the mantissa of 2^23, i.e. 2^23 + x + 128,
// minus 2^23 + 128 (one byte permute and one add per element).
__device__ __forceinline__ void unpack(const uint2& w, float* out, std::integral_constant<KVCacheDType, KVCacheDType::INT8>) {
  const uint32_t u[2] = {w.x ^ 0x80808080u, w.y ^ 0x80808080u};
#pragma unroll
  for (int i = 0; i < 8; ++i)
    out[i] = __uint_as_float(__byte_perm(u[i / 4], 0x4B000000u, 0x7540u | (i % 4))) - 8388736.0f;
}


// 16 8-bit elements: the two 8-byte halves in order.
template <KVCacheDType C, std::enable_if_t<is_8bit(C), int> = 0>
__device__ __forceinline__ void unpack(const int4& w, float* out, std::integral_constant<KVCacheDType, C> c) {
  unpack(make_uint2((uint32_t)w.x, (uint32_t)w.y), out, c);
  unpack(make_uint2((uint32_t)w.z, (uint32_t)w.w), out + 8, c);
}

// Loads the compiler keeps in program order (volatile): the split kernel's first rows, issued
// before the lengths[b] read that decides whether they are used.
__device__ __forceinline__ int4 load_stream_volatile(const int4* p) {
  int4 r;
  asm volatile("ld.global.cs.v4.s32 {%0, %1, %2, %3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
}
__device__ __forceinline__ uint2 load_stream_volatile(const uint2* p) {
  uint2 r;
  asm volatile("ld.global.cs.v2.u32 {%0, %1}, [%2];" : "=r"(r.x), "=r"(r.y) : "l"(p));
  return r;
}
__device__ __forceinline__ float load_volatile(const float* p) {
  float r;
  asm volatile("ld.global.nc.f32 %0, [%1];" : "=f"(r) : "l"(p));
  return r;
}

// One lane's share of a block's work: for each of the block's heads h and the lane's own
// stream of rows (rows t with (t mod kWarpRows) / kRowsPerLoad fixed), the online-softmax
// state m_h, l_h and acc_h[kVec] of the lane's columns:
//   s_t = q_h . k_t (q pre-scaled, lane partial dots summed over the row's lanes by shuffles) * ks_t
//   m' = max(m, max_t s_t),  l' = 2^(m - m') l + sum_t 2^(s_t - m'),
//   acc' = 2^(m - m') acc + sum_t 2^(s_t - m') vs_t v_t
// consume() takes one iteration's rows (kLoadsPerLane loads of K and V per lane, wherever they
// were loaded from); finish() merges the row streams of the warp, then the 4 warps, and writes
// the block's partial (m, l, o) per head.
template <KVCacheDType C, int D, int kHG>
struct DecodeLaneState {
  using Geo = DecodeGeometry<C, D, kHG>;
  using Raw = typename Geo::Raw;
  static constexpr int kVec = Geo::kVec, kL = Geo::kLanesPerRow, kR = Geo::kRowsPerLoad, kN = Geo::kLoadsPerLane;
  float q[kHG][kVec], acc[kHG][kVec], m[kHG], l[kHG];
  int heads;  // 1..kHG heads of this block

  __device__ __forceinline__ void init(const DecodeArgs& a, int b, int h0, int col) {
#pragma unroll
    for (int h = 0; h < kHG; ++h) {
      m[h] = -INFINITY;
      l[h] = 0.0f;
#pragma unroll
      for (int e = 0; e < kVec; ++e) {
        acc[h][e] = 0.0f;
        q[h][e] = 0.0f;
        if (h < heads) {
          const int64_t off = (int64_t)b * a.q_batch_stride + (int64_t)(h0 + h) * D + col * kVec + e;
          q[h][e] = load_act_volatile(a.q, off, a.act_bf16) * a.q_scale;  // ahead of the lengths[b] read
        }
      }
    }
  }

  // valid_rows: rows of this iteration before the end (lane_row + n * kR < valid_rows)
  __device__ __forceinline__ void consume(const Raw* k_cur, const Raw* v_cur, const float* ks_cur, const float* vs_cur,
                                          int lane_row, int valid_rows) {
    float s[kHG][kN];  // scores (exp2 domain), -inf for rows past the end
#pragma unroll
    for (int n = 0; n < kN; ++n) {
      float kx[kVec];
      unpack(k_cur[n], kx, std::integral_constant<KVCacheDType, C>{});
#pragma unroll
      for (int h = 0; h < kHG; ++h) {
        float dot = 0.0f;
        if (h < heads) {
#pragma unroll
          for (int e = 0; e < kVec; ++e) dot = fmaf(q[h][e], kx[e], dot);
#pragma unroll
          for (int off = kL / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        }
        s[h][n] = dot;
      }
    }
#pragma unroll
    for (int n = 0; n < kN; ++n) {
      const bool valid = lane_row + n * kR < valid_rows;
#pragma unroll
      for (int h = 0; h < kHG; ++h) s[h][n] = valid ? s[h][n] * ks_cur[n] : -INFINITY;
    }
    // online softmax update; s becomes the probability times the row's V scale
#pragma unroll
    for (int h = 0; h < kHG; ++h) {
      if (h >= heads) continue;
      float mx = m[h];
#pragma unroll
      for (int n = 0; n < kN; ++n) mx = fmaxf(mx, s[h][n]);
      const float shift = finite_or_zero(mx);
      const float alpha = exp2f(m[h] - shift);
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < kN; ++n) {
        const float p = exp2f(s[h][n] - shift);
        sum += p;
        s[h][n] = p * vs_cur[n];
      }
      m[h] = mx;
      l[h] = fmaf(l[h], alpha, sum);
#pragma unroll
      for (int e = 0; e < kVec; ++e) acc[h][e] *= alpha;
    }
#pragma unroll
    for (int n = 0; n < kN; ++n) {
      float vx[kVec];
      unpack(v_cur[n], vx, std::integral_constant<KVCacheDType, C>{});
#pragma unroll
      for (int h = 0; h < kHG; ++h) {
        if (h >= heads) continue;
#pragma unroll
        for (int e = 0; e < kVec; ++e) acc[h][e] = fmaf(s[h][n], vx[e], acc[h][e]);
      }
    }
  }

  __device__ __forceinline__ void finish(const DecodeArgs& a, const DecodeBlock& blk, int warp, int row_in_load,
                                         int col) {
#pragma unroll
    for (int h = 0; h < kHG; ++h) {
#pragma unroll
      for (int off = kL; off < 32; off <<= 1) {
        float other[kVec];
#pragma unroll
        for (int e = 0; e < kVec; ++e) other[e] = __shfl_xor_sync(0xffffffffu, acc[h][e], off);
        const float m_o = __shfl_xor_sync(0xffffffffu, m[h], off), l_o = __shfl_xor_sync(0xffffffffu, l[h], off);
        merge_softmax_state<kVec>(m[h], l[h], acc[h], m_o, l_o, other);
      }
    }
    __shared__ float warp_o[kDecodeWarps][kHG][D];
    __shared__ float warp_m[kDecodeWarps][kHG], warp_l[kDecodeWarps][kHG];
    if (row_in_load == 0) {
#pragma unroll
      for (int h = 0; h < kHG; ++h) {
#pragma unroll
        for (int e = 0; e < kVec; ++e) warp_o[warp][h][col * kVec + e] = acc[h][e];
        if (col == 0) {
          warp_m[warp][h] = m[h];
          warp_l[warp][h] = l[h];
        }
      }
    }
    __syncthreads();
    __shared__ MergeScratch<kDecodeThreads> scratch;
    write_block_state<D, kDecodeWarps>(a, blk, kHG, &warp_m[0][0], &warp_l[0][0], PlainStateRows<D>{&warp_o[0][0][0]},
                                        scratch);
  }
};

// Resident blocks per SM the register budget is held to (what each variant reaches without
// spilling; more blocks = more loads in flight). bf16 MHA at D = 64: 5 (B=1 ctx 32768: 32.4 ->
// 31.6 us on the H200, same call; D = 128 no better at 5, and 8-bit MHA 2-3% slower at 4).
template <KVCacheDType C, int D, int kHG>
constexpr int kDecodeMinBlocks =
    kHG == 1 ? (is_8bit(C) ? 3 : (C == KVCacheDType::BF16 && D == 64 ? 5 : 4)) : (is_8bit(C) ? 2 : 3);

// The first iteration's copy of the newest row (position length - 1), loaded before the wait for
// the kernel that writes it, may be stale: this lane loads it again, from L2.
template <KVCacheDType C, int kR, class Raw, int kN>
__device__ __forceinline__ void reload_newest_row(const DecodeBlock& blk, Raw (&k_cur)[kN], Raw (&v_cur)[kN],
                                                  float (&ks_cur)[kN], float (&vs_cur)[kN], const uint8_t* k_base,
                                                  const uint8_t* v_base, const float* k_scale, const float* v_scale,
                                                  int row_bytes, int lane_row) {
#pragma unroll
  for (int n = 0; n < kN; ++n) {
    const int t = blk.t_begin + lane_row + n * kR;
    if (t != blk.length - 1) continue;
    k_cur[n] = __ldcg(reinterpret_cast<const Raw*>(k_base + (size_t)t * row_bytes));
    v_cur[n] = __ldcg(reinterpret_cast<const Raw*>(v_base + (size_t)t * row_bytes));
    if constexpr (is_8bit(C)) {
      ks_cur[n] = __ldcg(k_scale + t);
      vs_cur[n] = __ldcg(v_scale + t);
    }
  }
}

// This lane's rows first + n * kR at or past `end` as zeros with unit scales.
template <int kR, class Raw, int kN>
__device__ __forceinline__ void zero_rows_from(int first, int end, Raw (&k_cur)[kN], Raw (&v_cur)[kN],
                                               float (&ks_cur)[kN], float (&vs_cur)[kN]) {
#pragma unroll
  for (int n = 0; n < kN; ++n) {
    if (first + n * kR < end) continue;
    k_cur[n] = Raw{};
    v_cur[n] = Raw{};
    ks_cur[n] = 1.0f;
    vs_cur[n] = 1.0f;
  }
}

// kAppend, split 0: the newest row as one more iteration of a single row (row 0 of the iteration:
// the lanes of warp 0's first row, one Raw of K and V each; all other rows masked). Its bytes are
// the bf16 activations' (the packed qkv row), and head group 0 stores them into the cache.
template <KVCacheDType C, int D, int kHG, class Raw, int kN>
__device__ __forceinline__ void consume_appended_row(const DecodeArgs& a, const DecodeBlock& blk,
                                                     DecodeLaneState<C, D, kHG>& st, Raw (&k_cur)[kN], Raw (&v_cur)[kN],
                                                     float (&ks_cur)[kN], float (&vs_cur)[kN], int lane_row, int col) {
  using Geo = DecodeGeometry<C, D, kHG>;
  constexpr int kRowBytes = D * element_bytes(C);
  const int t = blk.length - 1;
#pragma unroll
  for (int n = 0; n < kN; ++n) {
    k_cur[n] = Raw{};
    v_cur[n] = Raw{};
    ks_cur[n] = vs_cur[n] = 1.0f;
  }
  if (lane_row == 0) {
    const uint8_t* row = static_cast<const uint8_t*>(a.q) +
                         ((int64_t)blk.b * a.q_batch_stride + (int64_t)(a.H + blk.g) * D) * element_bytes(C) +
                         col * Geo::kLoadBytes;
    const int64_t v_off = (int64_t)a.Hkv * kRowBytes;  // V heads follow the K heads
    k_cur[0] = __ldcg(reinterpret_cast<const Raw*>(row));
    v_cur[0] = __ldcg(reinterpret_cast<const Raw*>(row + v_off));
    if (blk.head_group == 0) {
      const size_t at = (blk.row0 + t) * kRowBytes + col * Geo::kLoadBytes;
      *reinterpret_cast<Raw*>(a.k + at) = k_cur[0];
      *reinterpret_cast<Raw*>(a.v + at) = v_cur[0];
    }
  }
  st.consume(k_cur, v_cur, ks_cur, vs_cur, lane_row, 1);
}

// Loads straight into registers, the next iteration's issued before the current one is
// computed (kLoadsPerLane 16- or 8-byte loads of K and of V per lane in flight).
// kAppend (a bf16 cache of bf16 activations, DecodeAttentionParams::append_at): the newest row of
// each sequence is not in the cache yet; the loop stops short of it, and split 0 takes it from the
// packed qkv row afterwards and stores it. A separate instantiation, so that the kernel without it
// is the same machine code.
template <KVCacheDType C, int D, int kHG, bool kAppend = false>
__global__ void __launch_bounds__(kDecodeThreads, kDecodeMinBlocks<C, D, kHG>) decode_split_kernel(DecodeArgs a) {
  static_assert(!kAppend || C == KVCacheDType::BF16, "the append copies bf16 activations into a bf16 cache");
  using Geo = DecodeGeometry<C, D, kHG>;
  using Raw = typename Geo::Raw;
  constexpr int kN = Geo::kLoadsPerLane, kR = Geo::kRowsPerLoad;
  constexpr int kRowBytes = D * element_bytes(C);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, row_in_load = lane / Geo::kLanesPerRow;
  const int col = lane % Geo::kLanesPerRow;
  const int lane_row = warp * Geo::kWarpRows + row_in_load;  // + n * kR: this lane's rows of an iteration
  // Before waiting for the kernel before this one (programmatic dependent launch), which may
  // still be writing q and the rows at lengths[b] - 1 (decode_attention.h): the first
  // iteration's rows and lengths[b]. The rows are loaded before the length is known (rows below
  // max_len are always the cache's memory; those at or past the length are zeroed once it is
  // known), and the row at lengths[b] - 1 is loaded again after the wait. So the first
  // computation waits for q, an L2 read, instead of the cache's DRAM round trip.
  DecodeBlock blk(a, kHG, /*read_lengths=*/false, /*interleaved_splits=*/true);
  const uint8_t* k_base = a.k + blk.row0 * kRowBytes + col * Geo::kLoadBytes;
  const uint8_t* v_base = a.v + blk.row0 * kRowBytes + col * Geo::kLoadBytes;
  const float* k_scale = is_8bit(C) ? a.k_scale + blk.row0 : nullptr;
  const float* v_scale = is_8bit(C) ? a.v_scale + blk.row0 : nullptr;

  // One iteration's loads of the rows below `bound`; the others come in as zeros (their memory
  // may hold garbage or lie past max_len) with unit scales, and their scores are set to -inf.
  // `early`: loads that stay where they are written (volatile), ahead of the lengths[b] read.
  Raw k_cur[kN], v_cur[kN];
  float ks_cur[kN], vs_cur[kN];
  auto load = [&](int t0, int bound, Raw* kr, Raw* vr, float* ks, float* vs, bool early) {
#pragma unroll
    for (int n = 0; n < kN; ++n) {
      const int t = t0 + lane_row + n * kR;
      kr[n] = Raw{};
      vr[n] = Raw{};
      ks[n] = 1.0f;
      vs[n] = 1.0f;
      if (t < bound) {
        const Raw* kp = reinterpret_cast<const Raw*>(k_base + (size_t)t * kRowBytes);
        const Raw* vp = reinterpret_cast<const Raw*>(v_base + (size_t)t * kRowBytes);
        kr[n] = early ? load_stream_volatile(kp) : __ldcs(kp);
        vr[n] = early ? load_stream_volatile(vp) : __ldcs(vp);
        if constexpr (is_8bit(C)) {
          ks[n] = early ? load_volatile(k_scale + t) : __ldg(k_scale + t);
          vs[n] = early ? load_volatile(v_scale + t) : __ldg(v_scale + t);
        }
      }
    }
  };
  load(blk.t_begin, min(blk.t_begin + a.chunk, a.max_len), k_cur, v_cur, ks_cur, vs_cur, true);
  blk.read_length(a);
  tiles::wait_for_predecessor();  // q (and, without kAppend, the newest row) are written
  tiles::launch_dependents();     // the combine pass may start (it waits for this grid)
  DecodeLaneState<C, D, kHG> st;
  st.heads = blk.heads;
  st.init(a, blk.b, blk.h0, col);
  if (blk.t_begin >= blk.t_end) return;  // this chunk lies beyond the sequence (the whole block agrees)
  // kAppend: the newest row is not in the cache; it comes last, from the qkv row (below).
  const int t_end = kAppend ? blk.t_end - 1 : blk.t_end;
  if constexpr (!kAppend) reload_newest_row<C, kR>(blk, k_cur, v_cur, ks_cur, vs_cur, k_base, v_base, k_scale, v_scale,
                                                   kRowBytes, lane_row);
  zero_rows_from<kR>(blk.t_begin + lane_row, t_end, k_cur, v_cur, ks_cur, vs_cur);
  for (int t0 = blk.t_begin; t0 < t_end; t0 += blk.step) {
    Raw k_next[kN], v_next[kN];
    float ks_next[kN], vs_next[kN];
    load(t0 + blk.step, t_end, k_next, v_next, ks_next, vs_next, false);  // in flight while this one is computed
    st.consume(k_cur, v_cur, ks_cur, vs_cur, lane_row, t_end - t0);
#pragma unroll
    for (int n = 0; n < kN; ++n) {
      k_cur[n] = k_next[n];
      v_cur[n] = v_next[n];
      ks_cur[n] = ks_next[n];
      vs_cur[n] = vs_next[n];
    }
  }
  if constexpr (kAppend) {
    if (blk.split == 0) consume_appended_row<C, D, kHG>(a, blk, st, k_cur, v_cur, ks_cur, vs_cur, lane_row, col);
  }
  st.finish(a, blk, warp, row_in_load, col);
}

// The combine pass, when the merge would be too much for one block (merge_in_kernel false):
// block (b, h) merges head h of sequence b over its splits (merge_splits). Launched with
// programmatic dependent launch: it waits for the split kernel in-kernel.
constexpr int kCombineThreads = 256;
template <int D>
__global__ void __launch_bounds__(kCombineThreads) decode_combine_kernel(DecodeArgs a) {
  tiles::wait_for_predecessor();  // the split kernel's partials are complete and visible
  tiles::launch_dependents();     // the next kernel may start its prologue (it waits for this grid)
  __shared__ MergeScratch<kCombineThreads> scratch;
  const int b = blockIdx.x / a.H, h = blockIdx.x % a.H;
  merge_splits<D, kCombineThreads>(a, b, h, 1, splits_run(a, b), scratch);
}

// ---- cache writes --------------------------------------------------------------------------
struct WriteArgs {
  const void* qkv;
  int64_t batch_stride, token_stride;
  bool act_bf16;
  int H, Hkv, D, n_new, B, max_len;
  const int32_t* start;
  void* k;
  void* v;
  float* k_scale;
  float* v_scale;
};

// One warp per (b, token i, K or V, kv head g): x = row of D activations;
//   8-bit: scale = amax|x| / qmax (1 when amax = 0), stored = round(x / scale) (int8, nearest
//   even, clamped to +-127) or e4m3(x / scale) (nearest even, saturating); else stored = x.
template <KVCacheDType C>
__global__ void kv_cache_write_kernel(WriteArgs a) {
  tiles::wait_for_predecessor();  // programmatic dependent launch: qkv and start are written
  tiles::launch_dependents();
  const int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (w >= (int64_t)a.B * a.n_new * 2 * a.Hkv) return;  // whole warps leave together
  const int g = (int)(w % a.Hkv), kv = (int)((w / a.Hkv) % 2), i = (int)((w / (2 * a.Hkv)) % a.n_new);
  const int b = (int)(w / ((int64_t)2 * a.Hkv * a.n_new));
  const int t = a.start[b] + i;
  if (t < 0 || t >= a.max_len) return;
  const int64_t src = (int64_t)b * a.batch_stride + (int64_t)i * a.token_stride + (int64_t)(a.H + kv * a.Hkv + g) * a.D;
  const size_t row = ((size_t)b * a.Hkv + g) * a.max_len + t;
  constexpr int kMaxPerLane = 4;  // D <= 128
  float x[kMaxPerLane];
  const int per_lane = a.D / 32;
#pragma unroll
  for (int j = 0; j < kMaxPerLane; ++j) {
    x[j] = 0.0f;
    if (j < per_lane) {
      const int64_t off = src + lane + 32 * j;
      x[j] = load_act(a.qkv, off, a.act_bf16);
    }
  }
  void* dst = kv ? a.v : a.k;
  if constexpr (is_8bit(C)) {
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < kMaxPerLane; ++j) amax = fmaxf(amax, fabsf(x[j]));
    amax = warp_max(amax);
    constexpr float kQmax = C == KVCacheDType::INT8 ? 127.0f : 448.0f;
    float scale = amax > 0.0f ? __fdiv_rn(amax, kQmax) : 1.0f;
    if (scale == 0.0f) scale = 1.0f;  // amax so small (subnormal) that amax / qmax underflows
    if (lane == 0) (kv ? a.v_scale : a.k_scale)[row] = scale;
#pragma unroll
    for (int j = 0; j < kMaxPerLane; ++j) {
      if (j >= per_lane) break;
      const float y = __fdiv_rn(x[j], scale);
      uint8_t stored;
      if constexpr (C == KVCacheDType::INT8) stored = (uint8_t)(int8_t)min(127, max(-127, __float2int_rn(y)));
      else stored = (uint8_t)__nv_cvt_float_to_fp8(y, __NV_SATFINITE, __NV_E4M3);
      static_cast<uint8_t*>(dst)[row * a.D + lane + 32 * j] = stored;
    }
  } else {
#pragma unroll
    for (int j = 0; j < kMaxPerLane; ++j) {
      if (j >= per_lane) break;
      const size_t off = row * a.D + lane + 32 * j;
      if constexpr (C == KVCacheDType::FP32) static_cast<float*>(dst)[off] = x[j];
      else static_cast<bf16*>(dst)[off] = __float2bfloat16_rn(x[j]);
    }
  }
}

// ---- host side ----------------------------------------------------------------------------
using SplitKernel = void (*)(DecodeArgs);

DecodeAttentionTuning& tuning() {
  static DecodeAttentionTuning t;
  return t;
}

// The split kernel of one call, and what its launch and plan need.
struct SplitKernelChoice {
  SplitKernel kernel = nullptr;
  int threads = kDecodeThreads;
  int smem = 0;             // dynamic shared memory bytes
  int heads_per_block = 1;  // query heads of one kv head served by one block
  int rows = 1;             // rows per block iteration: the chunk is a multiple of it
  bool interleaved = false;  // the splits take the row blocks round-robin (DecodeBlock), the chunk is `rows`
  double waves = 1.0;       // the splits fill this many waves of resident blocks,
  double blocks_per_sm = 0.0;  // or, when > 0, this many blocks per SM
  bool splits_at_most_sms = false;  // and a kv head gets at most one split per SM
  double long_cache_blocks_per_sm = 0.0;  // > 0: where a default split has >= kLongSplitRows rows, this many blocks per SM
  bool appends = false;  // takes the newest rows from the packed qkv rows and appends them (append_at)
};

// Long caches: the bf16 CUDA-core MHA kernel takes fewer, longer splits (3 blocks per SM instead
// of a full wave) once a split of the full-wave plan would hold at least kLongSplitRows rows; below
// that the full wave stays. Measured on the H100 (session 29, call B, bench_decode_attention, us,
// default -> 3 blocks per SM, 2-5 rounds): B=1 ctx 32768 40.06-40.45 -> 39.39-39.49, B=8 ctx
// 4096 40.42-40.51 -> 39.58-39.68, B=4 ctx 4096 23.81-23.90 -> 23.55, B=16 ctx 2048
// 40.58-40.77 -> 40.13-40.32, B=32 ctx 4096 134.82-135.04 -> 134.69, B=1 ctx 16384, 2 x 8192 and
// D = 128 level; but B=8 ctx 640 (6 -> 4 splits of ~100 rows) 12.86-12.96 -> 13.18-13.34. The
// rule leaves that shape alone: session 30, call A (H100, three rounds alternated), 13 MHA rows
// at ratios 0.979-1.000 of today's plan, none slower; B=1 ctx 32768 at 85.5% of copy.
constexpr double kLongCacheBlocksPerSm = 3.0;
constexpr int kLongSplitRows = 256;

// The CUDA-core kernel of (C, D, heads per block): a full wave of resident blocks, its rows per
// iteration from its register geometry.
template <KVCacheDType C, int D, int kHG, bool kAppend = false>
SplitKernelChoice cuda_core_choice() {
  SplitKernelChoice k;
  k.kernel = decode_split_kernel<C, D, kHG, kAppend>;
  k.heads_per_block = kHG;
  k.appends = kAppend;
  k.rows = DecodeGeometry<C, D, kHG>::kBlockRows;
  k.interleaved = true;
  if (C == KVCacheDType::BF16 && kHG == 1) k.long_cache_blocks_per_sm = kLongCacheBlocksPerSm;
  return k;
}
template <KVCacheDType C>
SplitKernelChoice cuda_core_choice_for(int D, int G) {
  if (G == 1) return D == 64 ? cuda_core_choice<C, 64, 1>() : cuda_core_choice<C, 128, 1>();
  return D == 64 ? cuda_core_choice<C, 64, kHeadsPerBlock>() : cuda_core_choice<C, 128, kHeadsPerBlock>();
}

// The tensor-core kernel's splits fill half a wave, at most one split per SM: its 3-4 stage ring
// already keeps enough loads in flight, and fewer splits mean less to merge. Measured on the H200
// (same call each): half a wave against a full one, GQA 12/4 B=1 20.8 -> 18.7 us, (32,8,128) 47.3
// -> 44.0, B=32 GQA 43.9 -> 41.2. Half a wave is about one block per SM for bf16 (2 resident) but
// two for 8-bit (4 resident), which gave MQA at B=1 264 splits of one kv head: at most one split
// per SM (132) took MQA fp8 19.7 -> 15.0 us and int8 20.0 -> 15.1, while one block per SM
// overall (the cap without half a wave) lost at B=32 (MQA fp8 19.3 -> 20.6, 8 -> 4 splits). At
// 1.5 blocks per SM (3 resident, the merge in the ring) GQA took 21.9 us, MQA 18.1 against 15.1.
// The CUDA-core kernel keeps a full wave (its 8-bit MHA at B=1: 28.2 us against 38.9 at half).
// The 8-warp kernel's plan keeps the warps per SM of the 4-warp one for bf16: one block per SM
// (it fits only one at D = 128).
constexpr double kMmaWaves = 0.5;

// 8 warps a block (two slices a scheduler, 128-token tiles) for 8-bit caches at D = 128 when the
// splits are what fills the GPU (B Hkv <= SMs: the 8-warp plan runs one block per SM) and the
// cache has at least kEightWarpRowsPerSm rows (B Hkv max_len) per SM, so that each block runs
// many tiles; else 4. Measured (same call each, µs, 4 -> 8 warps), (B, 32, 8, 128):
//   1986 rows per SM on 132 SMs (B = 1 ctx 32768, B = 8 ctx 4096), sessions 21-22: H200 fp8
//     35.1 -> 31.3, int8 37.1 -> 32.2, B = 8 fp8 35.5 -> 31.4; H100 fp8 35.4 -> 32.6, int8
//     37.4 -> 32.9; bf16 level (H200 41.7 -> 41.7, H100 52.6 -> 52.3);
//   993 rows per SM (B = 1 ctx 16384, 2 x 8192, 4 x 4096, 16 x 1024), session 23 on the H100, two
//     rounds: fp8 22.5-22.7 -> 21.5-21.7, int8 23.6-23.7 -> 21.9-22.1, bf16 28.7-31.0 -> 28.9-31.1;
//   496 rows per SM (B = 1 ctx 8192, 2 x 4096): fp8 16.0-16.1 -> 16.1-16.3, int8 16.5-16.7 ->
//     16.3-16.4, bf16 level;
//   fewer, H100: B = 1 ctx 4096 (248 rows per SM) bf16 14.1 -> 15.1, fp8 12.9 -> 13.5; ctx 640
//     bf16 9.7 -> 10.4; B = 32 ctx 4096 (256 blocks, two waves of the 8-warp kernel), H200: int8
//     94.0 -> 102.0.
// So bf16 never gains (its 4-warp ring already keeps the loads in flight), and 8-bit gains from
// about a thousand rows per SM. At D = 64 8 warps lost at B = 1 on the H100 (MQA 12.5 -> 13.1,
// GQA ctx 640 7.9 -> 8.6) and gained 1-3% at most (B = 32 GQA; GQA 12/4 ctx 32768 on the H200
// 16.8 -> 16.2).
constexpr int64_t kEightWarpRowsPerSm = 768;
int mma_warps(const KVCacheShape& s, int sms) {
  if (tuning().mma_warps > 0) return tuning().mma_warps;
  const int64_t kv_heads = (int64_t)s.B * s.Hkv;
  const bool long_cache = kv_heads <= sms && kv_heads * s.max_len >= kEightWarpRowsPerSm * sms;
  return is_8bit(s.dtype) && s.D == 128 && long_cache ? 8 : 4;
}

template <KVCacheDType C, int D, int kWarps>
SplitKernelChoice mma_choice() {
  using Geo = MmaDecodeGeometry<C, D, kWarps>;
  SplitKernelChoice k{decode_mma_kernel<C, D, kWarps>, Geo::kThreads, Geo::kSmemBytes, kMmaHeads, Geo::kTileTokens};
  k.waves = kMmaWaves;
  k.blocks_per_sm = kWarps == 8 ? 1.0 : 0.0;
  k.splits_at_most_sms = true;
  return k;
}
template <KVCacheDType C, int D>
SplitKernelChoice mma_choice_for_warps(int warps) {
  return warps == 8 ? mma_choice<C, D, 8>() : mma_choice<C, D, 4>();
}

// The MHA kernel for 8-bit caches (decode_attention_mha.cuh): a full wave of resident blocks, as
// the CUDA-core kernel.
template <KVCacheDType C, int D>
SplitKernelChoice mha_direct_choice() {
  SplitKernelChoice k{decode_mha_direct_kernel<C, D>, kMhaThreads, 0, 1, MhaDirectGeometry<C, D>::kBlockRows};
  k.interleaved = true;
  return k;
}

// With bf16 activations: tensor cores for grouped heads (G > 1) over a bf16/e4m3/int8 cache, and
// for MHA (G = 1) over an 8-bit cache, in the direct-fragment kernel; CUDA cores for MHA over
// bf16, fp32 activations or an fp32 cache (fp32 accuracy, 2e-5, is beyond bf16/fp16 mma inputs).
// Measured: the ring kernel lost on MHA (H200, 2026-12-03, B=1 ctx 32768: 33.3 us against 40.8
// bf16, 28.5 against 34.3 fp8; B=32 ctx 4096: 95.5 against 108.3; again on the H100 2026-12-05
// at 4 and 8 warps and five split plans), while every grouped shape gained (GQA 12/4 24.3 ->
// 22.6 us, 32/8 D=128 63.9 -> 47.5, its fp8/int8 87 -> 46, MQA 21.3 -> 18.7). The
// direct-fragment kernel against the CUDA-core one (H100, 2026-12-05, same call): fp8 / int8 B=1
// ctx 32768 27.6 -> 26.5 / 26.6 us, D=128 56.0 -> 54.9 / 55.0, B=32 ctx 4096 77.3 / 77.1 -> 76.6;
// over bf16 it lost at ctx 32768 (41.9 against 41.6) and B=32 (134.5 against 133.9), though it won
// at the decode step's ctx 640 (8.2 against 8.6), so bf16 stays on CUDA cores.
SplitKernelChoice choose_split_kernel(const DecodeAttentionParams& p, int G, int sms) {
  const KVCacheDType c = p.shape.dtype;
  const int D = p.shape.D;
  if (p.act_bf16 && G == 1 && is_8bit(c) && tuning().tensor_cores && !tuning().mha_tensor_cores) {
    if (c == KVCacheDType::FP8_E4M3)
      return D == 64 ? mha_direct_choice<KVCacheDType::FP8_E4M3, 64>() : mha_direct_choice<KVCacheDType::FP8_E4M3, 128>();
    return D == 64 ? mha_direct_choice<KVCacheDType::INT8, 64>() : mha_direct_choice<KVCacheDType::INT8, 128>();
  }
  if (p.act_bf16 && c != KVCacheDType::FP32 && (G > 1 || tuning().mha_tensor_cores) && tuning().tensor_cores) {
    const int warps = mma_warps(p.shape, sms);
    switch (c) {
      case KVCacheDType::BF16:
        return D == 64 ? mma_choice_for_warps<KVCacheDType::BF16, 64>(warps) : mma_choice_for_warps<KVCacheDType::BF16, 128>(warps);
      case KVCacheDType::FP8_E4M3:
        return D == 64 ? mma_choice_for_warps<KVCacheDType::FP8_E4M3, 64>(warps)
                       : mma_choice_for_warps<KVCacheDType::FP8_E4M3, 128>(warps);
      case KVCacheDType::INT8:
        return D == 64 ? mma_choice_for_warps<KVCacheDType::INT8, 64>(warps) : mma_choice_for_warps<KVCacheDType::INT8, 128>(warps);
      case KVCacheDType::FP32: break;
    }
  }
  if (p.append_at && p.act_bf16 && c == KVCacheDType::BF16 && G == 1)  // MHA over bf16: the append in the kernel
    return D == 64 ? cuda_core_choice<KVCacheDType::BF16, 64, 1, true>() : cuda_core_choice<KVCacheDType::BF16, 128, 1, true>();
  switch (c) {
    case KVCacheDType::FP32: return cuda_core_choice_for<KVCacheDType::FP32>(D, G);
    case KVCacheDType::BF16: return cuda_core_choice_for<KVCacheDType::BF16>(D, G);
    case KVCacheDType::FP8_E4M3: return cuda_core_choice_for<KVCacheDType::FP8_E4M3>(D, G);
    case KVCacheDType::INT8: break;
  }
  return cuda_core_choice_for<KVCacheDType::INT8>(D, G);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

void check_shape(const KVCacheShape& s, int H, const char* who) {
  ATTN_CHECK(s.D == 64 || s.D == 128, "{}: head dim D = {} is not supported (64 or 128)", who, s.D);
  ATTN_CHECK(s.B > 0 && s.Hkv > 0 && s.max_len > 0, "{}: cache shape B = {}, Hkv = {}, max_len = {} must be positive",
             who, s.B, s.Hkv, s.max_len);
  ATTN_CHECK(H > 0 && H % s.Hkv == 0, "{}: H = {} query heads is not a multiple of Hkv = {} kv heads", who, H, s.Hkv);
}

void check_cache(const KVCacheLayer& c, const KVCacheShape& s, const char* who) {
  ATTN_CHECK(c.k && c.v && aligned16(c.k) && aligned16(c.v), "{}: cache K/V pointers must be non-null and 16-byte aligned",
             who);
  if (is_8bit(s.dtype))
    ATTN_CHECK(c.k_scale && c.v_scale, "{}: an 8-bit cache needs k_scale and v_scale", who);
}

// Resident blocks per SM of a split kernel (its dynamic shared memory allowed first): once per
// (device, kernel), since a decode step runs once per layer and token.
int blocks_per_sm(int dev, const SplitKernelChoice& k) {
  static std::mutex mu;
  static std::map<std::pair<int, const void*>, int> known;
  const std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(dev, reinterpret_cast<const void*>(k.kernel));
  if (const auto it = known.find(key); it != known.end()) return it->second;
  if (k.smem > 0) {  // the cp.async ring bypasses L1: all of the unified memory as shared
    CUDA_CHECK(cudaFuncSetAttribute(k.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, k.smem));
    CUDA_CHECK(cudaFuncSetAttribute(k.kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                    (int)cudaSharedmemCarveoutMaxShared));
  }
  int n = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, k.kernel, k.threads, k.smem));
  known[key] = n;
  return n;
}

// Short caches (kernels/decode_attention_short.cuh): MHA over a bf16 cache with bf16 activations
// and no append, when one block's shared memory holds K and V of max_len rows and a block for
// every (sequence, head) is resident at once (B H <= SMs): the whole head in one block, no
// partials, no combine pass. The dynamic shared memory it may ask for is raised to the device's
// opt-in maximum once per (device, kernel). Returns the block's bytes, or 0 where it does not apply.
// Measured on the H100 (session 33, calls G and H, against the split kernels in the same call): the
// GPT-2 124M decode step at B = 1 (context 640) 0.251-0.252 -> 0.244-0.245 ms, 74 -> 62 kernels,
// B = 8 level; alone, L2 flushed: B = 8 ctx 640 12.80-12.90 -> 12.32-12.35 us, 4 x 16 heads D = 128
// ctx 400 12.13 -> 11.87, B = 1 ctx 1024 level, B = 1 ctx 640 8.10-8.19 -> 8.26-8.29 (alone, no kernel
// before it hides the one SM's copy of the head; in the step the qkv GEMV does).
// It launches at the smallest carveout that holds its block (DecodePlan::carveout), not the
// largest, so that an SM keeps L1 for the kernels around it (session 34, call F, H100, with the
// GEMVs at the same carveout from B = 8: alone, L2 flushed, B = 1 ctx 640 8.83 -> 8.74 us, ctx 128
// 6.37 -> 6.24, B = 8 level; the step: backend/generator.h's kGemvCarveoutFromBatch).
// Tried and dropped (session 35, call A, H100, branch s35-short-cluster-dropped): a head shared by a
// thread-block cluster of 2 or 4 blocks, their states merged through distributed shared memory,
// the GEMVs at the clusters' smaller carveout. Alone it won only at ctx 640 (8.6 -> 8.2 us) and
// lost at ctx 128 (6.2 -> 7.7); in the step B = 1 was level (0.244 -> 0.245 ms), B = 2 and 4
// 2-3% slower: the attention's critical time fell 2.5 us a step and the GEMVs' rose as much.
size_t short_head_smem(const DecodeAttentionParams& p, int G, int sms) {
  const KVCacheShape& s = p.shape;
  if (!tuning().short_heads || !p.act_bf16 || s.dtype != KVCacheDType::BF16 || G != 1 || p.append_at ||
      (int64_t)s.B * p.H > sms)
    return 0;
  const size_t bytes = s.D == 64 ? ShortHeadLayout<64>(s.max_len).bytes : ShortHeadLayout<128>(s.max_len).bytes;
  const int optin = tiles::max_smem_per_block();
  if (bytes > (size_t)optin) return 0;
  if (s.D == 64) tiles::set_smem_limit_once<decode_short_head_kernel<64>>(optin);
  else tiles::set_smem_limit_once<decode_short_head_kernel<128>>(optin);
  return bytes;
}

// How one decode call is cut up: a function of (dtype, activations, B, Hkv, max_len, D, G,
// device) only.
struct DecodePlan {
  int G = 1, head_groups = 1, splits = 1, chunk = 0;
  int carveout = -1;  // the split kernel's preferred shared-memory carveout for its launch (-1: none)
  bool merge_in_kernel = true;  // the head group's last block merges (else the combine kernel)
  SplitKernelChoice kernel;
};

// The last block of a head group merges its partials when each of its threads then folds at
// most one (merge_splits: one (head, float4 column) item a thread, an item's splits shared by
// threads / items threads); else the combine kernel's B * H blocks of kCombineThreads, one head
// each, merge them. Measured on the H100 (session 21, call F: the merge forced either way, same
// call, µs): at B = 1 the combine kernel won every row: MHA ctx 32768 39.4 against 39.9 (52
// splits), D = 128 fp8 51.7 / 52.6, ctx 640 8.2 / 8.6 (10 splits), GQA 12/4 19.2 / 20.7, its int8
// 16.5 / 20.2, (32,8,128) 52.5 / 54.9; and B = 4 ctx 2048 (13 splits) 15.6 / 15.8. With one
// partial a thread the last block's merge was level or ahead: B = 8 ctx 1024 (6 splits) 15.9 /
// 15.9 and 15.8 / 16.1 (call E), B = 16 ctx 2048 (3 splits) 39.7 / 39.9. Between them, B = 2 ctx
// 4096 (27 splits) was level (15.8 / 15.7). A 64 KiB limit on the partials' bytes decided it
// before the merge's loads went in batches.
bool merge_in_last_block(int heads, int D, int threads, int splits) {
  const MergeLayout layout(heads, D, threads);
  return layout.items <= threads && splits <= layout.rows;
}

// More blocks than a wave of resident ones holds, unsplit: the last wave runs part-empty (B=32,
// 16 heads: 512 blocks on 396 slots take two waves, the second 29% full). The splits s that
// make the waves nearly whole: the smallest s whose ceil(s n / slots) / s (waves a split's work
// takes, in whole waves) is within 5% of n / slots (no tail at all). Measured on the H100
// (session 20, call B): B=32 H=16 D=128 ctx 2048 8-bit 115 -> 101.5 us (3 splits; 2, 4 and 6
// took 103.5, 103.6, 102.6), B=64 H=12 D=64 ctx 1024 bf16 78.0 -> 72.6; with fewer blocks than
// a wave more splits lost (B=32 H=8 D=128 fp8: 52.9 us unsplit, 62.8 at 2 splits, 55.4 at 3).
constexpr double kWaveTailSlack = 1.05;     // "nearly whole": within 5% of no tail
constexpr int64_t kMaxWaveFillSplits = 8;   // none found up to here: unsplit
int64_t wave_filling_splits(int64_t n, int64_t slots, int64_t max_splits) {
  const double no_tail = (double)n / (double)slots;
  for (int64_t s = 1; s <= std::min(max_splits, kMaxWaveFillSplits); ++s)
    if ((double)ceil_div(s * n, slots) / (double)s <= kWaveTailSlack * no_tail) return s;
  return 1;
}

DecodePlan plan_decode(const DecodeAttentionParams& p) {
  const KVCacheShape& s = p.shape;
  check_shape(s, p.H, "decode_attention");
  DecodePlan plan;
  plan.G = p.H / s.Hkv;
  int dev = 0, sms = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  if (const size_t smem = short_head_smem(p, plan.G, sms); smem > 0) {
    plan.kernel = SplitKernelChoice{s.D == 64 ? decode_short_head_kernel<64> : decode_short_head_kernel<128>, kShortThreads,
                                    (int)smem, 1, s.max_len};
    plan.chunk = s.max_len;  // one split, written to the output directly
    plan.carveout = tiles::carveout_percent_for(smem + tiles::kSmemReservedPerBlock);
    return plan;
  }
  plan.kernel = choose_split_kernel(p, plan.G, sms);
  plan.head_groups = ceil_div(plan.G, plan.kernel.heads_per_block);
  const int per_sm = std::max(blocks_per_sm(dev, plan.kernel), 1);
  // The kernel's share of a wave of resident blocks over all (b, g, head group), so that every
  // SM keeps its share of loads in flight; the work per kv head (and so the splits) grows with B * Hkv *
  // head groups, never with lengths[] (graph replay).
  const int rows = plan.kernel.rows;
  const double waves = tuning().waves > 0 ? tuning().waves : plan.kernel.waves;
  const double own_blocks_per_sm =
      plan.kernel.blocks_per_sm > 0 && tuning().waves <= 0 ? std::min<double>(plan.kernel.blocks_per_sm, per_sm) : waves * per_sm;
  const double blocks_per_sm = tuning().blocks_per_sm > 0 ? tuning().blocks_per_sm : own_blocks_per_sm;
  const int64_t target = std::max<int64_t>(1, std::llround(blocks_per_sm * sms));
  const int64_t blocks_per_split = (int64_t)s.B * s.Hkv * plan.head_groups;
  int64_t want_splits = target / blocks_per_split;
  if (want_splits == 0 && tuning().blocks_per_sm <= 0 && tuning().fit_waves)
    want_splits = wave_filling_splits(blocks_per_split, target, ceil_div(s.max_len, rows));
  if (plan.kernel.splits_at_most_sms && tuning().blocks_per_sm <= 0) want_splits = std::min<int64_t>(want_splits, sms);
  const int64_t most_splits = ceil_div(s.max_len, rows);
  const bool long_splits = plan.kernel.long_cache_blocks_per_sm > 0 && tuning().blocks_per_sm <= 0 && tuning().waves <= 0 &&
                           ceil_div<int64_t>(s.max_len, std::clamp<int64_t>(want_splits, 1, most_splits)) >= kLongSplitRows;
  if (long_splits) want_splits = std::llround(plan.kernel.long_cache_blocks_per_sm * sms) / blocks_per_split;
  const int want = (int)std::clamp<int64_t>(want_splits, 1, most_splits);
  plan.chunk = ceil_div(std::max(ceil_div(s.max_len, want), tuning().min_split_rows), rows) * rows;
  plan.splits = ceil_div(s.max_len, plan.chunk);
  if (plan.kernel.interleaved) plan.chunk = rows;  // as many splits, each every splits-th row block
  const int heads = std::min(plan.G, plan.kernel.heads_per_block);
  const size_t merge_bytes = (size_t)heads * plan.splits * s.D * sizeof(float);
  plan.merge_in_kernel = tuning().in_kernel_merge_bytes >= 0 ? merge_bytes <= (size_t)tuning().in_kernel_merge_bytes
                                                             : merge_in_last_block(heads, s.D, plan.kernel.threads, plan.splits);
  return plan;
}

// The workspace: the partials (o, then m, then l; fp32) and the head groups' done counts. With
// base = nullptr (a size query) only the sizes are set.
struct DecodeWorkspace {
  float *part_o = nullptr, *part_m = nullptr, *part_l = nullptr;
  unsigned* done = nullptr;
  size_t done_offset, bytes;
  DecodeWorkspace(const DecodeAttentionParams& p, const DecodePlan& plan, void* base) {
    const size_t parts = (size_t)p.shape.B * p.H * plan.splits;
    done_offset = parts * (p.shape.D + 2) * sizeof(float);
    bytes = done_offset + (size_t)p.shape.B * p.shape.Hkv * plan.head_groups * sizeof(unsigned);
    if (!base) return;
    part_o = static_cast<float*>(base);
    part_m = part_o + parts * p.shape.D;
    part_l = part_m + parts;
    done = reinterpret_cast<unsigned*>(static_cast<char*>(base) + done_offset);
  }
};

}  // namespace
}  // namespace kern

void set_decode_attention_tuning(const DecodeAttentionTuning& t) {
  ATTN_CHECK(t.waves >= 0, "decode attention tuning: waves {} must be >= 0", t.waves);
  ATTN_CHECK(t.blocks_per_sm >= 0, "decode attention tuning: blocks_per_sm {} must be >= 0", t.blocks_per_sm);
  ATTN_CHECK(t.min_split_rows >= 0, "decode attention tuning: min_split_rows {} must be >= 0", t.min_split_rows);
  ATTN_CHECK(t.mma_warps == 0 || t.mma_warps == 4 || t.mma_warps == 8,
             "decode attention tuning: mma_warps {} must be 0 (the default), 4 or 8", t.mma_warps);
  kern::tuning() = t;
}

bool decode_attention_fuses_append(const DecodeAttentionParams& p) { return kern::plan_decode(p).kernel.appends; }

int decode_attention_carveout(const DecodeAttentionParams& p) { return kern::plan_decode(p).carveout; }

size_t decode_attention_workspace_bytes(const DecodeAttentionParams& p) {
  return kern::DecodeWorkspace(p, kern::plan_decode(p), nullptr).bytes;
}

void decode_attention_workspace_init(const DecodeAttentionParams& p, void* workspace, cudaStream_t stream) {
  ATTN_CHECK(workspace && kern::aligned16(workspace), "decode_attention_workspace_init: workspace must be non-null and 16-byte aligned");
  const kern::DecodeWorkspace ws(p, kern::plan_decode(p), workspace);
  CUDA_CHECK(cudaMemsetAsync(ws.done, 0, ws.bytes - ws.done_offset, stream));
}

void decode_attention(const DecodeAttentionParams& p, void* workspace, cudaStream_t stream) {
  using namespace kern;
  const DecodePlan plan = plan_decode(p);
  const KVCacheShape& s = p.shape;
  check_cache(p.cache, s, "decode_attention");
  ATTN_CHECK(p.q && p.o && aligned16(p.q) && aligned16(p.o), "decode_attention: q and o must be non-null and 16-byte aligned");
  ATTN_CHECK(workspace && aligned16(workspace), "decode_attention: workspace must be non-null and 16-byte aligned");
  ATTN_CHECK(p.lengths, "decode_attention: lengths must be given");

  const DecodeWorkspace ws(p, plan, workspace);
  if (p.append_at && !plan.kernel.appends)  // else the split kernel appends (one new token: no token stride)
    kv_cache_write(p.q, p.q_batch_stride, p.q_batch_stride, p.act_bf16, p.H, 1, p.append_at, p.cache, s, stream);

  DecodeArgs a{};
  a.q = p.q;
  a.q_batch_stride = p.q_batch_stride;
  a.o = p.o;
  a.o_batch_stride = p.o_batch_stride;
  a.act_bf16 = p.act_bf16;
  a.k = static_cast<uint8_t*>(p.cache.k);
  a.v = static_cast<uint8_t*>(p.cache.v);
  a.k_scale = p.cache.k_scale;
  a.v_scale = p.cache.v_scale;
  a.lengths = p.lengths;
  a.H = p.H;
  a.Hkv = s.Hkv;
  a.G = plan.G;
  a.head_groups = plan.head_groups;
  a.max_len = s.max_len;
  a.chunk = plan.chunk;
  a.splits = plan.splits;
  a.q_scale = p.scale * 1.4426950408889634f;
  a.part_o = ws.part_o;
  a.part_m = ws.part_m;
  a.part_l = ws.part_l;
  a.done = ws.done;
  a.merge_in_kernel = plan.merge_in_kernel;
  // Programmatic dependent launch (tiles/pdl.cuh): the kernel waits for its predecessor's
  // writes before reading anything, so its launch overlaps that kernel's tail.
  tiles::launch_pdl_carveout(plan.kernel.kernel, dim3(plan.splits * plan.head_groups, s.Hkv, s.B),
                             dim3(plan.kernel.threads), plan.kernel.smem, stream, plan.carveout, a);
  if (plan.splits > 1 && !plan.merge_in_kernel)
    tiles::launch_pdl(s.D == 64 ? decode_combine_kernel<64> : decode_combine_kernel<128>, dim3(s.B * p.H),
                      dim3(kCombineThreads), 0, stream, a);
}

void kv_cache_write(const void* qkv, int64_t qkv_batch_stride, int64_t qkv_token_stride, bool act_bf16, int H,
                    int n_new, const int32_t* start, const KVCacheLayer& cache, const KVCacheShape& shape,
                    cudaStream_t stream) {
  using namespace kern;
  check_shape(shape, H, "kv_cache_write");
  check_cache(cache, shape, "kv_cache_write");
  ATTN_CHECK(qkv && start, "kv_cache_write: qkv and start must be given");
  if (n_new <= 0) return;
  WriteArgs a{};
  a.qkv = qkv;
  a.batch_stride = qkv_batch_stride;
  a.token_stride = qkv_token_stride;
  a.act_bf16 = act_bf16;
  a.H = H;
  a.Hkv = shape.Hkv;
  a.D = shape.D;
  a.n_new = n_new;
  a.B = shape.B;
  a.max_len = shape.max_len;
  a.start = start;
  a.k = cache.k;
  a.v = cache.v;
  a.k_scale = cache.k_scale;
  a.v_scale = cache.v_scale;
  constexpr int kThreads = 256;
  const int64_t warps = (int64_t)shape.B * n_new * 2 * shape.Hkv;
  const unsigned blocks = (unsigned)ceil_div<int64_t>(warps * 32, kThreads);
  auto launch = [&](auto kernel) { tiles::launch_pdl(kernel, dim3(blocks), dim3(kThreads), 0, stream, a); };
  switch (shape.dtype) {
    case KVCacheDType::FP32: launch(kv_cache_write_kernel<KVCacheDType::FP32>); break;
    case KVCacheDType::BF16: launch(kv_cache_write_kernel<KVCacheDType::BF16>); break;
    case KVCacheDType::FP8_E4M3: launch(kv_cache_write_kernel<KVCacheDType::FP8_E4M3>); break;
    case KVCacheDType::INT8: launch(kv_cache_write_kernel<KVCacheDType::INT8>); break;
  }
}

}  // namespace attn
