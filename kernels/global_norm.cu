// Global squared norm of a flat fp32 buffer (the gradients), deterministic.
#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

// Stage 1: a fixed grid of kNormPartials blocks; block k sums x[i]^2 over its grid-stride
// elements (each thread in index order, then a fixed-order block tree) into partials[k].
__global__ void norm_partials_kernel(float* partials, const float* x, size_t n) {
  float s = 0.0f;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    s += x[i] * x[i];
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

}  // namespace attn::kern
