// The decode-step GEMV: see kernels/gemv.h for the math of every part.
//
// One warp per weight row (R rows per warp step for wide N), grid-striding over the rows. A lane
// takes 8 consecutive columns of K per 16-byte load, kLoadsInFlight loads per row are issued
// before any is used, and the M activation rows (a', bf16) come from shared memory, so every
// weight element is read once and used M times. The warp sums its lanes' partial dots and lane
// r * M + m applies the epilogue to (m, n0 + r).
#include "core/cuda_check.h"
#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/gemv.h"
#include "kernels/tiles/hardware.cuh"
#include "kernels/tiles/pdl.cuh"

#include <algorithm>
#include <cmath>

namespace attn::kern {

namespace {

using bf16 = __nv_bfloat16;
using u64 = unsigned long long;

constexpr int kGemvWarps = 4;
constexpr int kGemvThreads = kGemvWarps * tiles::kWarpSize;
constexpr int kGemvBlocksPerSm = 4;
constexpr int kPackElems = 8;                                 // bf16 per 16-byte load
constexpr int kWarpSpan = tiles::kWarpSize * kPackElems;      // 256 columns per warp-wide load
constexpr int kLoadsInFlight = 4;                             // 16-byte weight loads per lane and row
constexpr int kPrefetchRowGroups = 2;                         // row groups a warp prefetches before its wait
constexpr int kCacheLine = 128;
// after a' (M, K): mean and rstd per row, the block's argmax keys per row and its last-block flag
constexpr int kSmemTail = 2 * kGemvMaxRows * sizeof(float) + (kGemvMaxRows + 1) * sizeof(u64);
constexpr int kSmemLimit = 100 * 1024;  // K up to ~6000 at M = 8
constexpr float kLnEps = 1e-5f;         // as kernels/layernorm.cu
constexpr float kSqrt2OverPi = 0.7978845608028654f;

// Weights are read once per step: no L1 allocation.
__device__ __forceinline__ uint4 load_weights(const bf16* p) {
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(p));
  return r;
}
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

// 8 bf16 (one 16-byte pack, element 0 in the low half of the first word) as floats.
__device__ __forceinline__ void unpack8(const uint4& u, float (&f)[kPackElems]) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ float gelu_tanh(float x) {
  const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + tanhf(u));
}

// (value, index) as one integer whose order is value first, then the smaller index: the float
// bits made monotone (negative: all bits flipped; else the sign bit set), the index inverted.
// -0 counts as +0, so equal values tie on the index as in argmax_rows.
__device__ __forceinline__ u64 argmax_key(float v, int n) {
  if (v == 0.0f) v = 0.0f;
  uint32_t u = __float_as_uint(v);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return (static_cast<u64>(u) << 32) | static_cast<uint32_t>(~static_cast<uint32_t>(n));
}
__device__ __forceinline__ int32_t argmax_index(u64 key) { return key == 0 ? 0 : static_cast<int32_t>(~static_cast<uint32_t>(key)); }

// a' (M, K) into shared memory: a copy, or bf16(layernorm(a)) with the row statistics of
// kernels/layernorm.cu (mean, then the centred second moment, both in fp32).
template <int M>
__device__ void stage_rows(const GemvArgs& p, bf16* as, float* stats) {
  const int K = p.K, lane = threadIdx.x % tiles::kWarpSize, warp = threadIdx.x / tiles::kWarpSize;
  if (p.ln_w) {
    for (int m = warp; m < M; m += kGemvWarps) {
      const bf16* x = p.a + static_cast<size_t>(m) * K;
      float s = 0.0f;
      for (int k = lane * kPackElems; k < K; k += kWarpSpan) {
        float f[kPackElems];
        unpack8(*reinterpret_cast<const uint4*>(x + k), f);
#pragma unroll
        for (int j = 0; j < kPackElems; ++j) s += f[j];
      }
      const float mean = warp_sum(s) / K;
      float v = 0.0f;
      for (int k = lane * kPackElems; k < K; k += kWarpSpan) {
        float f[kPackElems];
        unpack8(*reinterpret_cast<const uint4*>(x + k), f);
#pragma unroll
        for (int j = 0; j < kPackElems; ++j) v += (f[j] - mean) * (f[j] - mean);
      }
      const float rstd = rsqrtf(warp_sum(v) / K + kLnEps);
      if (lane == 0) stats[m] = mean, stats[kGemvMaxRows + m] = rstd;
    }
    __syncthreads();
  }
  for (int i = threadIdx.x * kPackElems; i < M * K; i += kGemvThreads * kPackElems) {
    uint4 raw = *reinterpret_cast<const uint4*>(p.a + i);
    if (p.ln_w) {
      const int m = i / K, k = i % K;
      float x[kPackElems], w[kPackElems], b[kPackElems];
      unpack8(raw, x);
      unpack8(*reinterpret_cast<const uint4*>(p.ln_w + k), w);
      unpack8(*reinterpret_cast<const uint4*>(p.ln_b + k), b);
      Pack128<bf16> o;
#pragma unroll
      for (int j = 0; j < kPackElems; ++j) o.set(j, (x[j] - stats[m]) * stats[kGemvMaxRows + m] * w[j] + b[j]);
      memcpy(&raw, &o, sizeof(raw));
    }
    *reinterpret_cast<uint4*>(as + i) = raw;
  }
}

// The epilogue of output (m, n) = acc: returns float(out[m, n]) after storing what is asked.
__device__ __forceinline__ float epilogue(const GemvArgs& p, int m, int n, float acc) {
  float v = acc + (p.bias ? __bfloat162float(p.bias[n]) : 0.0f);
  if (p.gelu) v = gelu_tanh(v);
  bf16 y = __float2bfloat16_rn(v);
  const size_t i = static_cast<size_t>(m) * p.N + n;
  if (p.residual) y = __float2bfloat16_rn(__bfloat162float(p.residual[i]) + __bfloat162float(y));
  if (p.out) p.out[i] = y;
  const float yf = __bfloat162float(y);
  if (p.out_f32) p.out_f32[m * p.ld_f32 + n] = yf;
  if (p.k_cache) {
    const int j = n - p.cache_col0, span = p.Hkv * p.D;
    const int pos = j >= 0 && j < 2 * span ? p.positions[m] : p.max_len;
    if (pos < p.max_len) {
      const int kv = j / span, g = (j % span) / p.D, d = j % p.D;
      (kv ? p.v_cache : p.k_cache)[((static_cast<size_t>(m) * p.Hkv + g) * p.max_len + pos) * p.D + d] = y;
    }
  }
  return yf;
}

// out = epilogue(a' W^T) for M rows, R weight rows per warp step; see gemv.h.
template <int M, int R>
__global__ void __launch_bounds__(kGemvThreads, kGemvBlocksPerSm) gemv_kernel(GemvArgs p) {
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* as = reinterpret_cast<bf16*>(smem);  // (M, K)
  float* stats = reinterpret_cast<float*>(smem + static_cast<size_t>(M) * p.K * sizeof(bf16));
  u64* block_best = reinterpret_cast<u64*>(stats + 2 * kGemvMaxRows);
  const int lane = threadIdx.x % tiles::kWarpSize, warp = threadIdx.x / tiles::kWarpSize;
  const int K = p.K, N = p.N, groups = ceil_div(N, R);
  const int first = blockIdx.x * kGemvWarps + warp, stride = gridDim.x * kGemvWarps;

  // Before the wait: this warp's first weight rows into L2 (nothing in the step writes weights).
  const int row_bytes = K * static_cast<int>(sizeof(bf16));
  for (int i = 0, g = first; i < kPrefetchRowGroups && g < groups; ++i, g += stride)
    for (int r = 0; r < R && g * R + r < N; ++r) {
      const char* row = reinterpret_cast<const char*>(p.w + static_cast<size_t>(g * R + r) * K);
      for (int off = lane * kCacheLine; off < row_bytes; off += tiles::kWarpSize * kCacheLine) prefetch_l2(row + off);
    }
  tiles::wait_for_predecessor();
  tiles::launch_dependents();
  stage_rows<M>(p, as, stats);
  if (threadIdx.x < M) block_best[threadIdx.x] = 0;
  __syncthreads();

  u64 best = 0;  // argmax: this lane's best key for its row m
  for (int g = first; g < groups; g += stride) {
    const int n0 = g * R;
    float acc[R][M];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int m = 0; m < M; ++m) acc[r][m] = 0.0f;
    for (int k0 = lane * kPackElems; k0 < K; k0 += kWarpSpan * kLoadsInFlight) {
      uint4 wv[kLoadsInFlight][R];
#pragma unroll
      for (int u = 0; u < kLoadsInFlight; ++u)
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const int k = k0 + u * kWarpSpan, n = min(n0 + r, N - 1);
          wv[u][r] = k < K ? load_weights(p.w + static_cast<size_t>(n) * K + k) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
      for (int u = 0; u < kLoadsInFlight; ++u) {
        const int k = k0 + u * kWarpSpan;
        if (k >= K) break;
        float wf[R][kPackElems];
#pragma unroll
        for (int r = 0; r < R; ++r) unpack8(wv[u][r], wf[r]);
#pragma unroll
        for (int m = 0; m < M; ++m) {
          float af[kPackElems];
          unpack8(*reinterpret_cast<const uint4*>(as + m * K + k), af);
#pragma unroll
          for (int r = 0; r < R; ++r)
#pragma unroll
            for (int j = 0; j < kPackElems; ++j) acc[r][m] = fmaf(wf[r][j], af[j], acc[r][m]);
        }
      }
    }
    float mine = 0.0f;
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float s = warp_sum(acc[r][m]);
        if (lane == r * M + m) mine = s;
      }
    const int r = lane / M, m = lane % M, n = n0 + r;
    if (lane < R * M && n < N) {
      const float y = epilogue(p, m, n, mine);
      if (p.argmax && !isnan(y)) best = max(best, argmax_key(y, n));
    }
  }
  if (!p.argmax) return;

  // argmax over the grid: lanes -> block (shared atomics) -> grid (global atomics); the last
  // block to finish writes the ids and zeroes the scratch for the next call.
#pragma unroll
  for (int r = 1; r < R; ++r) best = max(best, __shfl_down_sync(0xffffffffu, best, r * M));
  if (lane < M && best) atomicMax(&block_best[lane], best);
  __syncthreads();
  u64* grid_best = p.argmax_scratch;
  u64* done = p.argmax_scratch + kGemvMaxRows;
  if (threadIdx.x < M && block_best[threadIdx.x]) atomicMax(&grid_best[threadIdx.x], block_best[threadIdx.x]);
  __threadfence();
  __syncthreads();
  u64& last = block_best[kGemvMaxRows];
  if (threadIdx.x == 0) last = atomicAdd(done, 1ull) == gridDim.x - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  if (threadIdx.x < M) p.argmax[threadIdx.x] = argmax_index(atomicExch(&grid_best[threadIdx.x], 0ull));
  if (threadIdx.x == 0) *done = 0;
}

template <int M, int R>
void launch(const GemvArgs& p, cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(M) * p.K * sizeof(bf16) + kSmemTail;
  ATTN_CHECK(smem <= static_cast<size_t>(kSmemLimit), "gemv: K = {} needs {} bytes of shared memory at M = {} (limit {})",
             p.K, smem, M, kSmemLimit);
  tiles::set_smem_limit_once<gemv_kernel<M, R>>(kSmemLimit);
  const int blocks = std::max(1, std::min(ceil_div(ceil_div(p.N, R), kGemvWarps), tiles::sm_count() * kGemvBlocksPerSm));
  tiles::launch_pdl(gemv_kernel<M, R>, dim3(blocks), dim3(kGemvThreads), smem, stream, p);
}

template <int R>
void launch_rows(const GemvArgs& p, cudaStream_t stream) {
  switch (p.M) {
    case 1: return launch<1, R>(p, stream);
    case 2: return launch<2, R>(p, stream);
    case 3: return launch<3, R>(p, stream);
    case 4: return launch<4, R>(p, stream);
    case 5: return launch<5, R>(p, stream);
    case 6: return launch<6, R>(p, stream);
    case 7: return launch<7, R>(p, stream);
    case 8: return launch<8, R>(p, stream);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

size_t gemv_argmax_scratch_bytes() { return (kGemvMaxRows + 1) * sizeof(u64); }

void gemv(const GemvArgs& p, cudaStream_t stream) {
  ATTN_CHECK(p.M >= 1 && p.M <= kGemvMaxRows, "gemv: M = {} rows must be in [1, {}]", p.M, kGemvMaxRows);
  ATTN_CHECK(p.N >= 1 && p.K >= kPackElems && p.K % kPackElems == 0, "gemv: N = {} must be >= 1 and K = {} a positive multiple of {}",
             p.N, p.K, kPackElems);
  ATTN_CHECK(p.a && p.w && aligned16(p.a) && aligned16(p.w), "gemv: a and w must be non-null and 16-byte aligned");
  ATTN_CHECK(!p.ln_w || (p.ln_b && aligned16(p.ln_w) && aligned16(p.ln_b)), "gemv: layernorm weight and bias must both be given, 16-byte aligned");
  ATTN_CHECK(p.out || p.out_f32, "gemv: nothing to write (out and out_f32 are both null)");
  ATTN_CHECK(!p.out_f32 || p.ld_f32 >= p.N, "gemv: ld_f32 = {} must be >= N = {}", p.ld_f32, p.N);
  ATTN_CHECK(!p.argmax || p.argmax_scratch, "gemv: argmax needs argmax_scratch");
  ATTN_CHECK(!p.k_cache || (p.v_cache && p.positions && p.Hkv > 0 && p.D > 0 && p.max_len > 0 && p.cache_col0 >= 0 &&
                            p.cache_col0 + 2 * p.Hkv * p.D <= p.N),
             "gemv: the cache append needs both caches, positions and columns [col0, col0 + 2 Hkv D) inside N");
  // R = 2 rows per warp step only where every warp of the grid has several rows anyway
  const int warps = tiles::sm_count() * kGemvBlocksPerSm * kGemvWarps;
  if (p.N >= 4 * warps) launch_rows<2>(p, stream);
  else launch_rows<1>(p, stream);
}

}  // namespace attn::kern
