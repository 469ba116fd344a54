// The vocabulary shared by the attention variants (kernels/attention_variant.h describes
// the protocol): __host__ __device__ spelling, min/max, the all-visible mask of score-only
// pieces, and per-row token counts.
#pragma once
#include <climits>
#include <cstdint>
#include <string>

#include "core/host_device.h"

namespace attn {

ATTN_HD int vmax(int a, int b) { return a > b ? a : b; }
ATTN_HD int vmin(int a, int b) { return a < b ? a : b; }

enum VariantNeeds : unsigned { kNeedsNothing = 0, kNeedsMask = 1, kNeedsScoreMod = 2 };

// What most variants leave as it is (a variant restates what differs).
struct VariantDefaults {
  static constexpr bool kDecode = false;          // cached generation cannot run it
  static constexpr bool kReplacesCausal = false;  // the Causal piece stays as configured
  template <class O> static std::string invalid(const O&) { return ""; }
};

// The mask of a piece that only modifies scores: everything visible.
struct NoMask : VariantDefaults {
  ATTN_HD int key_lo(int) const { return 0; }
  ATTN_HD int key_hi(int) const { return INT_MAX; }
  ATTN_HD int query_lo(int) const { return 0; }
  ATTN_HD int query_hi(int) const { return INT_MAX; }
  ATTN_HD bool all_visible(int, int, int, int) const { return true; }
};

// Per-token counts of a separator token along a row: count[t] = number of `token` among
// inputs[0..t-1] (non-decreasing). Document ids and data-derived prefixes are such counts;
// first_at_least(d) finds the first position whose count is >= d by bisection.
struct TokenCounts {
  const int32_t* count = nullptr;  // this row's (T) counts, or null
  int T = 0;
  ATTN_HD int at(int i) const {
#ifdef __CUDA_ARCH__
    return __ldg(count + i);
#else
    return count[i];
#endif
  }
  ATTN_HD int first_at_least(int d) const {  // in [0, T]
    int lo = 0, hi = T;
    while (lo < hi) {
      const int mid = (lo + hi) >> 1;
      if (at(mid) < d) lo = mid + 1; else hi = mid;
    }
    return lo;
  }
};

}  // namespace attn
