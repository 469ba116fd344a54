#include "attention/attention.h"

#include <cmath>

namespace attn {

// ALiBi (Press et al.): for H a power of two, slope_h = 2^(-8 (h+1) / H). Otherwise, with P
// the largest power of two below H, heads 0..P-1 take the P-head slopes and heads P..H-1
// take every other slope of the 2P-head sequence: 2^(-8 (2k+1) / (2P)), k = h - P.
double alibi_slope(int h, int n_head) {
  int p = 1;
  while (p * 2 <= n_head) p *= 2;
  if (h < p) return std::exp2(-8.0 * (h + 1) / p);
  const int k = h - p;
  return std::exp2(-8.0 * (2 * k + 1) / (2.0 * p));
}

}  // namespace attn
