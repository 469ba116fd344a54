// Fused classifier: softmax + cross-entropy + its gradient, written in place over the
// logits (no fp32 copy of all logits), one loss per position.
#include <algorithm>
#include <type_traits>

#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/fp8_cast.cuh"
#include "kernels/kernels.h"
#include "kernels/tiles/hardware.cuh"

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

// The e5m2 copy of one gradient pack (fp8 LM head: kernels.h's Fp8Dlogits): bytes of g * scale.
template <typename T>
__device__ __forceinline__ void store_e5m2_pack(uint8_t* q, const Pack128<T>& g, float scale) {
  static_assert(Pack128<T>::size == 8, "8 bytes per pack (bf16)");
  float f[8], unused_amax = 0.0f;
#pragma unroll
  for (int j = 0; j < 8; ++j) f[j] = g.get(j);
  *reinterpret_cast<uint2*>(q) = cast8<Fp8Format::E5M2>(f, scale, unused_amax);
}

// The e5m2 scale of the gradient rows: |dlogits| <= |dloss|, mapped onto e5m2's largest value.
__device__ __forceinline__ float dlogits_e5m2_scale(float dloss) {
  return dloss != 0.0f ? kE5M2Max / fabsf(dloss) : 1.0f;
}

// An ignored position (target -1): loss 0, and a zero gradient row when write_grad (q8: its
// e5m2 copy, zero bytes too).
template <typename T>
__device__ __forceinline__ void ignored_row(T* row, uint8_t* q8, int packs, float* loss, bool write_grad) {
  constexpr int W = Pack128<T>::size;
  if (write_grad) {
    Pack128<T> zero;
#pragma unroll
    for (int j = 0; j < W; ++j) zero.set(j, 0.0f);
    for (int pk = threadIdx.x; pk < packs; pk += blockDim.x) {
      store128(row + pk * W, zero);
      if constexpr (std::is_same_v<T, bf16>)
        if (q8) *reinterpret_cast<uint2*>(q8 + pk * W) = make_uint2(0u, 0u);
    }
  }
  if (threadIdx.x == 0) *loss = 0.0f;
}

// exp(x - c) as 2^(x log2e - c log2e): one FFMA and one ex2.approx (relative error ~2^-22, far
// below the losses' and bf16's rounding) where expf is a longer sequence; the packed kernel runs
// two per logit, and its instruction count is what keeps it from overlapping with its memory
// traffic. lc = c * log2e.
__device__ __forceinline__ float exp_shifted(float x, float lc) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(fmaf(x, 1.4426950408889634f, -lc)));
  return y;
}

// Adds the pack of columns col0.. (those < V) to a running (max m, sum s of exp(x - m)),
// rescaling once per pack, not per element:
//   m' = max(m, max_j x_j),  s' = s exp(m - m') + sum_j exp(x_j - m').
// kWhole: every column of the pack is < V (all packs but the last of the vocabulary), so no
// per-element bound check.
template <bool kWhole, typename T>
__device__ __forceinline__ void online_add_pack(float& m, float& s, const Pack128<T>& x, int col0, int V) {
  constexpr int W = Pack128<T>::size;
  float xs[W];
  float pack_max = -INFINITY;
#pragma unroll
  for (int j = 0; j < W; ++j) {
    xs[j] = kWhole || col0 + j < V ? x.get(j) : -INFINITY;
    pack_max = fmaxf(pack_max, xs[j]);
  }
  if (pack_max == -INFINITY) return;  // a pack of padding only
  const float m_new = fmaxf(m, pack_max), lc = m_new * 1.4426950408889634f;
  float add = 0.0f;
#pragma unroll
  for (int j = 0; j < W; ++j) add += exp_shifted(xs[j], lc);  // exp(-inf) = 0
  s = (m == -INFINITY ? 0.0f : s * exp_shifted(m, lc)) + add;
  m = m_new;
}
template <typename T>
__device__ __forceinline__ void online_add_pack(float& m, float& s, const Pack128<T>& x, int col0, int V) {
  if (col0 + Pack128<T>::size <= V)
    online_add_pack<true>(m, s, x, col0, V);
  else
    online_add_pack<false>(m, s, x, col0, V);
}

// The gradient of the pack of columns col0..: (exp(x - lse) - [col == t]) * dloss, 0 for col >= V.
// llse = lse * log2e. Packs without the target and without padding (nearly all) take the short loop.
template <typename T>
__device__ __forceinline__ Pack128<T> gradient_pack(const Pack128<T>& x, int col0, int V, int target, float llse,
                                                    float dloss) {
  constexpr int W = Pack128<T>::size;
  Pack128<T> g;
  if (col0 + W <= V && static_cast<unsigned>(target - col0) >= static_cast<unsigned>(W)) {
#pragma unroll
    for (int j = 0; j < W; ++j) g.set(j, exp_shifted(x.get(j), llse) * dloss);
    return g;
  }
#pragma unroll
  for (int j = 0; j < W; ++j) {
    const int col = col0 + j;
    g.set(j, col < V ? (exp_shifted(x.get(j), llse) - (col == target ? 1.0f : 0.0f)) * dloss : 0.0f);
  }
  return g;
}

// The same math, for Vp % (16 / sizeof(T)) == 0 (GPT-2: Vp = 50304): every element moves in
// 16-byte packs. Why: the scalar kernel above moves 2 bytes per load and pays a branch + expf
// per element in the online softmax; this one is bound by memory bandwidth.
//   kRowInSmem = false: the row is read twice (max/sum, then the gradient) and written once.
//   kRowInSmem = true: the row is copied into shared memory as it is read (two blocks of 100 KB
//     per SM) and the gradient pass reads it from there. Why: at GPT-2's size (16384 rows of
//     100 KB in bf16) the rows in flight (up to 4 blocks per SM) exceed L2, so the second read
//     came from DRAM again: three passes of row traffic (1.41-1.47 ms against llm.c's 0.99).
//     Now one read of DRAM and one write. The same per-thread pack order and reductions: the
//     same bits as kRowInSmem = false. H200, GPT-2 124M step (2026-12-04, with exp_shifted):
//     572.6k / 571.7k tokens/s against 570.1k / 569.9k for kRowInSmem = false; the op itself went
//     from 1.79 ms (expf, per-element bound checks) to under 1.0 ms (llm.c: 0.99).
constexpr int kClassifierThreads = 512;
constexpr size_t kSmemRowMaxBytes = 110 * 1024;  // two such blocks fit an SM's 228 KB (sm_90)
constexpr int kSmemRowInFlight = 4;              // 16-byte loads each thread issues before using one

template <typename T, bool kRowInSmem>
__global__ void __launch_bounds__(kClassifierThreads, kRowInSmem ? 2 : 1)
    classifier_packed_kernel(T* logits, float* losses, const int32_t* targets, int V, int Vp,
                             DeviceValue<float> dloss_src, bool write_grad, Fp8Dlogits fp8) {
  extern __shared__ __align__(16) unsigned char row_smem[];  // kRowInSmem: Vp * sizeof(T) bytes
  T* cached = reinterpret_cast<T*>(row_smem);
  const float dloss = dloss_src.get();  // core/device_value.h
  constexpr int W = Pack128<T>::size;
  const int n = blockIdx.x;
  T* row = logits + static_cast<size_t>(n) * Vp;
  uint8_t* q8 = write_grad && fp8.q ? fp8.q + static_cast<size_t>(n) * Vp : nullptr;  // block-uniform
  const float q8_scale = dlogits_e5m2_scale(dloss);
  if (q8 && n == 0 && threadIdx.x == 0) *fp8.scale_inv = 1.0f / q8_scale;
  const int target = targets[n];
  const int packs = Vp / W;
  if (target < 0) return ignored_row(row, q8, packs, losses + n, write_grad);  // block-uniform
  float m = -INFINITY, s = 0.0f;
  if constexpr (kRowInSmem) {
    for (int first = threadIdx.x; first < packs; first += kSmemRowInFlight * blockDim.x) {
      Pack128<T> x[kSmemRowInFlight];
#pragma unroll
      for (int k = 0; k < kSmemRowInFlight; ++k) {
        const int pk = first + k * blockDim.x;
        if (pk < packs) x[k] = load128cs(row + pk * W);  // read once from DRAM
      }
#pragma unroll
      for (int k = 0; k < kSmemRowInFlight; ++k) {
        const int pk = first + k * blockDim.x;
        if (pk >= packs) break;
        store128(cached + pk * W, x[k]);
        online_add_pack(m, s, x[k], pk * W, V);
      }
    }
  } else {
    for (int pk = threadIdx.x; pk < packs; pk += blockDim.x) online_add_pack(m, s, load128(row + pk * W), pk * W, V);
  }
  const float lse = row_lse_and_loss(m, s, row, target, losses + n);  // (its barriers publish `cached`)
  if (!write_grad) return;
  const float llse = lse * 1.4426950408889634f;
  for (int pk = threadIdx.x; pk < packs; pk += blockDim.x) {
    const Pack128<T> x = kRowInSmem ? load128(cached + pk * W) : load128cs(row + pk * W);
    const Pack128<T> g = gradient_pack(x, pk * W, V, target, llse, dloss);
    store128(row + pk * W, g);
    if constexpr (std::is_same_v<T, bf16>)
      if (q8) store_e5m2_pack(q8 + pk * W, g, q8_scale);
  }
}

// The longest row (bytes) the shared-memory kernel takes: kSmemRowMaxBytes, or less where the
// device's opt-in limit minus the kernel's static shared memory (the block reductions' scratch)
// is smaller. Shared memory beyond 48 KB must be asked for, once per device and kernel (before
// any graph capture: the first training step runs uncaptured).
template <typename T>
size_t row_in_smem_limit() {
  static const size_t limit = [] {
    cudaFuncAttributes fa{};
    CUDA_CHECK(cudaFuncGetAttributes(&fa, classifier_packed_kernel<T, true>));
    const size_t optin = static_cast<size_t>(tiles::max_smem_per_block());
    return std::min(kSmemRowMaxBytes, optin > fa.sharedSizeBytes ? optin - fa.sharedSizeBytes : 0);
  }();
  if (limit > 0) tiles::set_smem_limit_once<classifier_packed_kernel<T, true>>(static_cast<int>(limit), true);
  return limit;
}

template <typename T>
void classifier_forward_backward(T* logits, float* losses, const int32_t* targets, int N, int V, int Vp,
                                 DeviceValue<float> dloss, bool write_grad, cudaStream_t stream, Fp8Dlogits fp8) {
  if (N == 0) return;
  constexpr int W = Pack128<T>::size;
  ATTN_CHECK(!fp8.q || (std::is_same_v<T, bf16> && Vp % W == 0 && fp8.scale_inv),
             "classifier: e5m2 dlogits need bf16 logits, Vp a multiple of {} (Vp {}) and a scale_inv", W, Vp);
  const size_t row_bytes = static_cast<size_t>(Vp) * sizeof(T);
  if (Vp % W == 0 && row_bytes <= row_in_smem_limit<T>()) {  // GPT-2 in bf16: the row read once
    classifier_packed_kernel<T, true>
        <<<N, kClassifierThreads, row_bytes, stream>>>(logits, losses, targets, V, Vp, dloss, write_grad, fp8);
  } else if (Vp % W == 0) {  // rows start on 16 bytes: the vectorized kernel
    classifier_packed_kernel<T, false>
        <<<N, kClassifierThreads, 0, stream>>>(logits, losses, targets, V, Vp, dloss, write_grad, fp8);
  } else {
    classifier_kernel<<<N, 512, 0, stream>>>(logits, losses, targets, V, Vp, dloss, write_grad);
  }
  CUDA_CHECK_LAUNCH();
}

template void classifier_forward_backward<float>(float*, float*, const int32_t*, int, int, int, DeviceValue<float>, bool,
                                                 cudaStream_t, Fp8Dlogits);
template void classifier_forward_backward<bf16>(bf16*, float*, const int32_t*, int, int, int, DeviceValue<float>, bool,
                                                cudaStream_t, Fp8Dlogits);

}  // namespace attn::kern
