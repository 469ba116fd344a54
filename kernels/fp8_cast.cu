// fp8 casts with per-tensor scaling and amax, and the delayed-scaling update (fp8_cast.h).
#include <cuda_fp8.h>

#include <algorithm>

#include "kernels/common.cuh"
#include "kernels/fp8_cast.h"
#include "kernels/gelu_math.cuh"

namespace attn::kern {

namespace {

constexpr __nv_fp8_interpretation_t interpretation(Fp8Format f) {
  return f == Fp8Format::E4M3 ? __NV_E4M3 : __NV_E5M2;
}

// Two floats -> two saturated fp8 bytes (low byte: a).
template <Fp8Format F>
__device__ __forceinline__ uint16_t to_fp8x2(float a, float b) {
  return static_cast<uint16_t>(__nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, interpretation(F)));
}

// 8 floats -> 8 fp8 bytes of f * scale; the largest |f| into m.
template <Fp8Format F>
__device__ __forceinline__ uint2 cast8(const float (&f)[8], float scale, float& m) {
  uint32_t w[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
#pragma unroll
    for (int j = 0; j < 4; ++j) m = fmaxf(m, fabsf(f[4 * h + j]));
    w[h] = to_fp8x2<F>(f[4 * h] * scale, f[4 * h + 1] * scale) |
           (static_cast<uint32_t>(to_fp8x2<F>(f[4 * h + 2] * scale, f[4 * h + 3] * scale)) << 16);
  }
  return make_uint2(w[0], w[1]);
}

// *amax = max(*amax, m) over the warp's lanes: one atomic per warp. m >= 0 (fmaxf drops NaN),
// and non-negative floats order like their bits as unsigned integers.
__device__ __forceinline__ void record_amax(float* amax, float m) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0 && m > 0.0f) atomicMax(reinterpret_cast<unsigned int*>(amax), __float_as_uint(m));
}

// q[8i .. 8i+8) = sat(x * scale); grid-stride over groups of 8, two groups per step whose
// loads are both issued before either is converted (more bytes in flight per thread).
template <Fp8Format F>
__global__ void fp8_cast_kernel(uint8_t* __restrict__ q, const bf16* __restrict__ x, size_t groups,
                                const float* scale_at, float* amax) {
  const float scale = *scale_at;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  float m = 0.0f;
  for (size_t g = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += 2 * stride) {
    const bool second = g + stride < groups;
    const Pack128<bf16> a = load128(x + 8 * g);
    Pack128<bf16> b{};
    if (second) b = load128(x + 8 * (g + stride));
    float f[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) f[j] = a.get(j);
    *reinterpret_cast<uint2*>(q + 8 * g) = cast8<F>(f, scale, m);
    if (second) {
#pragma unroll
      for (int j = 0; j < 8; ++j) f[j] = b.get(j);
      *reinterpret_cast<uint2*>(q + 8 * (g + stride)) = cast8<F>(f, scale, m);
    }
  }
  record_amax(amax, m);
}

// max |x| over groups of 8.
__global__ void fp8_amax_kernel(const bf16* x, size_t groups, float* amax) {
  float m = 0.0f;
  for (size_t g = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups;
       g += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const Pack128<bf16> v = load128(x + 8 * g);
#pragma unroll
    for (int j = 0; j < 8; ++j) m = fmaxf(m, fabsf(v.get(j)));
  }
  record_amax(amax, m);
}

// One 64 x 64 tile of x (rows r0.., cols c0..) per block of 256 threads, g = x, or with
// gelu_in g = x * gelu'(gelu_in) (the gradient through a GELU):
//   q[r][c] = sat(g[r][c] * scale)      (row-major copy; 16-byte loads, 8-byte stores)
//   q_t[c][r] = q[r][c]                  (through shared memory; 8-byte stores along r)
//   kSums: partials[blockIdx.y][c] = sum of g[r][c] over the tile's rows, in row order (fp32
//   through shared memory: deterministic), for the bias gradient (fp8_add_column_sums)
constexpr int kTile = 64, kTileThreads = 256, kTilePitch = kTile + 8;  // pitch keeps 8-byte rows aligned
constexpr int kSumPitch = kTile + 4;                                    // 16-byte aligned rows of floats
static_assert(kTile * kTile / 8 % kTileThreads == 0, "whole vectors per thread");
template <Fp8Format F, bool kSums>
__global__ void __launch_bounds__(kTileThreads)
    fp8_cast_transpose_kernel(uint8_t* __restrict__ q, uint8_t* __restrict__ q_t, const bf16* __restrict__ x,
                              int rows, int cols, const float* scale_at, float* amax,
                              const bf16* __restrict__ gelu_in, float* __restrict__ partials) {
  __shared__ alignas(8) uint8_t tile[kTile * kTilePitch];
  __shared__ alignas(16) float sums[kSums ? kTile * kSumPitch : 1];
  const float scale = *scale_at;
  const int r0 = blockIdx.y * kTile, c0 = blockIdx.x * kTile;
  float m = 0.0f;
  // every load of the tile first (kVecs 16-byte vectors per thread, with gelu_in twice that),
  // then the conversions and stores
  constexpr int kVecs = kTile * kTile / 8 / kTileThreads;
  Pack128<bf16> xv[kVecs], pv[kVecs];
  bool in[kVecs];
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int v = threadIdx.x + i * kTileThreads, r = v / (kTile / 8), c = (v % (kTile / 8)) * 8;
    in[i] = r0 + r < rows && c0 + c < cols;
    const size_t at = static_cast<size_t>(r0 + r) * cols + c0 + c;
    if (in[i]) xv[i] = load128(x + at);
    if (in[i] && gelu_in) pv[i] = load128(gelu_in + at);
  }
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int v = threadIdx.x + i * kTileThreads, r = v / (kTile / 8), c = (v % (kTile / 8)) * 8;
    if (!in[i]) continue;
    const size_t at = static_cast<size_t>(r0 + r) * cols + c0 + c;
    float g[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) g[j] = xv[i].get(j);
    if (gelu_in) {
#pragma unroll
      for (int j = 0; j < 8; ++j) g[j] *= gelu_grad(pv[i].get(j));
    }
    const uint2 bytes = cast8<F>(g, scale, m);
    if (q) *reinterpret_cast<uint2*>(q + at) = bytes;
    *reinterpret_cast<uint2*>(tile + r * kTilePitch + c) = bytes;
    if constexpr (kSums) {
      *reinterpret_cast<float4*>(sums + r * kSumPitch + c) = make_float4(g[0], g[1], g[2], g[3]);
      *reinterpret_cast<float4*>(sums + r * kSumPitch + c + 4) = make_float4(g[4], g[5], g[6], g[7]);
    }
  }
  record_amax(amax, m);
  if (!q_t && !kSums) return;
  __syncthreads();
  if constexpr (kSums) {
    if (threadIdx.x < kTile && c0 + static_cast<int>(threadIdx.x) < cols) {
      const int n = min(kTile, rows - r0);
      float total = 0.0f;
      for (int r = 0; r < n; ++r) total += sums[r * kSumPitch + threadIdx.x];
      partials[static_cast<size_t>(blockIdx.y) * cols + c0 + threadIdx.x] = total;
    }
  }
  if (!q_t) return;
  for (int v = threadIdx.x; v < kTile * kTile / 8; v += kTileThreads) {
    const int c = v / (kTile / 8), r = (v % (kTile / 8)) * 8;
    if (r0 + r >= rows || c0 + c >= cols) continue;
    uint32_t w[2] = {0u, 0u};
#pragma unroll
    for (int j = 0; j < 8; ++j) w[j / 4] |= static_cast<uint32_t>(tile[(r + j) * kTilePitch + c]) << (8 * (j % 4));
    *reinterpret_cast<uint2*>(q_t + static_cast<size_t>(c0 + c) * rows + r0 + r) = make_uint2(w[0], w[1]);
  }
}

// sums[c] += sum over b of partials[b][c], b in order (one thread per column: deterministic).
__global__ void fp8_add_column_sums_kernel(float* sums, const float* partials, int blocks, int cols) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float total = 0.0f;
  for (int b = 0; b < blocks; ++b) total += partials[static_cast<size_t>(b) * cols + c];
  sums[c] += total;
}

// One thread per tensor: the delayed-scaling rule of fp8_cast.h.
__global__ void fp8_update_scales_kernel(Fp8ScaleState s, int first, int count, bool roll) {
  const int t = first + static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (t >= first + count) return;
  float* hist = s.amax_history(t);
  float m = 0.0f;
  for (int i = 0; i < s.history; ++i) m = fmaxf(m, hist[i]);
  const float scale = *s.max(t) / m;
  if (m > 0.0f && isfinite(m) && isfinite(scale) && scale > 0.0f) {
    *s.scale(t) = scale;
    *s.scale_inv(t) = 1.0f / scale;
  }
  if (!roll) return;
  for (int i = s.history - 1; i > 0; --i) hist[i] = hist[i - 1];
  hist[0] = 0.0f;
}

int grid_for(size_t groups) {
  return static_cast<int>(std::min<size_t>(ceil_div<size_t>(groups, 256), 132 * 16));
}

}  // namespace

void fp8_cast(void* q, const bf16* x, size_t n, Fp8Format f, const float* scale, float* amax, cudaStream_t stream) {
  if (n == 0) return;
  const size_t groups = n / 8;
  auto* out = static_cast<uint8_t*>(q);
  if (f == Fp8Format::E4M3)
    fp8_cast_kernel<Fp8Format::E4M3><<<grid_for(groups), 256, 0, stream>>>(out, x, groups, scale, amax);
  else
    fp8_cast_kernel<Fp8Format::E5M2><<<grid_for(groups), 256, 0, stream>>>(out, x, groups, scale, amax);
  CUDA_CHECK_LAUNCH();
}

void fp8_cast_transpose(void* q, void* q_t, const bf16* x, int rows, int cols, Fp8Format f, const float* scale,
                        float* amax, cudaStream_t stream, const bf16* gelu_in, float* column_partials) {
  if (rows == 0 || cols == 0) return;
  const dim3 grid(ceil_div(cols, kTile), ceil_div(rows, kTile));
  auto* a = static_cast<uint8_t*>(q);
  auto* b = static_cast<uint8_t*>(q_t);
  const auto launch = [&](auto kernel) {
    kernel<<<grid, kTileThreads, 0, stream>>>(a, b, x, rows, cols, scale, amax, gelu_in, column_partials);
  };
  if (f == Fp8Format::E4M3)
    column_partials ? launch(fp8_cast_transpose_kernel<Fp8Format::E4M3, true>)
                    : launch(fp8_cast_transpose_kernel<Fp8Format::E4M3, false>);
  else
    column_partials ? launch(fp8_cast_transpose_kernel<Fp8Format::E5M2, true>)
                    : launch(fp8_cast_transpose_kernel<Fp8Format::E5M2, false>);
  CUDA_CHECK_LAUNCH();
}

size_t fp8_column_partials_floats(int rows, int cols) {
  return static_cast<size_t>(ceil_div(rows, kTile)) * cols;
}

void fp8_add_column_sums(float* sums, const float* column_partials, int rows, int cols, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  fp8_add_column_sums_kernel<<<ceil_div(cols, 128), 128, 0, stream>>>(sums, column_partials, ceil_div(rows, kTile),
                                                                      cols);
  CUDA_CHECK_LAUNCH();
}

void fp8_amax(const bf16* x, size_t n, float* amax, cudaStream_t stream) {
  if (n == 0) return;
  fp8_amax_kernel<<<grid_for(n / 8), 256, 0, stream>>>(x, n / 8, amax);
  CUDA_CHECK_LAUNCH();
}

void fp8_update_scales(const Fp8ScaleState& s, int first, int count, bool roll, cudaStream_t stream) {
  if (count <= 0) return;
  fp8_update_scales_kernel<<<ceil_div(count, 128), 128, 0, stream>>>(s, first, count, roll);
  CUDA_CHECK_LAUNCH();
}

}  // namespace attn::kern
