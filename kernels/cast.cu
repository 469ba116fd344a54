// Conversions between fp32 and bf16, and the gather of the last position's logits.
#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

// out[i] = bf16(inp[i]) (round to nearest even); 8 elements per thread.
__global__ void cast_f32_to_bf16_kernel(bf16* out, const float* inp, size_t n) {
  const size_t i = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 8;
  if (i + 8 <= n) {
    const Pack128<float> a = load128(inp + i), b = load128(inp + i + 4);
    Pack128<bf16> o;
#pragma unroll
    for (int k = 0; k < 4; ++k) o.set(k, a.get(k)), o.set(k + 4, b.get(k));
    store128(out + i, o);
  } else {
    for (size_t j = i; j < n; ++j) out[j] = __float2bfloat16_rn(inp[j]);
  }
}

// out[i] = float(inp[i])
__global__ void cast_bf16_to_f32_kernel(float* out, const bf16* inp, size_t n) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __bfloat162float(inp[i]);
}

// out[b, v] = float(logits[(b * seq + seq - 1) * Vp + v]),  v < V
template <typename T>
__global__ void gather_last_logits_kernel(float* out, const T* logits, int B, int seq, int V, int Vp) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(B) * V) return;
  const size_t b = i / V, v = i % V;
  out[i] = to_f(logits[(b * seq + seq - 1) * Vp + v]);
}

void cast_f32_to_bf16(bf16* out, const float* inp, size_t n, cudaStream_t stream) {
  const size_t threads = ceil_div<size_t>(n, 8);
  if (threads == 0) return;
  cast_f32_to_bf16_kernel<<<ceil_div<size_t>(threads, 256), 256, 0, stream>>>(out, inp, n);
  CUDA_CHECK_LAUNCH();
}

void cast_bf16_to_f32(float* out, const bf16* inp, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  cast_bf16_to_f32_kernel<<<ceil_div<size_t>(n, 256), 256, 0, stream>>>(out, inp, n);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void gather_last_logits(float* out, const T* logits, int B, int seq, int V, int Vp, cudaStream_t stream) {
  const size_t n = static_cast<size_t>(B) * V;
  if (n == 0) return;
  gather_last_logits_kernel<<<ceil_div<size_t>(n, 256), 256, 0, stream>>>(out, logits, B, seq, V, Vp);
  CUDA_CHECK_LAUNCH();
}

template void gather_last_logits<float>(float*, const float*, int, int, int, int, cudaStream_t);
template void gather_last_logits<bf16>(float*, const bf16*, int, int, int, int, cudaStream_t);

}  // namespace attn::kern
