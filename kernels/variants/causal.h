// Causal attention: row i sees the keys j <= i. `attention.causal = false` lifts it.
// The plain kernels compile it in (MaskKind::kCausal); here it is the piece of the general mask.
#pragma once
#include "kernels/variants/variant_base.h"

namespace attn {

struct Causal : VariantDefaults {
  struct Options {
    bool causal = true;
  };
  struct Args {
    bool causal = true;
  };
  static constexpr const char* kKey = "attention.causal";
  static constexpr unsigned kNeeds = kNeedsNothing;  // "on" = non-causal: not for cached generation
  template <class O> static bool on(const O& o) { return !o.causal; }
  template <class O> static std::string value(const O& o) { return o.causal ? "true" : "false"; }
  template <class O> static void set_args(const O& o, Args& a) { a.causal = o.causal; }
  ATTN_HD static bool active(const Args&) { return false; }  // the plain kernels serve it alone

  bool on_;
  ATTN_HD Causal(const Args& a, int, int) : on_(a.causal) {}
  ATTN_HD int key_lo(int) const { return 0; }
  ATTN_HD int key_hi(int i) const { return on_ ? i : INT_MAX; }
  ATTN_HD int query_lo(int j) const { return on_ ? j : 0; }
  ATTN_HD int query_hi(int) const { return INT_MAX; }
  ATTN_HD bool all_visible(int qf, int, int, int kl) const { return !on_ || kl <= qf; }
};

}  // namespace attn
