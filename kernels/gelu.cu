// GELU, tanh approximation (nanoGPT's new_gelu / torch gelu(approximate="tanh")).
// Used where the cuBLASLt GELU epilogues are not (fp32 parity mode, or shapes without
// an epilogue algorithm).
#include "kernels/common.cuh"
#include "kernels/gelu_math.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

// out = gelu(inp); one 16-byte pack per thread, the last thread takes the tail.
template <typename T>
__global__ void gelu_forward_kernel(T* out, const T* inp, size_t n) {
  constexpr int W = Pack128<T>::size;
  const size_t i = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * W;
  if (i + W <= n) {
    const Pack128<T> x = load128(inp + i);
    Pack128<T> o;
#pragma unroll
    for (int k = 0; k < W; ++k) o.set(k, gelu(x.get(k)));
    store128(out + i, o);
  } else {
    for (size_t j = i; j < n; ++j) out[j] = from_f<T>(gelu(to_f(inp[j])));
  }
}

// d = d * gelu'(inp)
template <typename T>
__global__ void gelu_backward_kernel(T* d, const T* inp, size_t n) {
  constexpr int W = Pack128<T>::size;
  const size_t i = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * W;
  if (i + W <= n) {
    const Pack128<T> x = load128(inp + i);
    Pack128<T> g = load128(d + i);
#pragma unroll
    for (int k = 0; k < W; ++k) g.set(k, g.get(k) * gelu_grad(x.get(k)));
    store128(d + i, g);
  } else {
    for (size_t j = i; j < n; ++j) d[j] = from_f<T>(to_f(d[j]) * gelu_grad(to_f(inp[j])));
  }
}

template <typename T>
void gelu_forward(T* out, const T* inp, size_t n, cudaStream_t stream) {
  const size_t threads = ceil_div<size_t>(n, Pack128<T>::size);
  if (threads == 0) return;
  gelu_forward_kernel<<<ceil_div<size_t>(threads, 256), 256, 0, stream>>>(out, inp, n);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void gelu_backward_inplace(T* d, const T* inp, size_t n, cudaStream_t stream) {
  const size_t threads = ceil_div<size_t>(n, Pack128<T>::size);
  if (threads == 0) return;
  gelu_backward_kernel<<<ceil_div<size_t>(threads, 256), 256, 0, stream>>>(d, inp, n);
  CUDA_CHECK_LAUNCH();
}

template void gelu_forward<float>(float*, const float*, size_t, cudaStream_t);
template void gelu_forward<bf16>(bf16*, const bf16*, size_t, cudaStream_t);
template void gelu_backward_inplace<float>(float*, const float*, size_t, cudaStream_t);
template void gelu_backward_inplace<bf16>(bf16*, const bf16*, size_t, cudaStream_t);

}  // namespace attn::kern
