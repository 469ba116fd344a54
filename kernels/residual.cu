// Residual connection with the branch dropout: x_out = x_in + drop(branch).
#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

// out[i] = res[i] + x[i] * (keep(key, i) ? 1/(1-p) : 0)      (no dropout when p == 0)
template <typename T>
__global__ void residual_forward_kernel(T* out, const T* res, const T* x, size_t n, float p, float scale,
                                        DeviceValue<uint64_t> key_src) {
  const uint64_t key = key_src.get();  // core/device_value.h
  constexpr int W = Pack128<T>::size;
  const size_t i = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * W;
  if (i + W <= n) {
    const Pack128<T> a = load128(res + i), b = load128(x + i);
    Pack128<T> o;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const float m = p > 0.0f ? dropout_mult(key, i + k, p, scale) : 1.0f;
      o.set(k, a.get(k) + b.get(k) * m);
    }
    store128(out + i, o);
  } else {
    for (size_t j = i; j < n; ++j) {
      const float m = p > 0.0f ? dropout_mult(key, j, p, scale) : 1.0f;
      out[j] = from_f<T>(to_f(res[j]) + to_f(x[j]) * m);
    }
  }
}

template <typename T>
void residual_forward(T* out, const T* res, const T* x, size_t n, DropoutState drop, cudaStream_t stream) {
  const size_t threads = ceil_div<size_t>(n, Pack128<T>::size);
  if (threads == 0) return;
  const float scale = drop.p > 0.0f ? 1.0f / (1.0f - drop.p) : 1.0f;
  residual_forward_kernel<<<ceil_div<size_t>(threads, 256), 256, 0, stream>>>(out, res, x, n, drop.p, scale,
                                                                              drop.device_key());
  CUDA_CHECK_LAUNCH();
}

template void residual_forward<float>(float*, const float*, const float*, size_t, DropoutState, cudaStream_t);
template void residual_forward<bf16>(bf16*, const bf16*, const bf16*, size_t, DropoutState, cudaStream_t);

}  // namespace attn::kern
