// Masks and score modifications of the flash kernels (the math of attention/attention.h):
//
//   visible(i, j) = i < T && j < T && (!causal || j <= i) && (window == 0 || i - j < window)
//                   && (doc == null || doc[i] == doc[j])
//   (non-causal with a window: only the left edge is bounded, exactly like the CPU reference.)
//
//   score modification (on the scaled score x = scale * q_i.k_j):
//     x -> x - slope_h * (i - j)                    (ALiBi, slope of attention.cpp's alibi_slope)
//     x -> cap * tanh(x / cap)                      (soft-capping, cap > 0)
//   The kernels work in "raw" units s = x / scale (their exp2 folds the scale in), so the
//   modified score is handed back divided by scale; nothing downstream changes.
//   Backward: d x_raw = d x_mod * (1 - tanh^2(x / cap)) (the ALiBi bias has derivative 1), which
//   `ScoreMod::apply` returns as the factor to multiply dS by.
//
// Tile ranges: doc ids are non-decreasing along a row, so the keys a block of query rows
// [q_first, q_last] can see lie in [key_lo, key_hi] (window, causal, documents of the first and
// last row), and likewise the queries of a key block; tiles outside are never loaded.
// `all_visible` says whether a (rows x keys) rectangle needs no per-element mask at all.
// For a single row i (q_first = q_last = i < T) the range is exact: i sees precisely the keys
// [key_lo(i), key_hi(i)], and key j precisely the queries [query_lo(j), query_hi(j)] (window and
// causal bound an interval, a document is a contiguous run); the bf16 kernels' per-element mask
// is these two compares.
#pragma once
#include <cstdint>

#include "kernels/flash_attention.h"

namespace attn::flash {

// Host and device: the host side lets tests check the tile ranges by brute force.
struct FlashMask {
  int T;
  bool causal;
  int window;         // 0 = off
  const int32_t* doc;  // this batch row's doc ids (T), or null

  __host__ __device__ __forceinline__ FlashMask(const FlashAttentionParams& p, int b)
      : T(p.T), causal(p.causal), window(p.window), doc(p.doc_ids ? p.doc_ids + (int64_t)b * p.T : nullptr) {}

  __host__ __device__ __forceinline__ int doc_of(int i) const {
#ifdef __CUDA_ARCH__
    return __ldg(doc + i);
#else
    return doc[i];
#endif
  }

  // First index whose doc id is >= d (doc non-decreasing), in [0, T].
  __host__ __device__ int doc_lower_bound(int d) const {
    int lo = 0, hi = T;
    while (lo < hi) {
      const int mid = (lo + hi) >> 1;
      if (doc_of(mid) < d) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  // Keys visible from some query row of [q_first, q_last] (q_last < T) lie in [key_lo, key_hi].
  __host__ __device__ int key_lo(int q_first) const {
    int lo = window > 0 ? max(0, q_first - window + 1) : 0;
    if (doc) lo = max(lo, doc_lower_bound(doc_of(q_first)));
    return lo;
  }
  __host__ __device__ int key_hi(int q_last) const {
    int hi = causal ? q_last : T - 1;
    if (doc) hi = min(hi, doc_lower_bound(doc_of(q_last) + 1) - 1);
    return hi;
  }
  // Queries that see some key of [k_first, k_last] (k_last < T) lie in [query_lo, query_hi].
  __host__ __device__ int query_lo(int k_first) const {
    int lo = causal ? k_first : 0;
    if (doc) lo = max(lo, doc_lower_bound(doc_of(k_first)));
    return lo;
  }
  __host__ __device__ int query_hi(int k_last) const {
    int hi = window > 0 ? min(T - 1, k_last + window - 1) : T - 1;
    if (doc) hi = min(hi, doc_lower_bound(doc_of(k_last) + 1) - 1);
    return hi;
  }

  // Every (i, j) with i in [q_first, q_last], j in [k_first, k_last] visible, ignoring T
  // (callers test i, j < T separately). Uniform over the rectangle.
  __host__ __device__ __forceinline__ bool all_visible(int q_first, int q_last, int k_first, int k_last) const {
    if (causal && k_last > q_first) return false;
    if (window > 0 && q_last - k_first >= window) return false;
    if (doc) {
      const int a = min(min(q_first, k_first), T - 1), z = min(max(q_last, k_last), T - 1);
      if (doc_of(a) != doc_of(z)) return false;
    }
    return true;
  }

  // Per element (i, j < T assumed), for tiles that are not all visible.
  __host__ __device__ __forceinline__ bool visible(int i, int j, int doc_i) const {
    if (causal && j > i) return false;
    if (window > 0 && i - j >= window) return false;
    if (doc && doc_of(j) != doc_i) return false;
    return true;
  }
  __host__ __device__ __forceinline__ int row_doc(int i) const { return doc && i < T ? doc_of(i) : 0; }
};

// ALiBi slope of head h of H, the formula of attention.cpp's alibi_slope (in float): P the
// largest power of two <= H; h < P: 2^(-8(h+1)/P), else 2^(-8(2(h-P)+1)/(2P)).
__device__ __forceinline__ float alibi_slope_device(int h, int H) {
  int p = 1;
  while (p * 2 <= H) p *= 2;
  if (h < p) return exp2f(-8.0f * (float)(h + 1) / (float)p);
  return exp2f(-8.0f * (float)(2 * (h - p) + 1) / (2.0f * (float)p));
}

// The score modification of head h, folded into raw units once per head (see the top of this
// file): with x = scale * s,
//   s' = s + (slope / scale) * (j - i)                       (ALiBi; exact integer j - i)
//   s'' = (cap / scale) * tanh(s' * scale / cap),  dfac = 1 - tanh^2   (soft-capping)
// Forward and backward compute it the same way, so the backward's recomputed P matches the lse.
// The bf16 kernels pick one copy of their per-element loops by `ModKind` (uniform over the
// kernel), so a loop carries only the modification that is on: none, ALiBi alone (slope_raw
// != 0), or soft-capping (with ALiBi or with slope_raw = 0).
__host__ __device__ __forceinline__ bool mod_enabled(const FlashAttentionParams& p) {
  return p.alibi || p.softcap > 0.f;
}
enum ModKind : int { kModNone = 0, kModAlibi = 1, kModSoftcap = 2 };
__host__ __device__ __forceinline__ int mod_kind(const FlashAttentionParams& p) {
  return p.softcap > 0.f ? kModSoftcap : (p.alibi ? kModAlibi : kModNone);
}

struct ScoreMod {
  bool active = false;
  float slope_raw = 0.f, cap_raw = 0.f, inv_cap_raw = 0.f;  // inv_cap_raw == 0: soft-capping off

  ScoreMod() = default;  // no modification

  __device__ __forceinline__ ScoreMod(const FlashAttentionParams& p, int h)
      : active(mod_enabled(p)),
        slope_raw(p.alibi ? alibi_slope_device(h, p.H) / p.scale : 0.f),
        cap_raw(p.softcap / p.scale),
        inv_cap_raw(p.softcap > 0.f ? p.scale / p.softcap : 0.f) {}

  // Raw score s (= q.k) of query i, key j -> modified score in raw units; *dfac = d mod / d s
  // (1 - tanh^2 with soft-capping, else 1). CAP: soft-capping on (compile time, for the loops of
  // the bf16 kernels); `apply` decides at runtime (fp32 parity kernels).
  template <bool CAP>
  __device__ __forceinline__ float apply_k(float s, int i, int j, float* dfac) const {
    float x = fmaf(slope_raw, (float)(j - i), s);
    float d = 1.f;
    if constexpr (CAP) {
      const float th = tanhf(x * inv_cap_raw);
      x = cap_raw * th;
      d = fmaf(-th, th, 1.f);
    }
    *dfac = d;
    return x;
  }
  __device__ __forceinline__ float apply(float s, int i, int j, float* dfac) const {
    return inv_cap_raw > 0.f ? apply_k<true>(s, i, j, dfac) : apply_k<false>(s, i, j, dfac);
  }
};

// Which compiled variant of a bf16 kernel serves p: the plain ones (compile-time causal or full,
// no mask state at all: the code and speed of the kernels before masks existed) unless a window,
// documents, ALiBi or soft-capping is on; then the general one (causal a runtime flag).
enum class MaskKind { kFull, kCausal, kGeneral };

inline MaskKind mask_kind(const FlashAttentionParams& p) {
  if (p.window > 0 || p.doc_ids != nullptr || mod_enabled(p)) return MaskKind::kGeneral;
  return p.causal ? MaskKind::kCausal : MaskKind::kFull;
}

}  // namespace attn::flash
