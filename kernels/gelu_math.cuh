// GELU, tanh approximation (nanoGPT's new_gelu / torch gelu(approximate="tanh")), and its
// derivative: shared by the GELU kernels (gelu.cu) and the fp8 casts that fuse the GELU or the
// dGELU (fp8_cast.cu). Included by kernels/*.cu and the GPU tests (FastTanh's bound) only.
#pragma once
#include <cuda_runtime.h>

namespace attn::kern {

inline constexpr float kSqrt2OverPi = 0.7978845608028654f;
inline constexpr float kGeluCubic = 0.044715f;

// The tanh inside: tanhf (correctly rounded within ~2 ulp; the bf16 kernels, whose results keep 8
// bits), or the MUFU unit's tanh.approx.f32, one instruction where tanhf is ~17, with relative
// error below 2^-10.987 (PTX ISA). The fp8 casts take the fast one: e4m3 and e5m2 round to 2^-4
// and 2^-3 of the value, which dwarfs it, and with tanhf those casts were bound by instruction
// issue, not memory (48 PTX instructions per element, 2.8 TB/s on the H200).
struct PreciseTanh {
  __device__ __forceinline__ float operator()(float u) const { return tanhf(u); }
};
struct FastTanh {
  static constexpr double kMaxRelativeError = 5.0e-4;  // > 2^-10.987: the tests' bound
  __device__ __forceinline__ float operator()(float u) const {
    float t;
    asm("tanh.approx.f32 %0, %1;" : "=f"(t) : "f"(u));
    return t;
  }
};

// gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
template <class Tanh = PreciseTanh>
__device__ __forceinline__ float gelu(float x) {
  const float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
  return 0.5f * x * (1.0f + Tanh{}(u));
}
// gelu'(x) = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
template <class Tanh = PreciseTanh>
__device__ __forceinline__ float gelu_grad(float x) {
  const float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
  const float t = Tanh{}(u);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
}

}  // namespace attn::kern
