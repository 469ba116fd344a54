// Small device helpers shared by the kernels: dtype conversion, 16-byte load/store packs,
// warp and block reductions, the dropout rule. Included by kernels/*.cu only.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "core/cuda_check.h"
#include "core/rng.h"

namespace attn::kern {

using bf16 = __nv_bfloat16;

template <typename T>
__host__ __device__ constexpr T ceil_div(T a, T b) { return (a + b - 1) / b; }

// ---- conversions: all arithmetic is fp32, storage is T ----------------------------
template <typename T> __device__ __forceinline__ float to_f(T x);
template <> __device__ __forceinline__ float to_f<float>(float x) { return x; }
template <> __device__ __forceinline__ float to_f<bf16>(bf16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16_rn(x); }

// ---- 16-byte packs: 4 floats or 8 bf16 moved by one 128-bit load/store -------------
template <typename T>
struct alignas(16) Pack128 {
  static constexpr int size = 16 / sizeof(T);
  T v[size];
  __device__ float get(int i) const { return to_f(v[i]); }
  __device__ void set(int i, float x) { v[i] = from_f<T>(x); }
};

// p must be 16-byte aligned.
template <typename T>
__device__ __forceinline__ Pack128<T> load128(const T* p) {
  const int4 bits = *reinterpret_cast<const int4*>(p);
  Pack128<T> out;
  memcpy(&out, &bits, 16);
  return out;
}
// Streaming load (read once, do not keep in cache).
template <typename T>
__device__ __forceinline__ Pack128<T> load128cs(const T* p) {
  const int4 bits = __ldcs(reinterpret_cast<const int4*>(p));
  Pack128<T> out;
  memcpy(&out, &bits, 16);
  return out;
}
template <typename T>
__device__ __forceinline__ void store128(T* p, const Pack128<T>& x) {
  int4 bits;
  memcpy(&bits, &x, 16);
  *reinterpret_cast<int4*>(p) = bits;
}

// 8 bf16 (one 16-byte pack, element 0 in the low half of the first word) as floats: bf16 is the
// top half of an fp32.
__device__ __forceinline__ void unpack_bf16x8(const uint4& u, float (&f)[8]) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

// W consecutive elements as floats: one 16-byte access when W is the pack width (p 16-byte
// aligned), else W scalar accesses.
template <typename T, int W>
__device__ __forceinline__ void load_floats(const T* p, float (&out)[W]) {
  if constexpr (W == Pack128<T>::size) {
    const Pack128<T> v = load128(p);
#pragma unroll
    for (int j = 0; j < W; ++j) out[j] = v.get(j);
  } else {
#pragma unroll
    for (int j = 0; j < W; ++j) out[j] = to_f(p[j]);
  }
}
template <typename T, int W>
__device__ __forceinline__ void store_floats(T* p, const float (&in)[W]) {
  if constexpr (W == Pack128<T>::size) {
    Pack128<T> v;
#pragma unroll
    for (int j = 0; j < W; ++j) v.set(j, in[j]);
    store128(p, v);
  } else {
#pragma unroll
    for (int j = 0; j < W; ++j) p[j] = from_f<T>(in[j]);
  }
}

// ---- reductions (fixed order: deterministic) ---------------------------------------
__device__ __forceinline__ float warp_sum(float x) {
  for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
  for (int off = 16; off > 0; off >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
  return x;
}
// Sum over the whole block (blockDim.x a multiple of 32, <= 1024); every thread gets it.
__device__ __forceinline__ float block_sum(float x) {
  __shared__ float shared[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  x = warp_sum(x);
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  x = lane < nwarps ? shared[lane] : 0.0f;
  return warp_sum(x);
}
__device__ __forceinline__ float block_max(float x) {
  __shared__ float shared[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  x = warp_max(x);
  __syncthreads();
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  x = lane < nwarps ? shared[lane] : -INFINITY;
  return warp_max(x);
}

// ---- dropout (model/dropout_sites.h): multiplier 0 or 1/(1-p) -----------------------
__device__ __forceinline__ float dropout_mult(uint64_t key, uint64_t index, float p, float scale) {
  return dropout_keep(key, index, p) ? scale : 0.0f;
}

}  // namespace attn::kern
