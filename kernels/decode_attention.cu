// Decode attention over a KV cache ("flash-decoding") and the cache writes that feed it.
// The contract and the math are in kernels/decode_attention.h; here, how it runs:
//
// decode_split_kernel, grid (splits, Hkv, B), 128 threads: block (s, g, b) streams cache rows
// [s * chunk, min((s + 1) * chunk, lengths[b])) of kv head g once, in tiles of 8 KiB of K and
// 8 KiB of V (16-byte loads, the next tile's loads in flight while the current one is
// computed), and serves all G = H / Hkv query heads of g from that one read:
//   s_t = (scale * log2 e) * ks_t * (q_h . k_t)             (ks_t = 1 unless 8-bit)
//   m = max_t s_t,  l = sum_t 2^(s_t - m),  o = sum_t 2^(s_t - m) vs_t v_t   (online over tiles)
// and writes the partial (m, l, o) of its chunk to fp32 workspace. Blocks whose chunk starts
// at or beyond lengths[b] exit at once; the split count depends on (B, Hkv, max_len, device)
// only, so a captured CUDA graph stays valid while the lengths grow.
// decode_combine_kernel, grid B * H, D threads: the log-sum-exp merge of the valid splits
//   M = max_s m_s,  o = sum_s 2^(m_s - M) o_s / sum_s 2^(m_s - M) l_s
// launched with programmatic dependent launch (it waits for the split kernel in-kernel, so
// its launch latency overlaps the split kernel's tail).
#include "kernels/decode_attention.h"

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "core/error.h"
#include "kernels/common.cuh"

namespace attn {

size_t kv_cache_element_bytes(KVCacheDType t) {
  switch (t) {
    case KVCacheDType::FP32: return 4;
    case KVCacheDType::BF16: return 2;
    case KVCacheDType::FP8_E4M3:
    case KVCacheDType::INT8: return 1;
  }
  return 0;
}

KVCacheDType parse_kv_cache_dtype(const char* name) {
  const std::string s = name ? name : "";
  if (s == "fp32") return KVCacheDType::FP32;
  if (s == "bf16") return KVCacheDType::BF16;
  if (s == "fp8") return KVCacheDType::FP8_E4M3;
  if (s == "int8") return KVCacheDType::INT8;
  fail("kv cache dtype \"{}\" is not one of \"fp32\", \"bf16\", \"fp8\", \"int8\"", s);
}

namespace kern {
namespace {

constexpr int kDecodeThreads = 128;
constexpr int kTileBytes = 8192;  // bytes of K (and of V) per tile

constexpr bool is_8bit(KVCacheDType c) { return c == KVCacheDType::FP8_E4M3 || c == KVCacheDType::INT8; }
constexpr int element_bytes(KVCacheDType c) { return c == KVCacheDType::FP32 ? 4 : c == KVCacheDType::BF16 ? 2 : 1; }

// Tile geometry of one (cache dtype, D): every thread issues kLoads 16-byte loads of K and as
// many of V per tile (4 for every dtype and D).
template <KVCacheDType C, int D>
struct DecodeTile {
  static constexpr int kVec = 16 / element_bytes(C);              // elements per 16-byte load
  static constexpr int kVecsPerRow = D / kVec;
  static constexpr int kRows = kTileBytes / (D * element_bytes(C));  // cache positions per tile
  static constexpr int kLoads = kRows * kVecsPerRow / kDecodeThreads;
  static constexpr int kStride = D + 1;  // floats per row in shared memory: column reads conflict-free
  static_assert(kLoads * kDecodeThreads == kRows * kVecsPerRow, "tile must divide evenly over the block");
  static_assert(kRows <= kDecodeThreads, "one thread per row loads the row scales");
};

// Shared memory of the split kernel, in floats.
__host__ __device__ constexpr size_t decode_smem_floats(int rows, int D, int G) {
  return 2 * (size_t)rows * (D + 1) + 2 * (size_t)rows + 2 * (size_t)G * D + (size_t)G * rows + 3 * (size_t)G;
}

// 16 bytes of stored cache elements -> floats (the stored values; 8-bit scales applied later).
template <KVCacheDType C>
__device__ __forceinline__ void unpack16(const int4& bits, float* out) {
  if constexpr (C == KVCacheDType::FP32) {
    out[0] = __int_as_float(bits.x); out[1] = __int_as_float(bits.y);
    out[2] = __int_as_float(bits.z); out[3] = __int_as_float(bits.w);
  } else if constexpr (C == KVCacheDType::BF16) {
    const Pack128<bf16> p = [&] { Pack128<bf16> q; memcpy(&q, &bits, 16); return q; }();
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = p.get(i);
  } else if constexpr (C == KVCacheDType::FP8_E4M3) {
    const uint32_t w[4] = {(uint32_t)bits.x, (uint32_t)bits.y, (uint32_t)bits.z, (uint32_t)bits.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const __half2 lo = __half2(__nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(w[i] & 0xffffu), __NV_E4M3));
      const __half2 hi = __half2(__nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(w[i] >> 16), __NV_E4M3));
      const float2 a = __half22float2(lo), b = __half22float2(hi);
      out[4 * i + 0] = a.x; out[4 * i + 1] = a.y; out[4 * i + 2] = b.x; out[4 * i + 3] = b.y;
    }
  } else {
    const uint32_t w[4] = {(uint32_t)bits.x, (uint32_t)bits.y, (uint32_t)bits.z, (uint32_t)bits.w};
#pragma unroll
    for (int i = 0; i < 16; ++i) out[i] = (float)(int8_t)((w[i / 4] >> (8 * (i % 4))) & 0xffu);
  }
}

struct DecodeArgs {
  const void* q;
  int64_t q_batch_stride;
  bool act_bf16;
  const uint8_t* k;
  const uint8_t* v;
  const float* k_scale;  // nullptr unless 8-bit
  const float* v_scale;
  const int32_t* lengths;
  int H, Hkv, G, max_len, chunk, splits;
  float q_scale;  // scale * log2(e): scores in the exp2 domain
  float* part_o;  // (B, H, splits, D)
  float* part_m;  // (B, H, splits)
  float* part_l;
};

template <KVCacheDType C, int D>
__global__ void __launch_bounds__(kDecodeThreads) decode_split_kernel(DecodeArgs a) {
  using Tile = DecodeTile<C, D>;
  constexpr int kRows = Tile::kRows, kStride = Tile::kStride, kVec = Tile::kVec, kLoads = Tile::kLoads;
  constexpr int kRowBytes = D * element_bytes(C);
  const int split = blockIdx.x, g = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
  const int len = min(max(a.lengths[b], 0), a.max_len);
  const int t_begin = split * a.chunk, t_end = min(t_begin + a.chunk, len);
  if (t_begin >= t_end) return;  // this chunk lies beyond the sequence (the whole block agrees)

  const int G = a.G;
  extern __shared__ float smem[];
  float* k_tile = smem;                      // [kRows][kStride] stored K values as floats
  float* v_tile = k_tile + kRows * kStride;  // [kRows][kStride]
  float* k_row_scale = v_tile + kRows * kStride;  // [kRows]
  float* v_row_scale = k_row_scale + kRows;       // [kRows] (0 for rows past the end)
  float* q_s = v_row_scale + kRows;               // [G][D] q * scale * log2 e
  float* acc = q_s + G * D;                       // [G][D] unnormalised output
  float* p_s = acc + G * D;                       // [G][kRows] scores, then probabilities * v scale
  float* m_s = p_s + G * kRows;                   // [G] running max (exp2 domain)
  float* l_s = m_s + G;                           // [G] running sum
  float* alpha_s = l_s + G;                       // [G] rescale of this tile

  for (int i = tid; i < G * D; i += kDecodeThreads) {
    const int64_t off = (int64_t)b * a.q_batch_stride + (int64_t)(g * G) * D + i;  // heads g*G.. are contiguous
    const float x = a.act_bf16 ? __bfloat162float(static_cast<const bf16*>(a.q)[off]) : static_cast<const float*>(a.q)[off];
    q_s[i] = x * a.q_scale;
    acc[i] = 0.0f;
  }
  for (int h = tid; h < G; h += kDecodeThreads) {
    m_s[h] = -INFINITY;
    l_s[h] = 0.0f;
  }

  const size_t row0 = ((size_t)b * a.Hkv + g) * a.max_len;  // cache row of (b, g, t = 0)
  const uint8_t* k_base = a.k + row0 * kRowBytes;
  const uint8_t* v_base = a.v + row0 * kRowBytes;
  const float* k_scale = is_8bit(C) ? a.k_scale + row0 : nullptr;
  const float* v_scale = is_8bit(C) ? a.v_scale + row0 : nullptr;

  // Registers of the tile in flight: rows past t_end are never read (their memory may hold
  // garbage or lie past max_len); they come in as zeros with V scale 0.
  int4 k_reg[kLoads], v_reg[kLoads];
  float k_sc = 1.0f, v_sc = 1.0f;
  auto load_tile = [&](int t0) {
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      const int i = tid + j * kDecodeThreads, row = i / Tile::kVecsPerRow, col = i % Tile::kVecsPerRow;
      if (t0 + row < t_end) {
        const size_t off = (size_t)(t0 + row) * kRowBytes + (size_t)col * 16;
        k_reg[j] = __ldcs(reinterpret_cast<const int4*>(k_base + off));
        v_reg[j] = __ldcs(reinterpret_cast<const int4*>(v_base + off));
      } else {
        k_reg[j] = make_int4(0, 0, 0, 0);
        v_reg[j] = make_int4(0, 0, 0, 0);
      }
    }
    if (tid < kRows) {
      const bool valid = t0 + tid < t_end;
      if constexpr (is_8bit(C)) {
        k_sc = valid ? __ldcs(k_scale + t0 + tid) : 0.0f;
        v_sc = valid ? __ldcs(v_scale + t0 + tid) : 0.0f;
      } else {
        k_sc = 1.0f;
        v_sc = valid ? 1.0f : 0.0f;
      }
    }
  };

  const int warp = tid / 32, lane = tid % 32;
  load_tile(t_begin);
  for (int t0 = t_begin; t0 < t_end; t0 += kRows) {
    // 1. the tile in registers -> floats in shared memory
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      const int i = tid + j * kDecodeThreads, row = i / Tile::kVecsPerRow, col = i % Tile::kVecsPerRow;
      float kx[kVec], vx[kVec];
      unpack16<C>(k_reg[j], kx);
      unpack16<C>(v_reg[j], vx);
#pragma unroll
      for (int e = 0; e < kVec; ++e) {
        k_tile[row * kStride + col * kVec + e] = kx[e];
        v_tile[row * kStride + col * kVec + e] = vx[e];
      }
    }
    if (tid < kRows) {
      k_row_scale[tid] = k_sc;
      v_row_scale[tid] = v_sc;
    }
    __syncthreads();
    // 2. the next tile's loads go out now and land while this tile is computed
    if (t0 + kRows < t_end) load_tile(t0 + kRows);
    const int rows = min(kRows, t_end - t0);

    // 3. scores s[h][r] (exp2 domain); -inf past the end
    for (int i = tid; i < G * kRows; i += kDecodeThreads) {
      const int h = i / kRows, r = i % kRows;
      float s = -INFINITY;
      if (r < rows) {
        const float* qh = q_s + h * D;
        const float* kr = k_tile + r * kStride;
        float dot0 = 0.0f, dot1 = 0.0f;
#pragma unroll 16
        for (int d = 0; d < D; d += 2) {
          dot0 = fmaf(qh[d], kr[d], dot0);
          dot1 = fmaf(qh[d + 1], kr[d + 1], dot1);
        }
        s = (dot0 + dot1) * k_row_scale[r];
      }
      p_s[i] = s;
    }
    __syncthreads();

    // 4. online softmax, one warp per head: new max, rescale factor, probabilities
    for (int h = warp; h < G; h += kDecodeThreads / 32) {
      float* ph = p_s + h * kRows;
      float mx = -INFINITY;
      for (int r = lane; r < kRows; r += 32) mx = fmaxf(mx, ph[r]);
      mx = warp_max(mx);
      const float m_old = m_s[h], m_new = fmaxf(m_old, mx);  // finite: the tile has a valid row
      float sum = 0.0f;
      for (int r = lane; r < kRows; r += 32) {
        const float p = exp2f(ph[r] - m_new);
        sum += p;
        ph[r] = p * v_row_scale[r];
      }
      sum = warp_sum(sum);
      if (lane == 0) {
        const float alpha = exp2f(m_old - m_new);
        alpha_s[h] = alpha;
        l_s[h] = l_s[h] * alpha + sum;
        m_s[h] = m_new;
      }
    }
    __syncthreads();

    // 5. acc = acc * alpha + P V (each thread owns outputs (h, d))
    for (int i = tid; i < G * D; i += kDecodeThreads) {
      const int h = i / D, d = i % D;
      const float* ph = p_s + h * kRows;
      float o0 = acc[i] * alpha_s[h], o1 = 0.0f;
      int r = 0;
      for (; r + 1 < rows; r += 2) {
        o0 = fmaf(ph[r], v_tile[r * kStride + d], o0);
        o1 = fmaf(ph[r + 1], v_tile[(r + 1) * kStride + d], o1);
      }
      if (r < rows) o0 = fmaf(ph[r], v_tile[r * kStride + d], o0);
      acc[i] = o0 + o1;
    }
    __syncthreads();  // the next iteration overwrites the tiles and p_s
  }

  const int64_t part = ((int64_t)b * a.H + (int64_t)g * G) * a.splits + split;  // (b, h = g*G, split)
  for (int i = tid; i < G * D; i += kDecodeThreads) {
    const int h = i / D, d = i % D;
    a.part_o[(part + (int64_t)h * a.splits) * D + d] = acc[i];
  }
  for (int h = tid; h < G; h += kDecodeThreads) {
    a.part_m[part + (int64_t)h * a.splits] = m_s[h];
    a.part_l[part + (int64_t)h * a.splits] = l_s[h];
  }
}

struct CombineArgs {
  void* o;
  int64_t o_batch_stride;
  bool act_bf16;
  const int32_t* lengths;
  int H, D, max_len, chunk, splits;
  const float* part_o;
  const float* part_m;
  const float* part_l;
};

// One block per (b, h), one thread per d.
__global__ void decode_combine_kernel(CombineArgs a) {
  cudaGridDependencySynchronize();  // the split kernel's partials are complete and visible
  const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H, d = threadIdx.x;
  const int len = min(max(a.lengths[b], 0), a.max_len);
  const int n = min(a.splits, ceil_div(len, a.chunk));  // splits that ran for this sequence
  const float* m = a.part_m + (int64_t)bh * a.splits;
  const float* l = a.part_l + (int64_t)bh * a.splits;
  const float* po = a.part_o + (int64_t)bh * a.splits * a.D + d;
  float M = -INFINITY;
  for (int s = 0; s < n; ++s) M = fmaxf(M, m[s]);
  float L = 0.0f, o = 0.0f;
  for (int s = 0; s < n; ++s) {
    const float w = exp2f(m[s] - M);
    L = fmaf(l[s], w, L);
    o = fmaf(po[(int64_t)s * a.D], w, o);
  }
  const float y = L > 0.0f ? o / L : 0.0f;
  const int64_t off = (int64_t)b * a.o_batch_stride + (int64_t)h * a.D + d;
  if (a.act_bf16) static_cast<bf16*>(a.o)[off] = __float2bfloat16_rn(y);
  else static_cast<float*>(a.o)[off] = y;
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
      x[j] = a.act_bf16 ? __bfloat162float(static_cast<const bf16*>(a.qkv)[off]) : static_cast<const float*>(a.qkv)[off];
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

template <KVCacheDType C>
SplitKernel split_kernel_for_d(int D) {
  return D == 64 ? decode_split_kernel<C, 64> : decode_split_kernel<C, 128>;
}
SplitKernel split_kernel(KVCacheDType c, int D) {
  switch (c) {
    case KVCacheDType::FP32: return split_kernel_for_d<KVCacheDType::FP32>(D);
    case KVCacheDType::BF16: return split_kernel_for_d<KVCacheDType::BF16>(D);
    case KVCacheDType::FP8_E4M3: return split_kernel_for_d<KVCacheDType::FP8_E4M3>(D);
    case KVCacheDType::INT8: return split_kernel_for_d<KVCacheDType::INT8>(D);
  }
  return nullptr;
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

// Resident blocks per SM of a split kernel with `smem` bytes: queried once per (device, kernel,
// smem), since a decode step runs once per layer and token.
int blocks_per_sm(int dev, SplitKernel kernel, size_t smem) {
  static std::mutex mu;
  static std::map<std::tuple<int, const void*, size_t>, int> known;
  const std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_tuple(dev, reinterpret_cast<const void*>(kernel), smem);
  if (const auto it = known.find(key); it != known.end()) return it->second;
  // The device's limit rather than `smem`: another key's smaller value must not undo this one.
  int dev_max = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&dev_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, dev_max));
  int n = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kDecodeThreads, smem));
  known[key] = n;
  return n;
}

// How one decode call is cut up: a function of (dtype, B, Hkv, max_len, D, G, device) only.
struct DecodePlan {
  int G = 1, rows = 0, splits = 1, chunk = 0;
  size_t smem = 0;
  SplitKernel kernel = nullptr;
};

DecodePlan plan_decode(const DecodeAttentionParams& p) {
  const KVCacheShape& s = p.shape;
  check_shape(s, p.H, "decode_attention");
  DecodePlan plan;
  plan.G = p.H / s.Hkv;
  plan.rows = kTileBytes / (s.D * (int)kv_cache_element_bytes(s.dtype));
  plan.smem = decode_smem_floats(plan.rows, s.D, plan.G) * sizeof(float);
  plan.kernel = split_kernel(s.dtype, s.D);
  int dev = 0, sms = 0, max_smem = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  ATTN_CHECK(plan.smem <= (size_t)max_smem,
             "decode_attention: H / Hkv = {} query heads per kv head need {} bytes of shared memory (device has {})",
             plan.G, plan.smem, max_smem);
  const int per_sm = blocks_per_sm(dev, plan.kernel, plan.smem);
  // One wave of resident blocks over all (b, g): enough 16-byte loads in flight to keep HBM busy.
  const int64_t target = (int64_t)std::max(per_sm, 1) * sms;
  const int64_t pairs = (int64_t)s.B * s.Hkv;
  const int want = (int)std::clamp<int64_t>(target / pairs, 1, ceil_div(s.max_len, plan.rows));
  plan.chunk = ceil_div(ceil_div(s.max_len, want), plan.rows) * plan.rows;
  plan.splits = ceil_div(s.max_len, plan.chunk);
  return plan;
}

size_t partial_floats(const DecodeAttentionParams& p, int splits) {
  return (size_t)p.shape.B * p.H * splits * (p.shape.D + 2);
}

}  // namespace
}  // namespace kern

size_t decode_attention_workspace_bytes(const DecodeAttentionParams& p) {
  const kern::DecodePlan plan = kern::plan_decode(p);
  return kern::partial_floats(p, plan.splits) * sizeof(float);
}

void decode_attention(const DecodeAttentionParams& p, void* workspace, cudaStream_t stream) {
  using namespace kern;
  const DecodePlan plan = plan_decode(p);
  const KVCacheShape& s = p.shape;
  check_cache(p.cache, s, "decode_attention");
  ATTN_CHECK(p.q && p.o && aligned16(p.q) && aligned16(p.o), "decode_attention: q and o must be non-null and 16-byte aligned");
  ATTN_CHECK(workspace && aligned16(workspace), "decode_attention: workspace must be non-null and 16-byte aligned");
  ATTN_CHECK(p.lengths, "decode_attention: lengths must be given");

  float* part_o = static_cast<float*>(workspace);
  float* part_m = part_o + (size_t)s.B * p.H * plan.splits * s.D;
  float* part_l = part_m + (size_t)s.B * p.H * plan.splits;

  DecodeArgs a{};
  a.q = p.q;
  a.q_batch_stride = p.q_batch_stride;
  a.act_bf16 = p.act_bf16;
  a.k = static_cast<const uint8_t*>(p.cache.k);
  a.v = static_cast<const uint8_t*>(p.cache.v);
  a.k_scale = p.cache.k_scale;
  a.v_scale = p.cache.v_scale;
  a.lengths = p.lengths;
  a.H = p.H;
  a.Hkv = s.Hkv;
  a.G = plan.G;
  a.max_len = s.max_len;
  a.chunk = plan.chunk;
  a.splits = plan.splits;
  a.q_scale = p.scale * 1.4426950408889634f;
  a.part_o = part_o;
  a.part_m = part_m;
  a.part_l = part_l;
  plan.kernel<<<dim3(plan.splits, s.Hkv, s.B), kDecodeThreads, plan.smem, stream>>>(a);
  CUDA_CHECK_LAUNCH();

  CombineArgs c{};
  c.o = p.o;
  c.o_batch_stride = p.o_batch_stride;
  c.act_bf16 = p.act_bf16;
  c.lengths = p.lengths;
  c.H = p.H;
  c.D = s.D;
  c.max_len = s.max_len;
  c.chunk = plan.chunk;
  c.splits = plan.splits;
  c.part_o = part_o;
  c.part_m = part_m;
  c.part_l = part_l;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(s.B * p.H);
  cfg.blockDim = dim3(s.D);
  cfg.dynamicSmemBytes = 0;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  // Programmatic dependent launch on created streams only (the legacy default stream keeps
  // plain stream order: its implicit synchronization is not worth testing the corner of).
  const bool default_stream = stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread;
  cfg.numAttrs = default_stream ? 0 : 1;
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, decode_combine_kernel, c));
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
  switch (shape.dtype) {
    case KVCacheDType::FP32: kv_cache_write_kernel<KVCacheDType::FP32><<<blocks, kThreads, 0, stream>>>(a); break;
    case KVCacheDType::BF16: kv_cache_write_kernel<KVCacheDType::BF16><<<blocks, kThreads, 0, stream>>>(a); break;
    case KVCacheDType::FP8_E4M3: kv_cache_write_kernel<KVCacheDType::FP8_E4M3><<<blocks, kThreads, 0, stream>>>(a); break;
    case KVCacheDType::INT8: kv_cache_write_kernel<KVCacheDType::INT8><<<blocks, kThreads, 0, stream>>>(a); break;
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace attn
