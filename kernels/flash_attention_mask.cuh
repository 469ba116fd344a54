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
constexpr int kModRuntime = -1;  // a kind known only at run time (ScoreMod::Affine::exp_*)
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

  // The bf16 kernels' form, the ModKind bits MODK at compile time for their loops: a block's
  // loops need exp2(raw sl2 - m) (and, for the backward, d raw / d s), and take the modified raw
  // score as raw = a v + b with a, b uniform over a thread's elements of one block, so that per
  // element only v is computed. A thread's element e has j - i = kq0 + off(e), kq0 the thread's
  // j - i for its element 0 (per block) and off(e) a compile-time constant per register (an
  // FFMA immediate). With `Affine f = affine<MODK>(kq0)` and v = value<MODK>(s, off, f):
  //   ALiBi:         v = s + slope off,                                 a = 1,   b = slope kq0
  //   soft-capping:  v = tanh(s / cap),                                 a = cap, b = 0
  //   both:          v = tanh((s + slope off) / cap + slope kq0 / cap), a = cap, b = 0
  // (cap, slope in raw units) and d raw / d s = deriv<MODK>(v) = 1 - v^2 with soft-capping, else 1.
  // The tanh is tanh.approx (Softcap::tanh_fast). Forward and backward use these same functions,
  // so the backward's recomputed P matches the forward's lse.
  struct Affine {
    float a, b, pre;  // raw = a v + b; pre: the tanh argument's per-block shift (both on)
    // P's exponent as one FFMA per element: raw sl2 - l = v exp_scale(sl2) + exp_shift(sl2, l).
    // MODK known at compile time drops the factor that is 1 (no modification) and the term that
    // is 0 (b != 0 only for ALiBi without soft-capping); kModRuntime keeps both (the forward,
    // whose kind is a runtime value).
    template <int MODK>
    __device__ __forceinline__ float exp_scale(float sl2) const {
      return MODK == kModNone ? sl2 : a * sl2;
    }
    template <int MODK>
    __device__ __forceinline__ float exp_shift(float sl2, float l) const {
      constexpr bool kShifted = MODK == kModRuntime || ((MODK & kModAlibi) != 0 && (MODK & kModSoftcap) == 0);
      return kShifted ? fmaf(b, sl2, -l) : -l;
    }
  };
  template <int MODK>
  __device__ __forceinline__ Affine affine(float kq0) const {
    const float shift = (MODK & kModAlibi) != 0 ? slope_raw * kq0 : 0.f;
    if constexpr ((MODK & kModSoftcap) != 0) return {cap_raw, 0.f, shift * inv_cap_raw};
    return {1.f, shift, 0.f};
  }
  template <int MODK>
  __device__ __forceinline__ float value(float s, float off, const Affine& f) const {
    float x = s;
    if constexpr ((MODK & kModAlibi) != 0) x = fmaf(slope_raw, off, x);
    if constexpr ((MODK & kModSoftcap) != 0) x = Softcap::tanh_fast(fmaf(x, inv_cap_raw, f.pre));
    return x;
  }
  template <int MODK>
  __device__ __forceinline__ static float deriv(float v) {
    if constexpr ((MODK & kModSoftcap) != 0) return fmaf(-v, v, 1.f);
    return 1.f;
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
