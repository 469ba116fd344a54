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
template <typename T>
__global__ void classifier_kernel(T* logits, float* losses, const int32_t* targets, int V, int Vp, float dloss,
                                  bool write_grad) {
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
  const float M = block_max(m);
  const float S = block_sum(m == -INFINITY ? 0.0f : s * expf(m - M));
  const float lse = M + logf(S);
  const float x_target = to_f(row[target]);
  __syncthreads();  // row[target] is read by all before any thread overwrites it
  if (threadIdx.x == 0) losses[n] = lse - x_target;
  if (!write_grad) return;
  for (int j = threadIdx.x; j < Vp; j += blockDim.x) {
    float g = 0.0f;
    if (j < V) g = (expf(to_f(row[j]) - lse) - (j == target ? 1.0f : 0.0f)) * dloss;
    row[j] = from_f<T>(g);
  }
}

template <typename T>
void classifier_forward_backward(T* logits, float* losses, const int32_t* targets, int N, int V, int Vp, float dloss,
                                 bool write_grad, cudaStream_t stream) {
  if (N == 0) return;
  classifier_kernel<<<N, 512, 0, stream>>>(logits, losses, targets, V, Vp, dloss, write_grad);
  CUDA_CHECK_LAUNCH();
}

template void classifier_forward_backward<float>(float*, float*, const int32_t*, int, int, int, float, bool,
                                                 cudaStream_t);
template void classifier_forward_backward<bf16>(bf16*, float*, const int32_t*, int, int, int, float, bool,
                                                cudaStream_t);

}  // namespace attn::kern
