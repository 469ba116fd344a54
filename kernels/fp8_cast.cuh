// Device pieces of the fp8 casts (fp8_cast.h), shared by the cast kernels (fp8_cast.cu) and the
// layernorm that writes an fp8 linear's input itself (layernorm.cu): the saturating conversion,
// the amax record, the 4 x 4 byte transpose. Included by kernels/*.cu only.
#pragma once
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common.cuh"
#include "kernels/fp8_cast.h"

namespace attn::kern {

constexpr __nv_fp8_interpretation_t fp8_interpretation(Fp8Format f) {
  return f == Fp8Format::E4M3 ? __NV_E4M3 : __NV_E5M2;
}

// Two floats -> two saturated fp8 bytes (low byte: a).
template <Fp8Format F>
__device__ __forceinline__ uint16_t to_fp8x2(float a, float b) {
  return static_cast<uint16_t>(__nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, fp8_interpretation(F)));
}

// 8 floats -> 8 fp8 bytes of f * scale (byte j of the pair: f[j]); the largest |f| into m.
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

// *amax = max(*amax, m) over the block's threads (common.cuh's block_max), then one atomic per
// block (the same value as one per warp, with 8x fewer atomics on the one address every block of
// the cast updates). m >= 0 (fmaxf drops NaN), and non-negative floats order like their bits as
// unsigned integers. Has barriers: every thread of the block calls it.
__device__ __forceinline__ void record_amax(float* amax, float m) {
  m = block_max(m);
  if (threadIdx.x == 0 && m > 0.0f) atomicMax(reinterpret_cast<unsigned int*>(amax), __float_as_uint(m));
}

// Byte permutes (__byte_perm(a, b, s): byte n of the result is byte s[n] of a's bytes 0-3, b's 4-7).
inline constexpr uint32_t kInterleaveLow = 0x5140;   // (a0, b0, a1, b1)
inline constexpr uint32_t kInterleaveHigh = 0x7362;  // (a2, b2, a3, b3)
inline constexpr uint32_t kLowHalves = 0x5410;       // (a0, a1, b0, b1)
inline constexpr uint32_t kHighHalves = 0x7632;      // (a2, a3, b2, b3)

// 4 x 4 bytes: a[i] holds row i (byte j: column j); b[j] becomes column j (byte i: row i).
__device__ __forceinline__ void transpose4x4(const uint32_t (&a)[4], uint32_t (&b)[4]) {
  const uint32_t p0 = __byte_perm(a[0], a[1], kInterleaveLow), p1 = __byte_perm(a[0], a[1], kInterleaveHigh);
  const uint32_t q0 = __byte_perm(a[2], a[3], kInterleaveLow), q1 = __byte_perm(a[2], a[3], kInterleaveHigh);
  b[0] = __byte_perm(p0, q0, kLowHalves), b[1] = __byte_perm(p0, q0, kHighHalves);
  b[2] = __byte_perm(p1, q1, kLowHalves), b[3] = __byte_perm(p1, q1, kHighHalves);
}

}  // namespace attn::kern
