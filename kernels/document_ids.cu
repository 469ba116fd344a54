// doc[b, t] = #{ s < t : inputs[b, s] == eot }: an exclusive prefix count per row.
// One block of 256 threads per row: thread k owns the contiguous chunk [k*c, (k+1)*c) of the row
// (c = ceil(T / 256)), counts its eot tokens, the block scans the 256 counts in shared memory
// (Hillis-Steele), then each thread writes its chunk sequentially from its exclusive offset.
#include "kernels/common.cuh"
#include "kernels/document_ids.h"

namespace attn::kern {

__global__ void __launch_bounds__(256)
    document_ids_kernel(int32_t* doc, const int32_t* inputs, int T, int32_t eot) {
  __shared__ int scan[256];
  const int b = blockIdx.x, k = threadIdx.x;
  const int chunk = (T + 255) / 256;
  const int begin = min(T, k * chunk), end = min(T, begin + chunk);
  const int32_t* row = inputs + static_cast<int64_t>(b) * T;
  int count = 0;
  for (int t = begin; t < end; ++t) count += row[t] == eot;
  scan[k] = count;
  __syncthreads();
  for (int off = 1; off < 256; off <<= 1) {  // inclusive scan
    const int add = k >= off ? scan[k - off] : 0;
    __syncthreads();
    scan[k] += add;
    __syncthreads();
  }
  int d = scan[k] - count;  // exclusive: eot tokens before this chunk
  int32_t* out = doc + static_cast<int64_t>(b) * T;
  for (int t = begin; t < end; ++t) {
    out[t] = d;
    d += row[t] == eot;
  }
}

void document_ids(int32_t* doc, const int32_t* inputs, int B, int T, int32_t eot, cudaStream_t stream) {
  if (B <= 0 || T <= 0) return;
  document_ids_kernel<<<B, 256, 0, stream>>>(doc, inputs, T, eot);
  CUDA_CHECK_LAUNCH();
}

}  // namespace attn::kern
