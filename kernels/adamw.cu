// AdamW on the flat fp32 master parameters; also refreshes the bf16 copy used by the matmuls.
#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

// One thread updates 4 consecutive floats with 16-byte loads/stores (memory-bound: 16 bytes
// read and 14 written per parameter). Per element i (tensors start on 64-float boundaries,
// so the 4 share one decay flag = bit i/64 of decay_bits):
//   g = grad * grad_mult
//   m = b1 m + (1 - b1) g;            v = b2 v + (1 - b2) g^2
//   p = p - lr * ((m / bc1) / (sqrt(v / bc2) + eps) + wd_i * p),   wd_i = decay(i) ? wd : 0
//   params_bf16[i] = bf16(p)          (bf16 mode only)
__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, bf16* params_bf16,
                             const uint32_t* decay_bits, size_t n, DeviceValue<AdamWScalars> scalars, float b1,
                             float b2, float eps, float wd) {
  const AdamWScalars sc = scalars.get();  // core/device_value.h
  const float lr = sc.lr, bc1 = sc.bc1, bc2 = sc.bc2, grad_mult = sc.grad_mult;
  const size_t i = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (i >= n) return;
  const size_t chunk = i / 64;
  const float wd_i = (decay_bits[chunk / 32] >> (chunk % 32)) & 1u ? wd : 0.0f;
  if (i + 4 <= n) {  // the common case: 16-byte loads and stores (i is a multiple of 4)
    float4 g4 = __ldcs(reinterpret_cast<const float4*>(grads + i));  // read once: do not keep in cache
    float4 m4 = *reinterpret_cast<const float4*>(m + i), v4 = *reinterpret_cast<const float4*>(v + i);
    float4 p4 = *reinterpret_cast<const float4*>(params + i);
    float *gs = &g4.x, *ms = &m4.x, *vs = &v4.x, *ps = &p4.x;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float g = gs[k] * grad_mult;
      ms[k] = b1 * ms[k] + (1.0f - b1) * g;
      vs[k] = b2 * vs[k] + (1.0f - b2) * g * g;
      ps[k] -= lr * ((ms[k] / bc1) / (sqrtf(vs[k] / bc2) + eps) + wd_i * ps[k]);
    }
    *reinterpret_cast<float4*>(m + i) = m4;
    *reinterpret_cast<float4*>(v + i) = v4;
    *reinterpret_cast<float4*>(params + i) = p4;
    if (params_bf16 != nullptr) {
      const __nv_bfloat162 lo = __floats2bfloat162_rn(p4.x, p4.y), hi = __floats2bfloat162_rn(p4.z, p4.w);
      uint2 bits;
      memcpy(&bits.x, &lo, 4);
      memcpy(&bits.y, &hi, 4);
      *reinterpret_cast<uint2*>(params_bf16 + i) = bits;
    }
    return;
  }
  for (size_t k = i; k < n; ++k) {  // the tail of a buffer whose length is not a multiple of 4
    const float g = grads[k] * grad_mult;
    const float mk = b1 * m[k] + (1.0f - b1) * g;
    const float vk = b2 * v[k] + (1.0f - b2) * g * g;
    m[k] = mk;
    v[k] = vk;
    float p = params[k];
    p -= lr * ((mk / bc1) / (sqrtf(vk / bc2) + eps) + wd_i * p);
    params[k] = p;
    if (params_bf16 != nullptr) params_bf16[k] = __float2bfloat16_rn(p);
  }
}

void adamw_update(float* params, const float* grads, float* m, float* v, bf16* params_bf16,
                  const uint32_t* decay_bits, size_t n, float lr, float beta1, float beta2, float bc1, float bc2,
                  float eps, float weight_decay, float grad_mult, cudaStream_t stream, const AdamWScalars* scalars_at) {
  const size_t threads = ceil_div<size_t>(n, 4);
  if (threads == 0) return;
  const DeviceValue<AdamWScalars> scalars(AdamWScalars{lr, bc1, bc2, grad_mult}, scalars_at);
  adamw_kernel<<<ceil_div<size_t>(threads, 256), 256, 0, stream>>>(params, grads, m, v, params_bf16, decay_bits, n,
                                                                   scalars, beta1, beta2, eps, weight_decay);
  CUDA_CHECK_LAUNCH();
}

}  // namespace attn::kern
