// What the GPU benchmarks (tests/gpu/bench_*.cu) share: the median of a series of timings.
#pragma once
#include <algorithm>
#include <vector>

namespace attn::bench {

// The middle element after sorting (the upper one of the two middles for an even count).
template <typename T>
T median(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace attn::bench
