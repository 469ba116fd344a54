// Layout changes for the naive attention: the fused qkv buffer (B, T, (H + 2 Hkv) D) to
// per-head matrices (B, H, T, D) that strided batched GEMMs can walk, and back.
#include <type_traits>

#include "kernels/common.cuh"
#include "kernels/kernels.h"

namespace attn::kern {

// Each thread moves W consecutive d of one (b, h, t): W = the 16-byte pack when D % W == 0
// (every row offset is then a multiple of W), else 1. Indices below are in units of W.
template <typename T, int W>
__device__ __forceinline__ void copy_elems(T* dst, const T* src) {
  if constexpr (W == Pack128<T>::size) {
    store128(dst, load128(src));
  } else {
#pragma unroll
    for (int j = 0; j < W; ++j) dst[j] = src[j];
  }
}

// The (b, h, t, d) of the W-pack i of a (B, H, T, D) tensor (d a multiple of W).
struct HeadIndex {
  size_t b;
  int h, t, d;
};
template <int W>
__device__ __forceinline__ HeadIndex head_index(size_t i, int seq, int H, int D) {
  const int packs = D / W;
  HeadIndex x;
  x.d = static_cast<int>(i % packs) * W;
  const size_t bht = i / packs;
  x.t = static_cast<int>(bht % seq);
  x.h = static_cast<int>((bht / seq) % H);
  x.b = bht / (static_cast<size_t>(seq) * H);
  return x;
}

// For every (b, h, t, d), g = h / (H / Hkv) (the kv head of query head h):
//   q[b,h,t,d] = qkv[b,t, h D + d]
//   k[b,h,t,d] = qkv[b,t, (H + g) D + d]          (repeated over the group: repeat_kv)
//   v[b,h,t,d] = qkv[b,t, (H + Hkv + g) D + d]
template <typename T, int W>
__global__ void attention_permute_kernel(T* q, T* k, T* v, const T* qkv, size_t packs, int seq, int H, int Hkv,
                                         int D) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= packs) return;
  const HeadIndex x = head_index<W>(i, seq, H, D);
  const int g = x.h / (H / Hkv);
  const T* row = qkv + (x.b * seq + x.t) * static_cast<size_t>(H + 2 * Hkv) * D + x.d;
  copy_elems<T, W>(q + i * W, row + static_cast<size_t>(x.h) * D);
  copy_elems<T, W>(k + i * W, row + static_cast<size_t>(H + g) * D);
  copy_elems<T, W>(v + i * W, row + static_cast<size_t>(H + Hkv + g) * D);
}

// y[b,t, h D + d] = yh[b,h,t,d]  (kToHeads = false);  xh[b,h,t,d] = x[b,t, h D + d]  (true);
// i is the W-pack of the (B, H, T, D) side.
template <typename T, int W, bool kToHeads>
__global__ void attention_heads_kernel(T* out, const T* in, size_t packs, int seq, int H, int D) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= packs) return;
  const HeadIndex x = head_index<W>(i, seq, H, D);
  const size_t flat = (x.b * seq + x.t) * static_cast<size_t>(H) * D + static_cast<size_t>(x.h) * D + x.d;
  if constexpr (kToHeads)
    copy_elems<T, W>(out + i * W, in + flat);
  else
    copy_elems<T, W>(out + flat, in + i * W);
}

// dqkv[b,t, col]:  col in q part: dq[b,h,t,d];  in the k (v) part of kv head g:
// sum over the group's query heads h = g G .. g G + G - 1 (in order) of dk (dv)[b,h,t,d].
// Here i is the W-pack of dqkv (B, T, H + 2 Hkv, D).
template <typename T, int W>
__global__ void attention_permute_backward_kernel(T* dqkv, const T* dq, const T* dk, const T* dv, size_t packs,
                                                  int seq, int H, int Hkv, int D) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= packs) return;
  const int packs_per_head = D / W, heads = H + 2 * Hkv;
  const int d = static_cast<int>(i % packs_per_head) * W;
  const int head = static_cast<int>((i / packs_per_head) % heads);  // of the fused row
  const size_t bt = i / (static_cast<size_t>(packs_per_head) * heads);
  const size_t b = bt / seq, t = bt % seq;
  const int G = H / Hkv;
  auto at = [&](int h) { return ((b * H + h) * seq + t) * static_cast<size_t>(D) + d; };
  if (head < H) {
    copy_elems<T, W>(dqkv + i * W, dq + at(head));
    return;
  }
  const T* src = head < H + Hkv ? dk : dv;
  const int g = head < H + Hkv ? head - H : head - H - Hkv;
  float sum[W] = {};
  for (int h = g * G; h < (g + 1) * G; ++h) {
    float part[W];
    load_floats<T, W>(src + at(h), part);
#pragma unroll
    for (int j = 0; j < W; ++j) sum[j] += part[j];
  }
  store_floats<T, W>(dqkv + i * W, sum);
}

// Launches kernel<W> over n elements: W = the 16-byte pack when D allows it, else 1.
template <typename T, typename Launch>
void launch_packed(size_t n, int D, Launch&& launch) {
  if (n == 0) return;
  constexpr int kPack = Pack128<T>::size;
  if (D % kPack == 0)
    launch(std::integral_constant<int, kPack>{}, n / kPack, ceil_div<size_t>(n / kPack, 256));
  else
    launch(std::integral_constant<int, 1>{}, n, ceil_div<size_t>(n, 256));
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void attention_permute(T* q, T* k, T* v, const T* qkv, int B, int seq, int H, int Hkv, int D, cudaStream_t stream) {
  launch_packed<T>(static_cast<size_t>(B) * H * seq * D, D, [&](auto w, size_t packs, size_t grid) {
    attention_permute_kernel<T, w()><<<grid, 256, 0, stream>>>(q, k, v, qkv, packs, seq, H, Hkv, D);
  });
}

template <typename T>
void attention_unpermute(T* y, const T* yh, int B, int seq, int H, int D, cudaStream_t stream) {
  launch_packed<T>(static_cast<size_t>(B) * H * seq * D, D, [&](auto w, size_t packs, size_t grid) {
    attention_heads_kernel<T, w(), false><<<grid, 256, 0, stream>>>(y, yh, packs, seq, H, D);
  });
}

template <typename T>
void attention_split_heads(T* xh, const T* x, int B, int seq, int H, int D, cudaStream_t stream) {
  launch_packed<T>(static_cast<size_t>(B) * H * seq * D, D, [&](auto w, size_t packs, size_t grid) {
    attention_heads_kernel<T, w(), true><<<grid, 256, 0, stream>>>(xh, x, packs, seq, H, D);
  });
}

template <typename T>
void attention_permute_backward(T* dqkv, const T* dq, const T* dk, const T* dv, int B, int seq, int H, int Hkv, int D,
                                cudaStream_t stream) {
  launch_packed<T>(static_cast<size_t>(B) * seq * (H + 2 * Hkv) * D, D, [&](auto w, size_t packs, size_t grid) {
    attention_permute_backward_kernel<T, w()><<<grid, 256, 0, stream>>>(dqkv, dq, dk, dv, packs, seq, H, Hkv, D);
  });
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
