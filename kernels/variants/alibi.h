// ALiBi (Press et al.): s_ij -> s_ij - slope_h (i - j) on the scaled score, slopes the
// geometric sequence of the paper. For H a power of two, slope_h = 2^(-8 (h+1) / H); otherwise,
// with P the largest power of two below H, heads 0..P-1 take the P-head slopes and heads
// P..H-1 every other slope of the 2P-head sequence: 2^(-8 (2k+1) / (2P)), k = h - P.
#pragma once
#include <cmath>

#include "kernels/variants/variant_base.h"

namespace attn {

struct Alibi : NoMask {
  struct Options {
    bool alibi = false;
  };
  struct Args {
    bool alibi = false;
  };
  static constexpr const char* kKey = "attention.alibi";
  static constexpr unsigned kNeeds = kNeedsScoreMod;
  template <class O> static bool on(const O& o) { return o.alibi; }
  template <class O> static std::string value(const O& o) { return o.alibi ? "true" : "false"; }
  template <class O> static void set_args(const O& o, Args& a) { a.alibi = o.alibi; }
  ATTN_HD static bool active(const Args& a) { return a.alibi; }
  ATTN_HD Alibi(const Args&, int, int) {}

  // Slope of head h of H, in S (float on the device, double in the reference).
  template <class S>
  ATTN_HD static S slope(int h, int H) {
    int p = 1;
    while (p * 2 <= H) p *= 2;
    const S e = h < p ? S(-8) * S(h + 1) / S(p) : S(-8) * S(2 * (h - p) + 1) / (S(2) * S(p));
    if constexpr (sizeof(S) == 4) return exp2f(e);
    else return exp2(e);
  }
  // The score change: s + slope (j - i) (the slope may be pre-divided by the softmax scale).
  ATTN_HD static float apply(float s, float slope, int i, int j) { return fmaf(slope, (float)(j - i), s); }
  ATTN_HD static double apply(double s, double slope, int i, int j) { return s + slope * double(j - i); }
};

}  // namespace attn
