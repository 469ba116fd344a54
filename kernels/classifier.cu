// Fused classifier: softmax + cross-entropy + its gradient, written in place over the
// logits (no fp32 copy of all logits), one loss per position.
#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

// One block per row n (target t = targets[n]; only columns j < V are the vocabulary,
// V <= j < Vp are padding):
//   lse       = log sum_{j<V} exp(logits[n, j])          (online max/sum, fp32)
//   losses[n] = lse - logits[n, t]                          0 when t == -1
//   write_grad: logits[n, j] <- (exp(logits[n, j] - lse) - [j == t]) * dloss   (j < V)
//               logits[n, j] <- 0                                             (j >= V or t == -1)
// Both kernels end the same way: each thread's running (max m, sum s of exp(x - m)) merge over
// the block into lse; thread 0 writes the loss lse - logits[n, t]. Returns lse once every
// thread has read row[target] (the gradient pass then overwrites the row).
template <typename T>
__device__ __forceinline__ float row_lse_and_loss(float m, float s, const T* row, int target, float* loss) {
  const float M = block_max(m);
  const float S = block_sum(m == -INFINITY ? 0.0f : s * expf(m - M));
  const float lse = M + logf(S);
  const float x_target = to_f(row[target]);
  __syncthreads();  // row[target] is read by all before any thread overwrites it
  if (threadIdx.x == 0) *loss = lse - x_target;
  return lse;
}

template <typename T>
__global__ void classifier_kernel(T* logits, float* losses, const int32_t* targets, int V, int Vp,
                                  DeviceValue<float> dloss_src, bool write_grad) {
  const float dloss = dloss_src.get();  // core/device_value.h
  const int n = blockIdx.x;
  T* row = logits + static_cast<size_t>(n) * Vp;
  const int target = targets[n];
  if (target < 0) {  // ignored position (block-uniform branch)
    if (write_grad)
      for (int j = threadIdx.x; j < Vp; j += blockDim.x) row[j] = from_f<T>(0.0f);
    if (threadIdx.x == 0) losses[n] = 0.0f;
    return;
  }
  float m = -INFINITY, s = 0.0f;
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    const float x = to_f(row[j]);
    if (x > m) {
      s = s * expf(m - x) + 1.0f;
      m = x;
    } else {
      s += expf(x - m);
    }
  }
  const float lse = row_lse_and_loss(m, s, row, target, losses + n);
  if (!write_grad) return;
  for (int j = threadIdx.x; j < Vp; j += blockDim.x) {
    float g = 0.0f;
    if (j < V) g = (expf(to_f(row[j]) - lse) - (j == target ? 1.0f : 0.0f)) * dloss;
    row[j] = from_f<T>(g);
  }
}

// The same math, for Vp % (16 / sizeof(T)) == 0 (GPT-2: Vp = 50304): every element moves in
// 16-byte packs, the row is read twice (max/sum, then the gradient: the second read mostly
// hits L2) and written once. Per pack the running (max, sum) is rescaled once, not per
// element:  m' = max(m, max_j x_j),  s' = s exp(m - m') + sum_j exp(x_j - m').
// Why: the scalar kernel above moves 2 bytes per load and pays a branch + expf per element
// in the online softmax; this one is bound by memory bandwidth.
constexpr int kClassifierThreads = 512;

template <typename T>
__global__ void __launch_bounds__(kClassifierThreads)
    classifier_packed_kernel(T* logits, float* losses, const int32_t* targets, int V, int Vp,
                             DeviceValue<float> dloss_src, bool write_grad) {
  const float dloss = dloss_src.get();  // core/device_value.h
  constexpr int W = Pack128<T>::size;
  const int n = blockIdx.x;
  T* row = logits + static_cast<size_t>(n) * Vp;
  const int target = targets[n];
  const int packs = Vp / W;
  if (target < 0) {  // ignored position (block-uniform branch)
    if (write_grad) {
      Pack128<T> zero;
#pragma unroll
      for (int j = 0; j < W; ++j) zero.set(j, 0.0f);
      for (int pk = threadIdx.x; pk < packs; pk += blockDim.x) store128(row + pk * W, zero);
    }
    if (threadIdx.x == 0) losses[n] = 0.0f;
    return;
  }
  float m = -INFINITY, s = 0.0f;
  for (int pk = threadIdx.x; pk < packs; pk += blockDim.x) {
    const Pack128<T> x = load128(row + pk * W);
    float pack_max = -INFINITY;
#pragma unroll
    for (int j = 0; j < W; ++j)
      if (pk * W + j < V) pack_max = fmaxf(pack_max, x.get(j));
    if (pack_max == -INFINITY) continue;  // a pack of padding only
    const float m_new = fmaxf(m, pack_max);
    float add = 0.0f;
#pragma unroll
    for (int j = 0; j < W; ++j)
      if (pk * W + j < V) add += expf(x.get(j) - m_new);
    s = (m == -INFINITY ? 0.0f : s * expf(m - m_new)) + add;
    m = m_new;
  }
  const float lse = row_lse_and_loss(m, s, row, target, losses + n);
  if (!write_grad) return;
  for (int pk = threadIdx.x; pk < packs; pk += blockDim.x) {
    const Pack128<T> x = load128cs(row + pk * W);
    Pack128<T> g;
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const int col = pk * W + j;
      g.set(j, col < V ? (expf(x.get(j) - lse) - (col == target ? 1.0f : 0.0f)) * dloss : 0.0f);
    }
    store128(row + pk * W, g);
  }
}

template <typename T>
void classifier_forward_backward(T* logits, float* losses, const int32_t* targets, int N, int V, int Vp,
                                 DeviceValue<float> dloss, bool write_grad, cudaStream_t stream) {
  if (N == 0) return;
  if (Vp % Pack128<T>::size == 0) {  // rows start on 16 bytes: the vectorized kernel
    classifier_packed_kernel<<<N, kClassifierThreads, 0, stream>>>(logits, losses, targets, V, Vp, dloss, write_grad);
  } else {
    classifier_kernel<<<N, 512, 0, stream>>>(logits, losses, targets, V, Vp, dloss, write_grad);
  }
  CUDA_CHECK_LAUNCH();
}

template void classifier_forward_backward<float>(float*, float*, const int32_t*, int, int, int, DeviceValue<float>, bool,
                                                 cudaStream_t);
template void classifier_forward_backward<bf16>(bf16*, float*, const int32_t*, int, int, int, DeviceValue<float>, bool,
                                                cudaStream_t);

}  // namespace attn::kern
