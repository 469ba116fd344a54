// Layout changes for the naive attention: the fused qkv buffer (B, T, (H + 2 Hkv) D) to
// per-head matrices (B, H, T, D) that strided batched GEMMs can walk, and back.
#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

// For every (b, h, t, d), g = h / (H / Hkv) (the kv head of query head h):
//   q[b,h,t,d] = qkv[b,t, h D + d]
//   k[b,h,t,d] = qkv[b,t, (H + g) D + d]          (repeated over the group: repeat_kv)
//   v[b,h,t,d] = qkv[b,t, (H + Hkv + g) D + d]
template <typename T>
__global__ void attention_permute_kernel(T* q, T* k, T* v, const T* qkv, int B, int seq, int H, int Hkv, int D) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(B) * H * seq * D) return;
  const int d = static_cast<int>(i % D);
  const int t = static_cast<int>((i / D) % seq);
  const int h = static_cast<int>((i / (static_cast<size_t>(D) * seq)) % H);
  const size_t b = i / (static_cast<size_t>(D) * seq * H);
  const int g = h / (H / Hkv);
  const size_t row = (b * seq + t) * static_cast<size_t>(H + 2 * Hkv) * D;
  q[i] = qkv[row + static_cast<size_t>(h) * D + d];
  k[i] = qkv[row + static_cast<size_t>(H + g) * D + d];
  v[i] = qkv[row + static_cast<size_t>(H + Hkv + g) * D + d];
}

// y[b,t, h D + d] = yh[b,h,t,d]
template <typename T>
__global__ void attention_unpermute_kernel(T* y, const T* yh, int B, int seq, int H, int D) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(B) * seq * H * D) return;
  const int c = static_cast<int>(i % (static_cast<size_t>(H) * D));
  const size_t bt = i / (static_cast<size_t>(H) * D);
  const size_t b = bt / seq, t = bt % seq;
  const int h = c / D, d = c % D;
  y[i] = yh[((b * H + h) * seq + t) * D + d];
}

// xh[b,h,t,d] = x[b,t, h D + d]
template <typename T>
__global__ void attention_split_heads_kernel(T* xh, const T* x, int B, int seq, int H, int D) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(B) * seq * H * D) return;
  const int c = static_cast<int>(i % (static_cast<size_t>(H) * D));
  const size_t bt = i / (static_cast<size_t>(H) * D);
  const size_t b = bt / seq, t = bt % seq;
  const int h = c / D, d = c % D;
  xh[((b * H + h) * seq + t) * D + d] = x[i];
}

// dqkv[b,t, col]:  col in q part: dq[b,h,t,d];  in the k (v) part of kv head g:
// sum over the group's query heads h = g G .. g G + G - 1 (in order) of dk (dv)[b,h,t,d].
template <typename T>
__global__ void attention_permute_backward_kernel(T* dqkv, const T* dq, const T* dk, const T* dv, int B, int seq,
                                                  int H, int Hkv, int D) {
  const int QKV = (H + 2 * Hkv) * D;
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(B) * seq * QKV) return;
  const int col = static_cast<int>(i % QKV);
  const size_t bt = i / QKV;
  const size_t b = bt / seq, t = bt % seq;
  const int head = col / D, d = col % D;
  const int G = H / Hkv;
  auto at = [&](int h) { return ((b * H + h) * seq + t) * D + d; };
  if (head < H) {
    dqkv[i] = dq[at(head)];
    return;
  }
  const T* src = head < H + Hkv ? dk : dv;
  const int g = head < H + Hkv ? head - H : head - H - Hkv;
  float s = 0.0f;
  for (int h = g * G; h < (g + 1) * G; ++h) s += to_f(src[at(h)]);
  dqkv[i] = from_f<T>(s);
}

template <typename T>
void attention_permute(T* q, T* k, T* v, const T* qkv, int B, int seq, int H, int Hkv, int D, cudaStream_t stream) {
  const size_t n = static_cast<size_t>(B) * H * seq * D;
  if (n == 0) return;
  attention_permute_kernel<<<ceil_div<size_t>(n, 256), 256, 0, stream>>>(q, k, v, qkv, B, seq, H, Hkv, D);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void attention_unpermute(T* y, const T* yh, int B, int seq, int H, int D, cudaStream_t stream) {
  const size_t n = static_cast<size_t>(B) * H * seq * D;
  if (n == 0) return;
  attention_unpermute_kernel<<<ceil_div<size_t>(n, 256), 256, 0, stream>>>(y, yh, B, seq, H, D);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void attention_split_heads(T* xh, const T* x, int B, int seq, int H, int D, cudaStream_t stream) {
  const size_t n = static_cast<size_t>(B) * H * seq * D;
  if (n == 0) return;
  attention_split_heads_kernel<<<ceil_div<size_t>(n, 256), 256, 0, stream>>>(xh, x, B, seq, H, D);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void attention_permute_backward(T* dqkv, const T* dq, const T* dk, const T* dv, int B, int seq, int H, int Hkv, int D,
                                cudaStream_t stream) {
  const size_t n = static_cast<size_t>(B) * seq * (H + 2 * Hkv) * D;
  if (n == 0) return;
  attention_permute_backward_kernel<<<ceil_div<size_t>(n, 256), 256, 0, stream>>>(dqkv, dq, dk, dv, B, seq, H, Hkv,
                                                                                  D);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                                                        \
  template void attention_permute<T>(T*, T*, T*, const T*, int, int, int, int, int, cudaStream_t);           \
  template void attention_unpermute<T>(T*, const T*, int, int, int, int, cudaStream_t);                      \
  template void attention_split_heads<T>(T*, const T*, int, int, int, int, cudaStream_t);                    \
  template void attention_permute_backward<T>(T*, const T*, const T*, const T*, int, int, int, int, int,     \
                                              cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(bf16)

}  // namespace attn::kern
