// Logit soft-capping (Gemma 2): s -> cap tanh(s / cap) on the (ALiBi-biased) scaled score,
// cap > 0 (`attention.softcap`, 0 = off). Backward: d s_raw = d s_capped (1 - tanh^2(s / cap)).
#pragma once
#include <cmath>

#include "kernels/variants/variant_base.h"

namespace attn {

struct Softcap : NoMask {
  struct Options {
    float softcap = 0.0f;
  };
  struct Args {
    float softcap = 0.0f;
  };
  static constexpr const char* kKey = "attention.softcap";
  static constexpr unsigned kNeeds = kNeedsScoreMod;
  template <class O> static bool on(const O& o) { return o.softcap != 0.0f; }
  template <class O> static std::string value(const O& o) { return std::to_string(o.softcap); }
  template <class O> static std::string invalid(const O& o) {
    return o.softcap >= 0.0f && std::isfinite(o.softcap) ? "" : "must be >= 0 (0 = off)";
  }
  template <class O> static void set_args(const O& o, Args& a) { a.softcap = o.softcap; }
  ATTN_HD static bool active(const Args& a) { return a.softcap > 0.f; }
  ATTN_HD Softcap(const Args&, int, int) {}

  // s -> cap tanh(s inv_cap) (inv_cap = 1 / cap; both may be in the kernels' raw units);
  // *dfac = d/ds = 1 - tanh^2.
  ATTN_HD static float apply(float s, float cap, float inv_cap, float* dfac) {
    const float th = tanhf(s * inv_cap);
    *dfac = fmaf(-th, th, 1.f);
    return cap * th;
  }
  // The bf16 kernels' tanh (ScoreMod::value): tanh.approx.f32, one special-function op instead of
  // tanhf's ~20 (relative error ~2^-11, below the bf16 rounding of P, 2^-9; the forward and the
  // backward use the same one, so the backward's recomputed P matches the forward's lse). The
  // fp32 kernels keep `apply` (their 1e-4 bound), and so does the host.
  ATTN_HD static float tanh_fast(float x) {
#if defined(__CUDA_ARCH__)
    float th;
    asm("tanh.approx.f32 %0, %1;" : "=f"(th) : "f"(x));
    return th;
#else
    return tanhf(x);
#endif
  }
  ATTN_HD static double apply(double s, double cap, double inv_cap, double* dfac) {
    const double th = tanh(s * inv_cap);
    *dfac = 1.0 - th * th;
    return cap * th;
  }
};

}  // namespace attn
