// Global squared norm of a flat fp32 buffer (the gradients), deterministic.
#include <cstdint>

#include "core/grad_clip.h"
#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

__device__ __forceinline__ float sum_squares(float4 v) { return v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w; }

// Stage 1: a fixed grid of kNormPartials blocks; block k sums x[i]^2 over its grid-stride
// elements (each thread in a fixed order, then a fixed-order block tree) into partials[k].
// x 16-byte aligned: 16-byte loads, four of them in flight per thread (a scalar loop with one
// load in flight read at half the memory bandwidth); the last n % 4 elements one by one.
__global__ void norm_partials_kernel(float* partials, const float* x, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t first = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  float s = 0.0f;
  size_t tail = 0;  // elements before `tail` are summed by the vector loops
  if (reinterpret_cast<uintptr_t>(x) % 16 == 0) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const size_t n4 = n / 4;
    size_t i = first;
    for (; i + 3 * stride < n4; i += 4 * stride) {
      const float4 a = x4[i], b = x4[i + stride], c = x4[i + 2 * stride], d = x4[i + 3 * stride];
      s += (sum_squares(a) + sum_squares(b)) + (sum_squares(c) + sum_squares(d));
    }
    for (; i < n4; i += stride) s += sum_squares(x4[i]);
    tail = 4 * n4;
  }
  for (size_t i = tail + first; i < n; i += stride) s += x[i] * x[i];
  s = block_sum(s);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// Stage 2: *out = sum_k partials[k], in order, in double.
__global__ void norm_final_kernel(double* out, const float* partials, int count) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  double s = 0.0;
  for (int k = 0; k < count; ++k) s += partials[k];
  *out = s;
}

void global_norm_squared(double* out, float* partials, const float* x, size_t n, cudaStream_t stream) {
  norm_partials_kernel<<<kNormPartials, 256, 0, stream>>>(partials, x, n);
  CUDA_CHECK_LAUNCH();
  norm_final_kernel<<<1, 32, 0, stream>>>(out, partials, kNormPartials);
  CUDA_CHECK_LAUNCH();
}

__global__ void grad_clip_factor_kernel(float* mult, const double* norm_sq, const double* grad_clip) {
  if (threadIdx.x == 0 && blockIdx.x == 0) *mult = grad_clip_multiplier(static_cast<float>(sqrt(*norm_sq)), *grad_clip);
}

void grad_clip_factor(float* mult, const double* norm_sq, const double* grad_clip, cudaStream_t stream) {
  grad_clip_factor_kernel<<<1, 32, 0, stream>>>(mult, norm_sq, grad_clip);
  CUDA_CHECK_LAUNCH();
}

}  // namespace attn::kern
