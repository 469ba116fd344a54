// Kernels of cached generation: see kernels/generation.h for the math of each.
#include "core/cuda_check.h"
#include "kernels/common.cuh"
#include "kernels/generation.h"
#include "kernels/tiles/pdl.cuh"

#include <cmath>
#include <cstdint>

namespace attn::kern {

// One block per sequence b: pos = lengths[b]; out[b, c] = wte[tokens[b], c] + wpe[pos, c] (the
// sum in fp32, rounded once, as encoder.cu); then positions[b] = pos, lengths[b] = pos + 1 (after
// every thread of the block has read lengths[b]). Lets the next kernel start its weight prefetch.
template <typename T>
__global__ void start_decode_step_kernel(T* out, int32_t* positions, int32_t* lengths, const int32_t* tokens,
                                         const T* wte, const T* wpe, int C) {
  tiles::launch_dependents();
  const int b = blockIdx.x;
  const int32_t pos = lengths[b];
  const T* te = wte + static_cast<size_t>(tokens[b]) * C;
  const T* pe = wpe + static_cast<size_t>(pos) * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) out[static_cast<size_t>(b) * C + c] = from_f<T>(to_f(te[c]) + to_f(pe[c]));
  __syncthreads();
  if (threadIdx.x == 0) positions[b] = pos, lengths[b] = pos + 1;
}

// out[b, c] = x[(b * seq + lengths[b] - 1) * C + c]
template <typename T>
__global__ void gather_last_rows_kernel(T* out, const T* x, const int32_t* lengths, int B, int seq, int C) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(B) * C) return;
  const size_t b = i / C, c = i % C;
  out[i] = x[(b * seq + lengths[b] - 1) * C + c];
}

// (value, index) pairs ordered by value, then by the smaller index (std::max_element keeps the
// first of equal maxima). The initial index INT32_MAX loses every tie, so -inf rows give 0.
struct ArgmaxPair {
  float v;
  int32_t i;
};
__device__ __forceinline__ ArgmaxPair better(ArgmaxPair a, ArgmaxPair b) {
  return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
}

// One block per row: each thread scans a stride of the row, then a warp-shuffle and a
// shared-memory round reduce the per-thread bests. next[b] = argmax_v logits[b * V + v].
constexpr int kArgmaxThreads = 1024;
__global__ void __launch_bounds__(kArgmaxThreads) argmax_rows_kernel(int32_t* next, const float* logits, int V) {
  const float* row = logits + static_cast<size_t>(blockIdx.x) * V;
  ArgmaxPair best{-INFINITY, INT32_MAX};
  for (int v = threadIdx.x; v < V; v += blockDim.x) best = better(best, ArgmaxPair{row[v], v});
  for (int off = 16; off > 0; off >>= 1)
    best = better(best, ArgmaxPair{__shfl_down_sync(0xffffffffu, best.v, off), __shfl_down_sync(0xffffffffu, best.i, off)});
  __shared__ ArgmaxPair warp_best[kArgmaxThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  if (lane == 0) warp_best[warp] = best;
  __syncthreads();
  if (warp != 0) return;
  best = lane < warps ? warp_best[lane] : ArgmaxPair{-INFINITY, INT32_MAX};
  for (int off = 16; off > 0; off >>= 1)
    best = better(best, ArgmaxPair{__shfl_down_sync(0xffffffffu, best.v, off), __shfl_down_sync(0xffffffffu, best.i, off)});
  if (lane == 0) next[blockIdx.x] = best.i == INT32_MAX ? 0 : best.i;
}

void argmax_rows(int32_t* next, const float* logits, int B, int V, cudaStream_t stream) {
  if (B <= 0) return;
  argmax_rows_kernel<<<B, kArgmaxThreads, 0, stream>>>(next, logits, V);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void start_decode_step(T* out, int32_t* positions, int32_t* lengths, const int32_t* tokens, const T* wte, const T* wpe,
                       int B, int C, cudaStream_t stream) {
  if (B <= 0) return;
  constexpr int kThreads = 256;
  start_decode_step_kernel<<<B, kThreads, 0, stream>>>(out, positions, lengths, tokens, wte, wpe, C);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void gather_last_rows(T* out, const T* x, const int32_t* lengths, int B, int seq, int C, cudaStream_t stream) {
  const size_t n = static_cast<size_t>(B) * C;
  gather_last_rows_kernel<<<ceil_div<size_t>(n, 256), 256, 0, stream>>>(out, x, lengths, B, seq, C);
  CUDA_CHECK_LAUNCH();
}

template void start_decode_step<float>(float*, int32_t*, int32_t*, const int32_t*, const float*, const float*, int, int,
                                       cudaStream_t);
template void start_decode_step<bf16>(bf16*, int32_t*, int32_t*, const int32_t*, const bf16*, const bf16*, int, int,
                                      cudaStream_t);
template void gather_last_rows<float>(float*, const float*, const int32_t*, int, int, int, cudaStream_t);
template void gather_last_rows<bf16>(bf16*, const bf16*, const int32_t*, int, int, int, cudaStream_t);

}  // namespace attn::kern
