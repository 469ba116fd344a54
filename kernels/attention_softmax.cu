// Row softmax of the attention scores for the naive (O(T^2)) attention, and its backward.
// Rows r = (b H + h) T + i of length T; column j of row r is element r T + j, which is
// also the attention-dropout index (model/dropout_sites.h). Scores, probabilities and their
// gradients are stored in the activation type T (bf16 like PyTorch's math backend under
// autocast; fp32 in the parity mode); every sum is fp32.
#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

namespace {

// The row a warp owns (one warp per row): its first element, how many columns it sees
// (len = i + 1 when causal, else T) and how many it writes (end): causal rows are in blocks of
// `causal_rows` (the naive attention's GEMM blocks), and the masked columns of the diagonal
// block, [len, end), are written as zeros for the GEMMs that read the block; columns past end
// are neither read nor written. causal_rows == 0: full attention, len = end = T.
struct ScoreRow {
  size_t base;
  int len, end;
};
__device__ __forceinline__ bool warp_score_row(int rows, int seq, int causal_rows, ScoreRow& row) {
  const int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (r >= rows) return false;
  const int i = r % seq;
  row.base = static_cast<size_t>(r) * seq;
  row.len = causal_rows > 0 ? i + 1 : seq;
  row.end = causal_rows > 0 ? min(seq, (i / causal_rows + 1) * causal_rows) : seq;
  return true;
}

// Each lane walks its row W columns at a time (W = the 16-byte pack when T % W == 0, else 1):
// lane l takes columns [l W, l W + W), then 32 W further on. Columns j >= len are never read;
// columns [len, end) are written as 0.
//   P[r, j] = exp(S[r, j] - max) / sum_{j' < len} exp(S[r, j'] - max),   0 for j >= len
//   Pdrop[r, j] = P[r, j] * (keep(key, r T + j) ? 1/(1-p) : 0)   (from the stored, rounded P)
// The running (max m, sum s) is rescaled once per W columns: m' = max(m, max_j x_j),
// s' = s exp(m - m') + sum_j exp(x_j - m').
template <typename T, int W>
__global__ void attention_softmax_forward_kernel(T* P, T* Pdrop, const T* S, int rows, int seq, int causal_rows,
                                                 float p, float scale, DeviceValue<uint64_t> key_src) {
  const uint64_t key = key_src.get();  // core/device_value.h
  ScoreRow row;
  if (!warp_score_row(rows, seq, causal_rows, row)) return;
  const int lane = threadIdx.x % 32;
  float m = -INFINITY, s = 0.0f;
  for (int j0 = lane * W; j0 < row.len; j0 += 32 * W) {
    float x[W];
    load_floats<T, W>(S + row.base + j0, x);
    float vmax = -INFINITY;
#pragma unroll
    for (int j = 0; j < W; ++j)
      if (j0 + j < row.len) vmax = fmaxf(vmax, x[j]);
    const float m_new = fmaxf(m, vmax);
    float add = 0.0f;
#pragma unroll
    for (int j = 0; j < W; ++j)
      if (j0 + j < row.len) add += expf(x[j] - m_new);
    s = (m == -INFINITY ? 0.0f : s * expf(m - m_new)) + add;
    m = m_new;
  }
  const float M = warp_max(m);
  const float inv = 1.0f / warp_sum(m == -INFINITY ? 0.0f : s * expf(m - M));
  for (int j0 = lane * W; j0 < row.end; j0 += 32 * W) {
    float x[W], pj[W];
    if (j0 < row.len) load_floats<T, W>(S + row.base + j0, x);
#pragma unroll
    for (int j = 0; j < W; ++j) pj[j] = to_f(from_f<T>(j0 + j < row.len ? expf(x[j] - M) * inv : 0.0f));
    store_floats<T, W>(P + row.base + j0, pj);
    if (Pdrop != nullptr) {
#pragma unroll
      for (int j = 0; j < W; ++j) pj[j] *= dropout_mult(key, row.base + j0 + j, p, scale);
      store_floats<T, W>(Pdrop + row.base + j0, pj);
    }
  }
}

// One warp per row:  dP[j] = dPdrop[j] * mask_j (dropout backward, identity when p == 0)
//   rowsum = sum_{j < len} P[j] dP[j];     dS[j] = P[j] (dP[j] - rowsum),  0 for j >= len
template <typename T, int W>
__global__ void attention_softmax_backward_kernel(T* dS, const T* P, const T* dPdrop, int rows, int seq,
                                                  int causal_rows, float p, float scale, DeviceValue<uint64_t> key_src) {
  const uint64_t key = key_src.get();  // core/device_value.h
  ScoreRow row;
  if (!warp_score_row(rows, seq, causal_rows, row)) return;
  const int lane = threadIdx.x % 32;
  // dP and P of W columns from j0 (dropout applied); columns past len are not used
  auto load = [&](int j0, float (&pv)[W], float (&dp)[W]) {
    load_floats<T, W>(P + row.base + j0, pv);
    load_floats<T, W>(dPdrop + row.base + j0, dp);
    if (p > 0.0f)
#pragma unroll
      for (int j = 0; j < W; ++j) dp[j] *= dropout_mult(key, row.base + j0 + j, p, scale);
  };
  float s = 0.0f;
  for (int j0 = lane * W; j0 < row.len; j0 += 32 * W) {
    float pv[W], dp[W];
    load(j0, pv, dp);
#pragma unroll
    for (int j = 0; j < W; ++j)
      if (j0 + j < row.len) s += pv[j] * dp[j];
  }
  const float rowsum = warp_sum(s);
  for (int j0 = lane * W; j0 < row.end; j0 += 32 * W) {
    float pv[W], dp[W], ds[W];
    if (j0 < row.len) load(j0, pv, dp);
#pragma unroll
    for (int j = 0; j < W; ++j) ds[j] = j0 + j < row.len ? pv[j] * (dp[j] - rowsum) : 0.0f;
    store_floats<T, W>(dS + row.base + j0, ds);
  }
}

constexpr int kSoftmaxBlock = 256;  // 8 rows a block

}  // namespace

// What both passes launch with: one warp a row, kSoftmaxBlock threads a block, and the dropout
// rescale 1 / (1 - p) (1 without dropout).
struct SoftmaxLaunch {
  int rows;
  unsigned grid;
  float scale;
  SoftmaxLaunch(int BH, int seq, const DropoutState& drop)
      : rows(BH * seq),
        grid((unsigned)ceil_div(BH * seq, kSoftmaxBlock / 32)),
        scale(drop.p > 0.0f ? 1.0f / (1.0f - drop.p) : 1.0f) {}
};

template <typename T>
void attention_softmax_forward(T* P, T* Pdrop, const T* S, int BH, int seq, int causal_rows, DropoutState drop,
                               cudaStream_t stream) {
  const SoftmaxLaunch L(BH, seq, drop);
  if (L.rows == 0) return;
  constexpr int W = Pack128<T>::size;  // rows start on 16 bytes when seq % W == 0
  const auto kernel = seq % W == 0 ? attention_softmax_forward_kernel<T, W> : attention_softmax_forward_kernel<T, 1>;
  kernel<<<L.grid, kSoftmaxBlock, 0, stream>>>(P, Pdrop, S, L.rows, seq, causal_rows, drop.p, L.scale, drop.device_key());
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void attention_softmax_backward(T* dS, const T* P, const T* dPdrop, int BH, int seq, int causal_rows, DropoutState drop,
                                cudaStream_t stream) {
  const SoftmaxLaunch L(BH, seq, drop);
  if (L.rows == 0) return;
  constexpr int W = Pack128<T>::size;
  const auto kernel = seq % W == 0 ? attention_softmax_backward_kernel<T, W> : attention_softmax_backward_kernel<T, 1>;
  kernel<<<L.grid, kSoftmaxBlock, 0, stream>>>(dS, P, dPdrop, L.rows, seq, causal_rows, drop.p, L.scale, drop.device_key());
  CUDA_CHECK_LAUNCH();
}

template void attention_softmax_forward<float>(float*, float*, const float*, int, int, int, DropoutState,
                                               cudaStream_t);
template void attention_softmax_forward<bf16>(bf16*, bf16*, const bf16*, int, int, int, DropoutState, cudaStream_t);
template void attention_softmax_backward<float>(float*, const float*, const float*, int, int, int, DropoutState,
                                                cudaStream_t);
template void attention_softmax_backward<bf16>(bf16*, const bf16*, const bf16*, int, int, int, DropoutState,
                                               cudaStream_t);

}  // namespace attn::kern
