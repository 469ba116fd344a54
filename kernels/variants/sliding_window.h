// Sliding window: key j visible from row i only if i - j < w (`attention.sliding_window = w`,
// 0 = off). Only the left edge is bounded (non-causal with a window sees every later key).
#pragma once
#include "kernels/variants/variant_base.h"

namespace attn {

struct SlidingWindow : VariantDefaults {
  struct Options {
    int sliding_window = 0;
  };
  struct Args {
    int window = 0;
  };
  static constexpr const char* kKey = "attention.sliding_window";
  static constexpr unsigned kNeeds = kNeedsMask;
  template <class O> static bool on(const O& o) { return o.sliding_window != 0; }
  template <class O> static std::string value(const O& o) { return std::to_string(o.sliding_window); }
  template <class O> static std::string invalid(const O& o) {
    if (o.sliding_window < 0) return "must be >= 0 (0 = off)";
    if (o.sliding_window > 0 && !o.causal) return "needs attention.causal = true";
    return "";
  }
  template <class O> static void set_args(const O& o, Args& a) { a.window = o.sliding_window; }
  ATTN_HD static bool active(const Args& a) { return a.window > 0; }

  int w;
  ATTN_HD SlidingWindow(const Args& a, int, int) : w(a.window) {}
  ATTN_HD int key_lo(int i) const { return w > 0 ? i - w + 1 : 0; }
  ATTN_HD int key_hi(int) const { return INT_MAX; }
  ATTN_HD int query_lo(int) const { return 0; }
  ATTN_HD int query_hi(int j) const { return w > 0 ? j + w - 1 : INT_MAX; }
  ATTN_HD bool all_visible(int, int ql, int kf, int) const { return w == 0 || ql - kf < w; }
};

}  // namespace attn
