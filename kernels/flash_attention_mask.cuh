// Masks and score modifications of the flash kernels: the variants of
// kernels/attention_variant.h (the same code the CPU reference runs on the host).
//
//   visible(i, j) = i < T && j < T && key_lo(i) <= j <= key_hi(i)   (VariantMask: the
//   intersection of every variant's interval; causal, window, documents, ...)
//
//   score modification (on the scaled score x = scale * q_i.k_j), variants/alibi.h, softcap.h:
//     x -> x - slope_h * (i - j)                    (ALiBi)
//     x -> cap * tanh(x / cap)                      (soft-capping, cap > 0)
//   The kernels work in "raw" units s = x / scale (their exp2 folds the scale in), so the
//   modified score is handed back divided by scale; nothing downstream changes.
//   Backward: d x_raw = d x_mod * (1 - tanh^2(x / cap)) (the ALiBi bias has derivative 1), which
//   `ScoreMod::apply` returns as the factor to multiply dS by.
//
// Tile ranges: key_lo / key_hi (query_lo / query_hi) are non-decreasing, so the keys a block of
// query rows [q_first, q_last] can see lie in [key_lo(q_first), key_hi(q_last)], and likewise the
// queries of a key block; tiles outside are never loaded. `all_visible` says whether a
// (rows x keys) rectangle needs no per-element mask at all. For a single row the range is exact,
// so the bf16 kernels' per-element mask is two compares.
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/flash_attention.h"

namespace attn::flash {

// The general mask of batch row b (host and device: tests check the tile ranges by brute force).
struct FlashMask : VariantMask {
  __host__ __device__ __forceinline__ FlashMask(const FlashAttentionParams& p, int b) : VariantMask(p, b, p.T) {}
  // Every variant off, all compile-time constants: what the plain kernels hold, so that none of
  // the general mask's work (e.g. a row's prefix from token counts) is compiled into them.
  __host__ __device__ __forceinline__ explicit FlashMask(int T) : VariantMask(VariantArgs{}, 0, T) {}
};
template <bool GENERAL>
__device__ __forceinline__ FlashMask flash_mask(const FlashAttentionParams& p, int b) {
  if constexpr (GENERAL) return FlashMask(p, b);
  else return FlashMask(p.T);
}

// The score modification of head h, folded into raw units once per head (see the top of this
// file): with x = scale * s,
//   s' = s + (slope / scale) * (j - i)                       (ALiBi; exact integer j - i)
//   s'' = (cap / scale) * tanh(s' * scale / cap),  dfac = 1 - tanh^2   (soft-capping)
// Forward and backward compute it the same way, so the backward's recomputed P matches the lse.
// The bf16 kernels pick one copy of their per-element loops by `ModKind` (uniform over the
// kernel; bits: ALiBi, soft-capping, both compose), so a loop carries only the modifications that
// are on.
__host__ __device__ __forceinline__ bool mod_enabled(const FlashAttentionParams& p) {
  return p.alibi || p.softcap > 0.f;
}
enum ModKind : int { kModNone = 0, kModAlibi = 1, kModSoftcap = 2, kModAlibiSoftcap = kModAlibi | kModSoftcap };
__host__ __device__ __forceinline__ int mod_kind(const FlashAttentionParams& p) {
  return (p.alibi ? kModAlibi : 0) | (p.softcap > 0.f ? kModSoftcap : 0);
}

// Calls f(std::integral_constant<int, K>{}) with K the ModKind modk: one uniform branch, then
// the per-element loop of that kind compiled for it (the bf16 kernels' one dispatch on the kind).
template <class F>
__device__ __forceinline__ void with_mod_kind(int modk, F&& f) {
  switch (modk) {
    case kModNone: f(std::integral_constant<int, kModNone>{}); break;
    case kModAlibi: f(std::integral_constant<int, kModAlibi>{}); break;
    case kModSoftcap: f(std::integral_constant<int, kModSoftcap>{}); break;
    default: f(std::integral_constant<int, kModAlibiSoftcap>{}); break;
  }
}

struct ScoreMod {
  bool active = false;
  float slope_raw = 0.f, cap_raw = 0.f, inv_cap_raw = 0.f;  // inv_cap_raw == 0: soft-capping off

  ScoreMod() = default;  // no modification

  __device__ __forceinline__ ScoreMod(const FlashAttentionParams& p, int h)
      : active(mod_enabled(p)),
        slope_raw(p.alibi ? Alibi::slope<float>(h, p.H) / p.scale : 0.f),
        cap_raw(p.softcap / p.scale),
        inv_cap_raw(p.softcap > 0.f ? p.scale / p.softcap : 0.f) {}

  // Raw score s (= q.k) of query i, key j -> modified score in raw units; *dfac = d mod / d s
  // (1 - tanh^2 with soft-capping, else 1).
  // apply_k: the bf16 kernels, the ModKind bits MODK at compile time for their loops, the fast
  // tanh (Softcap::apply_fast). It takes j - i as a float that the caller forms as a per-block
  // base plus a compile-time offset per register (one FADD instead of an integer-to-float
  // conversion per element; measured no faster on the H200, kept as the simpler form). The
  // same value as Alibi::apply (|j - i| < 2^24 is exact in a float).
  template <int MODK>
  __device__ __forceinline__ float apply_k(float s, float key_minus_query, float* dfac) const {
    float x = s;
    if constexpr ((MODK & kModAlibi) != 0) x = fmaf(slope_raw, key_minus_query, x);
    float d = 1.f;
    if constexpr ((MODK & kModSoftcap) != 0) x = Softcap::apply_fast(x, cap_raw, inv_cap_raw, &d);
    *dfac = d;
    return x;
  }
  // apply: the fp32 kernels (flash_attention_f32.cu), decided at runtime, the exact tanhf.
  __device__ __forceinline__ float apply(float s, int i, int j, float* dfac) const {
    float x = Alibi::apply(s, slope_raw, i, j);
    float d = 1.f;
    if (inv_cap_raw > 0.f) x = Softcap::apply(x, cap_raw, inv_cap_raw, &d);
    *dfac = d;
    return x;
  }
};

// Which compiled variant of a bf16 kernel serves p: the plain ones (compile-time causal or full,
// no mask state at all: the code and speed of the kernels before masks existed) unless a window,
// documents, ALiBi, soft-capping or attention dropout is on; then the general one (causal a
// runtime flag).
enum class MaskKind { kFull, kCausal, kGeneral };

inline MaskKind mask_kind(const FlashAttentionParams& p) {
  if (any_variant_active(p) || p.dropout_p > 0.f) return MaskKind::kGeneral;
  return p.causal ? MaskKind::kCausal : MaskKind::kFull;
}

}  // namespace attn::flash
