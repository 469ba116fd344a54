// Dropout (model/dropout_sites.h): the mask is a pure function of (key, element index),
// so the backward regenerates it instead of storing it.
#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

// out[i] = inp[i] * (random_uniform(key, i) >= p ? 1/(1-p) : 0)
template <typename T>
__global__ void dropout_kernel(T* out, const T* inp, size_t n, float p, float scale, DeviceValue<uint64_t> key_src) {
  const uint64_t key = key_src.get();  // core/device_value.h
  constexpr int W = Pack128<T>::size;
  const size_t i = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * W;
  if (i + W <= n) {
    Pack128<T> x = load128(inp + i);
#pragma unroll
    for (int k = 0; k < W; ++k) x.set(k, x.get(k) * dropout_mult(key, i + k, p, scale));
    store128(out + i, x);
  } else {
    for (size_t j = i; j < n; ++j) out[j] = from_f<T>(to_f(inp[j]) * dropout_mult(key, j, p, scale));
  }
}

template <typename T>
void dropout_apply(T* out, const T* inp, size_t n, DropoutState drop, cudaStream_t stream) {
  if (drop.p <= 0.0f) {
    if (out != inp) CUDA_CHECK(cudaMemcpyAsync(out, inp, n * sizeof(T), cudaMemcpyDeviceToDevice, stream));
    return;
  }
  const size_t threads = ceil_div<size_t>(n, Pack128<T>::size);
  if (threads == 0) return;
  dropout_kernel<<<ceil_div<size_t>(threads, 256), 256, 0, stream>>>(out, inp, n, drop.p, 1.0f / (1.0f - drop.p),
                                                                     drop.device_key());
  CUDA_CHECK_LAUNCH();
}

template void dropout_apply<float>(float*, const float*, size_t, DropoutState, cudaStream_t);
template void dropout_apply<bf16>(bf16*, const bf16*, size_t, DropoutState, cudaStream_t);

}  // namespace attn::kern
