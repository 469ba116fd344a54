// AdamW on the flat fp32 master parameters; also refreshes the bf16 copy used by the matmuls.
#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

// Per element i (4 per thread; tensors start on 64-float boundaries, so the 4 share
// one decay flag = bit i/64 of decay_bits):
//   g = grad * grad_mult
//   m = b1 m + (1 - b1) g;            v = b2 v + (1 - b2) g^2
//   p = p - lr * ((m / bc1) / (sqrt(v / bc2) + eps) + wd_i * p),   wd_i = decay(i) ? wd : 0
//   params_bf16[i] = bf16(p)          (bf16 mode only)
__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, bf16* params_bf16,
                             const uint32_t* decay_bits, size_t n, float lr, float b1, float b2, float bc1, float bc2,
                             float eps, float wd, float grad_mult) {
  const size_t i = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (i >= n) return;
  const size_t chunk = i / 64;
  const float wd_i = (decay_bits[chunk / 32] >> (chunk % 32)) & 1u ? wd : 0.0f;
  const int count = i + 4 <= n ? 4 : static_cast<int>(n - i);
  for (int k = 0; k < count; ++k) {
    const float g = grads[i + k] * grad_mult;
    const float mk = b1 * m[i + k] + (1.0f - b1) * g;
    const float vk = b2 * v[i + k] + (1.0f - b2) * g * g;
    m[i + k] = mk;
    v[i + k] = vk;
    float p = params[i + k];
    p -= lr * ((mk / bc1) / (sqrtf(vk / bc2) + eps) + wd_i * p);
    params[i + k] = p;
    if (params_bf16 != nullptr) params_bf16[i + k] = __float2bfloat16_rn(p);
  }
}

void adamw_update(float* params, const float* grads, float* m, float* v, bf16* params_bf16,
                  const uint32_t* decay_bits, size_t n, float lr, float beta1, float beta2, float bc1, float bc2,
                  float eps, float weight_decay, float grad_mult, cudaStream_t stream) {
  const size_t threads = ceil_div<size_t>(n, 4);
  if (threads == 0) return;
  adamw_kernel<<<ceil_div<size_t>(threads, 256), 256, 0, stream>>>(params, grads, m, v, params_bf16, decay_bits, n,
                                                                   lr, beta1, beta2, bc1, bc2, eps, weight_decay,
                                                                   grad_mult);
  CUDA_CHECK_LAUNCH();
}

}  // namespace attn::kern
