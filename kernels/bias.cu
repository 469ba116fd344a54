// Bias of a linear layer, out (N, OC) += bias (OC): the forward fallback and the gradient.
#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

namespace {
constexpr int kRowsPerChunk = 128;
}

// out[n, o] += bias[o]
template <typename T>
__global__ void bias_add_kernel(T* out, const T* bias, int N, int OC) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(N) * OC) return;
  out[i] = from_f<T>(to_f(out[i]) + to_f(bias[i % OC]));
}

// Stage 1: scratch[chunk][o] = sum_{n in chunk} dout[n, o]   (block 32 columns x 8 lanes,
// each lane sums its rows in order, lanes added in order: deterministic)
template <typename T>
__global__ void bias_backward_partial_kernel(float* scratch, const T* dout, int N, int OC) {
  __shared__ float s[8][33];
  const int o = blockIdx.x * 32 + threadIdx.x;
  const int chunk = blockIdx.y;
  const int row_end = min(N, (chunk + 1) * kRowsPerChunk);
  float sum = 0.0f;
  if (o < OC)
    for (int n = chunk * kRowsPerChunk + threadIdx.y; n < row_end; n += 8) sum += to_f(dout[static_cast<size_t>(n) * OC + o]);
  s[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && o < OC) {
    float t = 0.0f;
    for (int k = 0; k < 8; ++k) t += s[k][threadIdx.x];
    scratch[static_cast<size_t>(chunk) * OC + o] = t;
  }
}

// Stage 2: dbias[o] += sum_chunks scratch[chunk][o]
__global__ void bias_backward_final_kernel(float* dbias, const float* scratch, int chunks, int OC) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= OC) return;
  float t = 0.0f;
  for (int k = 0; k < chunks; ++k) t += scratch[static_cast<size_t>(k) * OC + o];
  dbias[o] += t;
}

// dst[i] += src[i]
__global__ void add_inplace_kernel(float* dst, const float* src, size_t n) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) dst[i] += src[i];
}

size_t bias_backward_scratch_floats(int N, int OC) { return static_cast<size_t>(ceil_div(N, kRowsPerChunk)) * OC; }

template <typename T>
void bias_add(T* out, const T* bias, int N, int OC, cudaStream_t stream) {
  const size_t n = static_cast<size_t>(N) * OC;
  if (n == 0) return;
  bias_add_kernel<<<ceil_div<size_t>(n, 256), 256, 0, stream>>>(out, bias, N, OC);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void bias_backward(float* dbias, float* scratch, const T* dout, int N, int OC, cudaStream_t stream) {
  const int chunks = ceil_div(N, kRowsPerChunk);
  bias_backward_partial_kernel<<<dim3(ceil_div(OC, 32), chunks), dim3(32, 8), 0, stream>>>(scratch, dout, N, OC);
  CUDA_CHECK_LAUNCH();
  bias_backward_final_kernel<<<ceil_div(OC, 256), 256, 0, stream>>>(dbias, scratch, chunks, OC);
  CUDA_CHECK_LAUNCH();
}

void add_inplace(float* dst, const float* src, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_inplace_kernel<<<ceil_div<size_t>(n, 256), 256, 0, stream>>>(dst, src, n);
  CUDA_CHECK_LAUNCH();
}

template void bias_add<float>(float*, const float*, int, int, cudaStream_t);
template void bias_add<bf16>(bf16*, const bf16*, int, int, cudaStream_t);
template void bias_backward<float>(float*, float*, const float*, int, int, cudaStream_t);
template void bias_backward<bf16>(float*, float*, const bf16*, int, int, cudaStream_t);

}  // namespace attn::kern
