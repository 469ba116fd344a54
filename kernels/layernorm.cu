// LayerNorm over the last dimension C, eps = 1e-5 (nanoGPT / torch.nn.LayerNorm).
#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

namespace {
constexpr float kEps = 1e-5f;
constexpr int kRowsPerChunk = 128;  // rows per partial sum of the parameter gradients
}

// mean = sum_c x_c / C;  rstd = 1 / sqrt(sum_c (x_c - mean)^2 / C + eps)
// out_c = (x_c - mean) * rstd * w_c + b_c.    One warp per row; mean, rstd saved (fp32).
template <typename T>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* inp, const T* w, const T* b,
                                         int N, int C) {
  const int lane = threadIdx.x % 32;
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= N) return;
  const T* x = inp + static_cast<size_t>(row) * C;
  float s = 0.0f;
  for (int c = lane; c < C; c += 32) s += to_f(x[c]);
  const float m = warp_sum(s) / C;
  float v = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float d = to_f(x[c]) - m;
    v += d * d;
  }
  const float r = rsqrtf(warp_sum(v) / C + kEps);
  T* o = out + static_cast<size_t>(row) * C;
  for (int c = lane; c < C; c += 32) o[c] = from_f<T>((to_f(x[c]) - m) * r * to_f(w[c]) + to_f(b[c]));
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

// Input gradient, one warp per row, with norm_c = (x_c - mean) * rstd, g_c = w_c * dout_c:
//   dinp_c += (g_c - mean_c(g) - norm_c * mean_c(g * norm)) * rstd
template <typename T>
__global__ void layernorm_backward_input_kernel(T* dinp, const T* dout, const T* inp, const T* w, const float* mean,
                                                const float* rstd, int N, int C) {
  const int lane = threadIdx.x % 32;
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= N) return;
  const size_t base = static_cast<size_t>(row) * C;
  const float m = mean[row], r = rstd[row];
  float sg = 0.0f, sgn = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float g = to_f(w[c]) * to_f(dout[base + c]);
    sg += g;
    sgn += g * (to_f(inp[base + c]) - m) * r;
  }
  const float g_mean = warp_sum(sg) / C, gn_mean = warp_sum(sgn) / C;
  for (int c = lane; c < C; c += 32) {
    const float norm = (to_f(inp[base + c]) - m) * r;
    const float g = to_f(w[c]) * to_f(dout[base + c]);
    dinp[base + c] = from_f<T>(to_f(dinp[base + c]) + (g - g_mean - norm * gn_mean) * r);
  }
}

// Stage 1 of the parameter gradients: block (32 columns x 8 row lanes), blockIdx.y = chunk
// of kRowsPerChunk rows. Each thread sums its rows in order, the 8 lanes are added in
// order:  scratch[chunk][c] = sum dout*norm,  scratch[chunk][C + c] = sum dout.
template <typename T>
__global__ void layernorm_backward_params_partial_kernel(float* scratch, const T* dout, const T* inp,
                                                         const float* mean, const float* rstd, int N, int C) {
  __shared__ float sw[8][33], sb[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int chunk = blockIdx.y;
  const int row_end = min(N, (chunk + 1) * kRowsPerChunk);
  float dw = 0.0f, db = 0.0f;
  if (c < C) {
    for (int n = chunk * kRowsPerChunk + threadIdx.y; n < row_end; n += 8) {
      const size_t i = static_cast<size_t>(n) * C + c;
      const float d = to_f(dout[i]);
      dw += d * (to_f(inp[i]) - mean[n]) * rstd[n];
      db += d;
    }
  }
  sw[threadIdx.y][threadIdx.x] = dw;
  sb[threadIdx.y][threadIdx.x] = db;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float tw = 0.0f, tb = 0.0f;
    for (int k = 0; k < 8; ++k) tw += sw[k][threadIdx.x], tb += sb[k][threadIdx.x];
    scratch[static_cast<size_t>(chunk) * 2 * C + c] = tw;
    scratch[static_cast<size_t>(chunk) * 2 * C + C + c] = tb;
  }
}

// Stage 2: dweight[c] += sum_chunks scratch[chunk][c], dbias[c] += sum_chunks scratch[chunk][C + c].
__global__ void layernorm_backward_params_final_kernel(float* dweight, float* dbias, const float* scratch, int chunks,
                                                       int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float tw = 0.0f, tb = 0.0f;
  for (int k = 0; k < chunks; ++k) {
    tw += scratch[static_cast<size_t>(k) * 2 * C + c];
    tb += scratch[static_cast<size_t>(k) * 2 * C + C + c];
  }
  dweight[c] += tw;
  dbias[c] += tb;
}

size_t layernorm_backward_scratch_floats(int N, int C) {
  return static_cast<size_t>(ceil_div(N, kRowsPerChunk)) * 2 * C;
}

template <typename T>
void layernorm_forward(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias, int N, int C,
                       cudaStream_t stream) {
  const int block = 256, rows_per_block = block / 32;
  layernorm_forward_kernel<<<ceil_div(N, rows_per_block), block, 0, stream>>>(out, mean, rstd, inp, weight, bias, N,
                                                                              C);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void layernorm_backward(T* dinp, float* dweight, float* dbias, float* scratch, const T* dout, const T* inp,
                        const T* weight, const float* mean, const float* rstd, int N, int C, cudaStream_t stream) {
  const int block = 256, rows_per_block = block / 32;
  layernorm_backward_input_kernel<<<ceil_div(N, rows_per_block), block, 0, stream>>>(dinp, dout, inp, weight, mean,
                                                                                     rstd, N, C);
  CUDA_CHECK_LAUNCH();
  const int chunks = ceil_div(N, kRowsPerChunk);
  layernorm_backward_params_partial_kernel<<<dim3(ceil_div(C, 32), chunks), dim3(32, 8), 0, stream>>>(
      scratch, dout, inp, mean, rstd, N, C);
  CUDA_CHECK_LAUNCH();
  layernorm_backward_params_final_kernel<<<ceil_div(C, 256), 256, 0, stream>>>(dweight, dbias, scratch, chunks, C);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                                                              \
  template void layernorm_forward<T>(T*, float*, float*, const T*, const T*, const T*, int, int, cudaStream_t);    \
  template void layernorm_backward<T>(T*, float*, float*, float*, const T*, const T*, const T*, const float*,      \
                                      const float*, int, int, cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(bf16)

}  // namespace attn::kern
