// GELU, tanh approximation (nanoGPT's new_gelu / torch gelu(approximate="tanh")), and its
// derivative: shared by the GELU kernels (gelu.cu) and the fp8 cast that fuses the dGELU
// (fp8_cast.cu). Included by kernels/*.cu only.
#pragma once
#include <cuda_runtime.h>

namespace attn::kern {

inline constexpr float kSqrt2OverPi = 0.7978845608028654f;

// gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
__device__ __forceinline__ float gelu(float x) {
  const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + tanhf(u));
}
// gelu'(x) = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
__device__ __forceinline__ float gelu_grad(float x) {
  const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
  const float t = tanhf(u);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x);
}

}  // namespace attn::kern
