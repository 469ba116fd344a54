// Kernels of cached generation: see kernels/generation.h for the math of each.
#include "core/cuda_check.h"
#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/generation.h"
#include "kernels/grid_argmax.cuh"
#include "kernels/tiles/pdl.cuh"

#include <cmath>
#include <cstdint>

namespace attn::kern {

// One block per sequence b: pos = lengths[b]; out[b, c] = wte[tokens[b], c] + wpe[pos, c] (the
// sum in fp32, rounded once, as encoder.cu); then positions[b] = pos, lengths[b] = pos + 1 (after
// every thread of the block has read lengths[b]), and fed[b * fed_stride + pos] = tokens[b]. Lets
// the next kernel start its weight prefetch.
template <typename T>
__global__ void start_decode_step_kernel(T* out, int32_t* positions, int32_t* lengths, const int32_t* tokens,
                                         int32_t* fed, int fed_stride, const T* wte, const T* wpe, int C) {
  tiles::launch_dependents();
  const int b = blockIdx.x;
  const int32_t pos = lengths[b], token = tokens[b];
  const T* te = wte + static_cast<size_t>(token) * C;
  const T* pe = wpe + static_cast<size_t>(pos) * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) out[static_cast<size_t>(b) * C + c] = from_f<T>(to_f(te[c]) + to_f(pe[c]));
  __syncthreads();
  if (threadIdx.x == 0) positions[b] = pos, lengths[b] = pos + 1, fed[static_cast<size_t>(b) * fed_stride + pos] = token;
}

// out[b, c] = x[(b * seq + lengths[b] - 1) * C + c]
template <typename T>
__global__ void gather_last_rows_kernel(T* out, const T* x, const int32_t* lengths, int B, int seq, int C) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(B) * C) return;
  const size_t b = i / C, c = i % C;
  out[i] = x[(b * seq + lengths[b] - 1) * C + c];
}

// Block (chunk, b) of kLogitsChunk logits of row b: out[b, v] = float(logits[b, v]) (when out)
// and the chunk's best key (grid_argmax.cuh), then the grid's: next[b] = argmax_v. A row's
// chunks are many blocks, so the pass runs at memory speed even for a few rows.
constexpr int kLogitsThreads = 256;
constexpr int kLogitsChunk = 8 * kLogitsThreads;
template <typename T>
__global__ void __launch_bounds__(kLogitsThreads)
    logits_argmax_kernel(int32_t* next, float* out, const T* logits, int B, int V, int Vp, unsigned long long* scratch) {
  __shared__ unsigned long long warp_best[kLogitsThreads / 32];
  __shared__ unsigned long long block_best[1];
  __shared__ int last;
  const int b = blockIdx.y, v0 = blockIdx.x * kLogitsChunk, v1 = min(V, v0 + kLogitsChunk);
  unsigned long long best = 0;
  for (int v = v0 + threadIdx.x; v < v1; v += kLogitsThreads) {
    const float x = to_f(logits[static_cast<size_t>(b) * Vp + v]);
    if (out) out[static_cast<size_t>(b) * V + v] = x;
    if (!isnan(x)) best = max(best, argmax_key(x, v));
  }
  best = warp_max_key(best);
  if (threadIdx.x % 32 == 0) warp_best[threadIdx.x / 32] = best;
  __syncthreads();
  if (threadIdx.x < 32) {
    best = warp_max_key(threadIdx.x < kLogitsThreads / 32 ? warp_best[threadIdx.x] : 0ull);
    if (threadIdx.x == 0) block_best[0] = best;
  }
  __syncthreads();
  grid_argmax_finish(block_best, b, 1, scratch, B, next, &last);
}

size_t argmax_scratch_bytes(int rows) { return (static_cast<size_t>(rows) + 1) * sizeof(unsigned long long); }

template <typename T>
void logits_argmax(int32_t* next, float* out, const T* logits, int B, int V, int Vp, unsigned long long* scratch,
                   cudaStream_t stream) {
  ATTN_CHECK(next && logits && scratch && V >= 1 && Vp >= V, "logits_argmax: next, logits and scratch needed, 1 <= V <= Vp");
  if (B <= 0) return;
  logits_argmax_kernel<T><<<dim3(ceil_div(V, kLogitsChunk), B), kLogitsThreads, 0, stream>>>(next, out, logits, B, V, Vp,
                                                                                          scratch);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void start_decode_step(T* out, int32_t* positions, int32_t* lengths, const int32_t* tokens, int32_t* fed, int fed_stride,
                       const T* wte, const T* wpe, int B, int C, cudaStream_t stream) {
  ATTN_CHECK(fed && fed_stride >= 1, "start_decode_step: fed (B, fed_stride >= 1) needed");
  if (B <= 0) return;
  constexpr int kThreads = 256;
  start_decode_step_kernel<<<B, kThreads, 0, stream>>>(out, positions, lengths, tokens, fed, fed_stride, wte, wpe, C);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void gather_last_rows(T* out, const T* x, const int32_t* lengths, int B, int seq, int C, cudaStream_t stream) {
  const size_t n = static_cast<size_t>(B) * C;
  gather_last_rows_kernel<<<ceil_div<size_t>(n, 256), 256, 0, stream>>>(out, x, lengths, B, seq, C);
  CUDA_CHECK_LAUNCH();
}

template void start_decode_step<float>(float*, int32_t*, int32_t*, const int32_t*, int32_t*, int, const float*,
                                       const float*, int, int, cudaStream_t);
template void start_decode_step<bf16>(bf16*, int32_t*, int32_t*, const int32_t*, int32_t*, int, const bf16*, const bf16*,
                                      int, int, cudaStream_t);
template void gather_last_rows<float>(float*, const float*, const int32_t*, int, int, int, cudaStream_t);
template void gather_last_rows<bf16>(bf16*, const bf16*, const int32_t*, int, int, int, cudaStream_t);
template void logits_argmax<float>(int32_t*, float*, const float*, int, int, int, unsigned long long*, cudaStream_t);
template void logits_argmax<bf16>(int32_t*, float*, const bf16*, int, int, int, unsigned long long*, cudaStream_t);

}  // namespace attn::kern
