// Plain float64 reference of the project's attention (src/attention/attention.h), forward and
// backward, on the packed layout:
//   qkv  (B, T, (H + 2*Hkv) * D): per token H query heads, Hkv key heads, Hkv value heads
//   y    (B, T, H * D)
//   lse  (B, H, T)   natural-log logsumexp of the scaled scores of each row
//   dqkv (B, T, (H + 2*Hkv) * D)
// attention_reference does everything serially; attention_reference_rows does a block of
// query rows of one head (dK, dV contributions added to caller-owned partial buffers), so a
// caller can spread the work over threads and sum the partials.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace attn::ref {

struct AttnShape {
  int B = 1, T = 1, H = 1, Hkv = 1, D = 64;
  bool causal = false;
  int width() const { return (H + 2 * Hkv) * D; }
};

// Rows [i0, i1) of query head h of batch b: writes y, lse and (dy non-null) dq for those rows,
// and ADDS their contributions to dk_part, dv_part (T x D each, for kv head h / (H / Hkv)).
inline void attention_reference_rows(const AttnShape& s, const double* qkv, const double* dy, double* y,
                                     double* lse, double* dqkv, double* dk_part, double* dv_part, int b, int h,
                                     int i0, int i1) {
  const int T = s.T, D = s.D, W = s.width(), g = h / (s.H / s.Hkv);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  auto q = [&](int t) { return qkv + ((int64_t)b * T + t) * W + (int64_t)h * D; };
  auto k = [&](int t) { return qkv + ((int64_t)b * T + t) * W + (int64_t)(s.H + g) * D; };
  auto v = [&](int t) { return qkv + ((int64_t)b * T + t) * W + (int64_t)(s.H + s.Hkv + g) * D; };
  auto dq = [&](int t) { return dqkv + ((int64_t)b * T + t) * W + (int64_t)h * D; };
  auto yrow = [&](int t) { return y + ((int64_t)b * T + t) * s.H * D + (int64_t)h * D; };
  auto dyrow = [&](int t) { return dy + ((int64_t)b * T + t) * s.H * D + (int64_t)h * D; };

  std::vector<double> sc(T), p(T), dp(T);
  for (int i = i0; i < i1; ++i) {
    const int jend = s.causal ? i + 1 : T;
    const double* qi = q(i);
    double mx = -std::numeric_limits<double>::infinity();
    for (int j = 0; j < jend; ++j) {
      double acc = 0.0;
      for (int d = 0; d < D; ++d) acc += qi[d] * k(j)[d];
      sc[j] = acc * scale;
      mx = std::max(mx, sc[j]);
    }
    double sum = 0.0;
    for (int j = 0; j < jend; ++j) sum += std::exp(sc[j] - mx);
    const double l = mx + std::log(sum);
    lse[((int64_t)b * s.H + h) * T + i] = l;
    for (int j = 0; j < jend; ++j) p[j] = std::exp(sc[j] - l);
    double* yi = yrow(i);
    for (int d = 0; d < D; ++d) yi[d] = 0.0;
    for (int j = 0; j < jend; ++j)
      for (int d = 0; d < D; ++d) yi[d] += p[j] * v(j)[d];
    if (!dy) continue;
    const double* dyi = dyrow(i);
    double dsum = 0.0;  // rowsum(dO * O) = sum_j P_ij dP_ij
    for (int d = 0; d < D; ++d) dsum += dyi[d] * yi[d];
    for (int j = 0; j < jend; ++j) {
      double acc = 0.0;
      for (int d = 0; d < D; ++d) acc += dyi[d] * v(j)[d];
      dp[j] = acc;
    }
    double* dqi = dq(i);
    for (int d = 0; d < D; ++d) dqi[d] = 0.0;
    for (int j = 0; j < jend; ++j) {
      const double ds = p[j] * (dp[j] - dsum);  // gradient wrt the scaled score s_ij
      const double* kj = k(j);
      double* dkj = dk_part + (int64_t)j * D;
      double* dvj = dv_part + (int64_t)j * D;
      for (int d = 0; d < D; ++d) {
        dqi[d] += scale * ds * kj[d];
        dkj[d] += scale * ds * qi[d];
        dvj[d] += p[j] * dyi[d];
      }
    }
  }
}

// Whole problem, serially: y, lse and (dy non-null) dqkv.
inline void attention_reference(const AttnShape& s, const double* qkv, const double* dy, double* y, double* lse,
                                double* dqkv) {
  const int T = s.T, D = s.D, W = s.width(), G = s.H / s.Hkv;
  std::vector<double> dk((size_t)T * D), dv((size_t)T * D);
  for (int b = 0; b < s.B; ++b)
    for (int g = 0; g < s.Hkv; ++g) {
      std::fill(dk.begin(), dk.end(), 0.0);
      std::fill(dv.begin(), dv.end(), 0.0);
      for (int h = g * G; h < (g + 1) * G; ++h)
        attention_reference_rows(s, qkv, dy, y, lse, dqkv, dk.data(), dv.data(), b, h, 0, T);
      if (!dy) continue;
      for (int t = 0; t < T; ++t)
        for (int d = 0; d < D; ++d) {
          dqkv[((int64_t)b * T + t) * W + (int64_t)(s.H + g) * D + d] = dk[(size_t)t * D + d];
          dqkv[((int64_t)b * T + t) * W + (int64_t)(s.H + s.Hkv + g) * D + d] = dv[(size_t)t * D + d];
        }
    }
}

}  // namespace attn::ref
