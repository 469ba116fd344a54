// Row softmax of the attention scores for the naive (O(T^2)) attention, and its backward.
// Rows r = (b H + h) T + i of length T; column j of row r is element r T + j, which is
// also the attention-dropout index (model/dropout_sites.h).
#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

// One warp per row; visible columns j < len (len = i + 1 when causal, else T):
//   P[r, j] = exp(S[r, j] - max) / sum_{j' < len} exp(S[r, j'] - max),   0 for j >= len
//   Pdrop[r, j] = P[r, j] * (keep(key, r T + j) ? 1/(1-p) : 0)   (from the stored, rounded P)
template <typename T>
__global__ void attention_softmax_forward_kernel(T* P, T* Pdrop, const float* S, int rows, int seq, bool causal,
                                                 float p, float scale, uint64_t key) {
  const int lane = threadIdx.x % 32;
  const int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (r >= rows) return;
  const int i = r % seq;
  const int len = causal ? i + 1 : seq;
  const size_t base = static_cast<size_t>(r) * seq;
  float m = -INFINITY, s = 0.0f;
  for (int j = lane; j < len; j += 32) {
    const float x = S[base + j];
    if (x > m) {
      s = s * expf(m - x) + 1.0f;
      m = x;
    } else {
      s += expf(x - m);
    }
  }
  const float M = warp_max(m);
  const float inv = 1.0f / warp_sum(m == -INFINITY ? 0.0f : s * expf(m - M));
  for (int j = lane; j < seq; j += 32) {
    const T pj = from_f<T>(j < len ? expf(S[base + j] - M) * inv : 0.0f);
    P[base + j] = pj;
    if (Pdrop != nullptr) Pdrop[base + j] = from_f<T>(to_f(pj) * dropout_mult(key, base + j, p, scale));
  }
}

// One warp per row:  dP[j] = dPdrop[j] * mask_j (dropout backward, identity when p == 0)
//   rowsum = sum_{j < len} P[j] dP[j];     dS[j] = P[j] (dP[j] - rowsum),  0 for j >= len
template <typename T>
__global__ void attention_softmax_backward_kernel(T* dS, const T* P, const float* dPdrop, int rows, int seq,
                                                  bool causal, float p, float scale, uint64_t key) {
  const int lane = threadIdx.x % 32;
  const int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (r >= rows) return;
  const int i = r % seq;
  const int len = causal ? i + 1 : seq;
  const size_t base = static_cast<size_t>(r) * seq;
  float s = 0.0f;
  for (int j = lane; j < len; j += 32) {
    float dp = dPdrop[base + j];
    if (p > 0.0f) dp *= dropout_mult(key, base + j, p, scale);
    s += to_f(P[base + j]) * dp;
  }
  const float rowsum = warp_sum(s);
  for (int j = lane; j < seq; j += 32) {
    float ds = 0.0f;
    if (j < len) {
      float dp = dPdrop[base + j];
      if (p > 0.0f) dp *= dropout_mult(key, base + j, p, scale);
      ds = to_f(P[base + j]) * (dp - rowsum);
    }
    dS[base + j] = from_f<T>(ds);
  }
}

template <typename T>
void attention_softmax_forward(T* P, T* Pdrop, const float* S, int BH, int seq, bool causal, DropoutState drop,
                               cudaStream_t stream) {
  const int rows = BH * seq, block = 256;
  if (rows == 0) return;
  const float scale = drop.p > 0.0f ? 1.0f / (1.0f - drop.p) : 1.0f;
  attention_softmax_forward_kernel<<<ceil_div(rows, block / 32), block, 0, stream>>>(P, Pdrop, S, rows, seq, causal,
                                                                                     drop.p, scale, drop.key);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void attention_softmax_backward(T* dS, const T* P, const float* dPdrop, int BH, int seq, bool causal,
                                DropoutState drop, cudaStream_t stream) {
  const int rows = BH * seq, block = 256;
  if (rows == 0) return;
  const float scale = drop.p > 0.0f ? 1.0f / (1.0f - drop.p) : 1.0f;
  attention_softmax_backward_kernel<<<ceil_div(rows, block / 32), block, 0, stream>>>(dS, P, dPdrop, rows, seq,
                                                                                      causal, drop.p, scale, drop.key);
  CUDA_CHECK_LAUNCH();
}

template void attention_softmax_forward<float>(float*, float*, const float*, int, int, bool, DropoutState,
                                               cudaStream_t);
template void attention_softmax_forward<bf16>(bf16*, bf16*, const float*, int, int, bool, DropoutState,
                                              cudaStream_t);
template void attention_softmax_backward<float>(float*, const float*, const float*, int, int, bool, DropoutState,
                                                cudaStream_t);
template void attention_softmax_backward<bf16>(bf16*, const bf16*, const float*, int, int, bool, DropoutState,
                                               cudaStream_t);

}  // namespace attn::kern
