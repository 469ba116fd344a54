// Token + position embedding ("encoder" in llm.c terms), with the embedding dropout.
#include <algorithm>

#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

// out[n, c] = drop(wte[tok[n], c] + wpe[n % seq, c]),  n = b * seq + t.
// One thread per W consecutive channels (W = 16-byte pack when C allows, else 1).
template <typename T, int W>
__global__ void encoder_forward_kernel(T* out, const int32_t* tokens, const T* wte, const T* wpe, int N, int seq,
                                       int C, float p, float scale, DeviceValue<uint64_t> key_src) {
  const uint64_t key = key_src.get();  // core/device_value.h
  const size_t i = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * W;
  if (i >= static_cast<size_t>(N) * C) return;
  const int n = static_cast<int>(i / C), c = static_cast<int>(i % C), t = n % seq;
  const T* e = wte + static_cast<size_t>(tokens[n]) * C + c;
  const T* q = wpe + static_cast<size_t>(t) * C + c;
  if constexpr (W == 1) {
    float x = to_f(e[0]) + to_f(q[0]);
    if (p > 0.0f) x *= dropout_mult(key, i, p, scale);
    out[i] = from_f<T>(x);
  } else {
    const Pack128<T> a = load128(e), b = load128(q);
    Pack128<T> o;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      float x = a.get(k) + b.get(k);
      if (p > 0.0f) x *= dropout_mult(key, i + k, p, scale);
      o.set(k, x);
    }
    store128(out + i, o);
  }
}

// dwte[tok, c] += sum over the bucket's positions n (in order) of drop'(dout)[n, c].
// blockIdx.x = bucket (one distinct token), threads over channels: no two blocks touch
// the same row of dwte, so no atomics and a fixed summation order.
template <typename T>
__global__ void encoder_backward_wte_kernel(float* dwte, const T* dout, const int32_t* buckets, int num_buckets,
                                            int C, float p, float scale, DeviceValue<uint64_t> key_src) {
  const uint64_t key = key_src.get();  // core/device_value.h
  const int bucket = blockIdx.x;
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int32_t* tokens = buckets;
  const int32_t* starts = buckets + num_buckets;
  const int32_t* positions = starts + num_buckets + 1;
  if (starts[bucket] == starts[bucket + 1]) return;  // a padding bucket (build_token_buckets' pad_to)
  float sum = 0.0f;
  for (int k = starts[bucket]; k < starts[bucket + 1]; ++k) {
    const size_t idx = static_cast<size_t>(positions[k]) * C + c;
    float d = to_f(dout[idx]);
    if (p > 0.0f) d *= dropout_mult(key, idx, p, scale);
    sum += d;
  }
  dwte[static_cast<size_t>(tokens[bucket]) * C + c] += sum;
}

// dwpe[t, c] += sum_b drop'(dout)[b, t, c]   (one thread per (t, c), b in order)
template <typename T>
__global__ void encoder_backward_wpe_kernel(float* dwpe, const T* dout, int B, int seq, int C, float p, float scale,
                                            DeviceValue<uint64_t> key_src) {
  const uint64_t key = key_src.get();  // core/device_value.h
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(seq) * C) return;
  float sum = 0.0f;
  for (int b = 0; b < B; ++b) {
    const size_t idx = static_cast<size_t>(b) * seq * C + i;
    float d = to_f(dout[idx]);
    if (p > 0.0f) d *= dropout_mult(key, idx, p, scale);
    sum += d;
  }
  dwpe[i] += sum;
}

template <typename T>
void encoder_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int B, int seq, int C,
                     DropoutState drop, cudaStream_t stream) {
  const int N = B * seq, block = 256;
  const float scale = drop.p > 0.0f ? 1.0f / (1.0f - drop.p) : 1.0f;
  constexpr int W = Pack128<T>::size;
  if (C % W == 0) {
    const size_t threads = static_cast<size_t>(N) * C / W;
    encoder_forward_kernel<T, W><<<ceil_div<size_t>(threads, block), block, 0, stream>>>(out, tokens, wte, wpe, N,
                                                                                         seq, C, drop.p, scale, drop.device_key());
  } else {
    const size_t threads = static_cast<size_t>(N) * C;
    encoder_forward_kernel<T, 1><<<ceil_div<size_t>(threads, block), block, 0, stream>>>(out, tokens, wte, wpe, N,
                                                                                         seq, C, drop.p, scale, drop.device_key());
  }
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void encoder_backward(float* dwte, float* dwpe, const T* dout, const int32_t* buckets, int num_buckets, int B,
                      int seq, int C, DropoutState drop, cudaStream_t stream) {
  const float scale = drop.p > 0.0f ? 1.0f / (1.0f - drop.p) : 1.0f;
  const int block = 128;
  if (num_buckets > 0) {
    const dim3 grid(num_buckets, ceil_div(C, block));
    encoder_backward_wte_kernel<<<grid, block, 0, stream>>>(dwte, dout, buckets, num_buckets, C, drop.p, scale,
                                                            drop.device_key());
    CUDA_CHECK_LAUNCH();
  }
  const size_t n = static_cast<size_t>(seq) * C;
  encoder_backward_wpe_kernel<<<ceil_div<size_t>(n, 256), 256, 0, stream>>>(dwpe, dout, B, seq, C, drop.p, scale,
                                                                             drop.device_key());
  CUDA_CHECK_LAUNCH();
}

// A counting sort by token id: O(N + vocab), stable (positions stay in increasing order inside
// a bucket), so the layout is what a stable sort of the positions by token gives. It runs on
// the host before every training step while the GPU waits, so O(N + vocab) rather than the
// O(N log N) comparison sort it replaced (whose cost there was not measured separately).
int build_token_buckets(const int32_t* tokens, int N, int vocab, std::vector<int32_t>& out, int pad_to) {
  std::vector<int32_t> next(static_cast<size_t>(vocab) + 1, 0);  // count, then the next slot of each token
  for (int i = 0; i < N; ++i) next[tokens[i] + 1] += 1;
  int used = 0;
  for (int t = 0; t < vocab; ++t) used += next[t + 1] > 0;
  const int num_buckets = std::max(used, pad_to);
  out.resize(2 * static_cast<size_t>(num_buckets) + 1 + N);
  int32_t* toks = out.data();
  int32_t* starts = toks + num_buckets;
  int32_t* order = starts + num_buckets + 1;
  int b = 0;
  for (int t = 0; t < vocab; ++t) {
    next[t + 1] += next[t];  // next[t] = first slot of token t
    if (next[t + 1] > next[t]) toks[b] = t, starts[b] = next[t], ++b;
  }
  for (; b < num_buckets; ++b) toks[b] = 0, starts[b] = N;  // empty: the kernel skips them
  starts[num_buckets] = N;
  for (int i = 0; i < N; ++i) order[next[tokens[i]]++] = i;
  return num_buckets;
}

#define INSTANTIATE(T)                                                                                          \
  template void encoder_forward<T>(T*, const int32_t*, const T*, const T*, int, int, int, DropoutState,         \
                                   cudaStream_t);                                                               \
  template void encoder_backward<T>(float*, float*, const T*, const int32_t*, int, int, int, int, DropoutState, \
                                    cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(bf16)

}  // namespace attn::kern
