// The variants' masks (kernels/attention_variant.h): the tile-range rule and the exact per-row
// intervals that the flash kernels and the CPU reference share, against brute force.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "attention/cpu_attention.h"
#include "kernels/attention_variant.h"

namespace {

// The reference (attention/cpu_attention.cpp) runs the variants' code on the host; here the
// math of attention.h written out pair by pair with an explicit visible(b, i, j), float64.
struct Brute {
  int B, T, H, Hkv, D;
  std::vector<double> qkv;
  template <class Visible>
  std::vector<double> run(const attn::AttentionOptions& o, Visible visible) const {
    const int Q = (H + 2 * Hkv) * D;
    std::vector<double> y(static_cast<size_t>(B) * T * H * D, 0.0);
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h) {
        const int g = h / (H / Hkv);
        const double slope = o.alibi ? attn::alibi_slope(h, H) : 0.0;
        for (int i = 0; i < T; ++i) {
          std::vector<double> s(T, -INFINITY);
          double mx = -INFINITY;
          for (int j = 0; j < T; ++j) {
            if (!visible(b, i, j)) continue;
            double x = 0;
            for (int d = 0; d < D; ++d)
              x += qkv[(static_cast<size_t>(b) * T + i) * Q + h * D + d] * qkv[(static_cast<size_t>(b) * T + j) * Q + (H + g) * D + d];
            x = x / std::sqrt(double(D)) - slope * (i - j);
            if (o.softcap > 0) x = o.softcap * std::tanh(x / o.softcap);
            s[j] = x, mx = std::max(mx, x);
          }
          double sum = 0;
          for (int j = 0; j < T; ++j) sum += s[j] == -INFINITY ? 0.0 : std::exp(s[j] - mx);
          for (int j = 0; j < T; ++j) {
            if (s[j] == -INFINITY) continue;
            const double p = std::exp(s[j] - mx) / sum;
            for (int d = 0; d < D; ++d)
              y[(static_cast<size_t>(b) * T + i) * H * D + h * D + d] += p * qkv[(static_cast<size_t>(b) * T + j) * Q + (H + Hkv + g) * D + d];
          }
        }
      }
    return y;
  }
};

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// The CPU reference with every variant (and combinations, GQA, odd T) equals brute force.
TEST(AttentionVariantReference, EqualsBruteForceMasks) {
  std::mt19937_64 g(7);
  std::normal_distribution<double> n(0.0, 1.0);
  for (int trial = 0; trial < 60; ++trial) {
    const int B = 2, T = 1 + static_cast<int>(g() % 23), Hkv = 1 + static_cast<int>(g() % 2), H = Hkv * (1 + static_cast<int>(g() % 3)), D = 3;
    Brute br{B, T, H, Hkv, D, {}};
    br.qkv.resize(static_cast<size_t>(B) * T * (H + 2 * Hkv) * D);
    for (double& x : br.qkv) x = 1.5 * n(g);
    std::vector<int32_t> in(static_cast<size_t>(B) * T);
    for (auto& t : in) t = static_cast<int32_t>(g() % 6);  // token 0: eot
    attn::AttentionOptions o;
    o.causal = g() % 4 != 0;
    o.sliding_window = o.causal && g() % 3 == 0 ? 1 + static_cast<int>(g() % 6) : 0;
    o.document_mask = g() % 3 == 0, o.eot_token = 0;
    o.alibi = g() % 3 == 0;
    o.softcap = g() % 3 == 0 ? 1.5f : 0.0f;
    std::vector<int> doc(in.size());
    for (int b = 0; b < B; ++b)
      for (int t = 0, d = 0; t < T; ++t) doc[b * T + t] = d, d += in[b * T + t] == 0;
    auto visible = [&](int b, int i, int j) {
      return (!o.causal || j <= i) && (o.sliding_window == 0 || i - j < o.sliding_window) &&
             (!o.document_mask || doc[b * T + i] == doc[b * T + j]);
    };
    const attn::AttentionShape s{B, T, H, Hkv, D};
    std::vector<double> y(static_cast<size_t>(B) * T * H * D), P(static_cast<size_t>(B) * H * T * T);
    attn::naive_attention_forward(y.data(), P.data(), br.qkv.data(), in.data(), s, o, attn::DropoutState{});
    ASSERT_LT(max_abs_diff(y, br.run(o, visible)), 1e-12) << "trial " << trial << " T " << T;
  }
}

// Random masks of every variant: options, token rows (token 0 separates documents), and the
// brute-force visible(i, j) of attention.h for row 0.
struct RandomMask {
  attn::AttentionOptions o;
  std::vector<int32_t> tokens;
  std::vector<int> doc;
  int T;
  RandomMask(std::mt19937& g, int max_t) : T(1 + static_cast<int>(g() % max_t)) {
    o.causal = g() % 2;
    o.sliding_window = g() % 3 == 0 ? 0 : 1 + static_cast<int>(g() % (max_t * 2 / 3));
    o.document_mask = g() % 2, o.eot_token = 0;
    tokens.resize(T);
    for (auto& t : tokens) t = g() % 13 == 0 ? 0 : 1 + static_cast<int>(g() % 5);
    doc.resize(T);
    for (int t = 0, d = 0; t < T; ++t) doc[t] = d, d += tokens[t] == 0;
    if (g() % 2) {  // prefix-LM: fixed, or ending with the first token 5 (none: all prefix)
      o.prefix_lm = o.causal = true;
      if (g() % 2) o.prefix_len = 1 + static_cast<int>(g() % (max_t + 10)); else o.prefix_token = 5;
      P = o.prefix_len > 0 ? std::min(o.prefix_len, T) : T;
      for (int t = 0; t < T && o.prefix_token >= 0; ++t)
        if (tokens[t] == 5) { P = t + 1; break; }
    }
  }
  int P = 0;  // prefix-LM: the row's prefix length
  bool visible(int i, int j) const {
    const bool causal_part = o.prefix_lm ? (j <= i || (i < P && j < P)) : (!o.causal || j <= i);
    return causal_part && (o.sliding_window == 0 || i - j < o.sliding_window) &&
           (!o.document_mask || doc[i] == doc[j]);
  }
  std::string where() const {
    return "T " + std::to_string(T) + " causal " + std::to_string(o.causal) + " window " +
           std::to_string(o.sliding_window) + " docs " + std::to_string(o.document_mask) + " prefix " +
           std::to_string(o.prefix_lm ? P : -1);
  }
};

// The tile ranges of kernels/attention_variant.h (the kernels' code, on the host) against brute
// force: every visible (query, key) pair of a block of rows / keys lies inside [key_lo, key_hi] /
// [query_lo, query_hi] (else the kernels would skip a tile they need), all_visible is exact.
template <class M>
void check_tile_ranges(std::mt19937& g, const M& rm) {
  std::vector<std::vector<int32_t>> store;
  const attn::VariantArgs args = attn::host_variant_args(rm.o, rm.tokens.data(), 1, rm.T, store);
  const attn::VariantMask m(args, 0, rm.T);
  const int T = rm.T;
  for (int k = 0; k < 10; ++k) {
    const int a = static_cast<int>(g() % T), b = a + static_cast<int>(g() % std::min(T - a, 130));
    int lo = T, hi = -1, qlo = T, qhi = -1;
    for (int i = a; i <= b; ++i)
      for (int j = 0; j < T; ++j) {
        if (rm.visible(i, j)) lo = std::min(lo, j), hi = std::max(hi, j);    // keys seen by rows [a, b]
        if (rm.visible(j, i)) qlo = std::min(qlo, j), qhi = std::max(qhi, j);  // queries seeing keys [a, b]
      }
    ASSERT_LE(m.key_lo(a), lo) << rm.where();
    ASSERT_GE(m.key_hi(b), hi) << rm.where();
    ASSERT_LE(m.query_lo(a), qlo) << rm.where();
    ASSERT_GE(m.query_hi(b), qhi) << rm.where();
    const int c = static_cast<int>(g() % T), e = c + static_cast<int>(g() % std::min(T - c, 70));
    bool all = true;
    for (int i = a; i <= b; ++i)
      for (int j = c; j <= e; ++j) all &= rm.visible(i, j);
    ASSERT_EQ(m.all_visible(a, b, c, e), all) << rm.where();
  }
  // one row's range is exact: row i sees exactly [key_lo(i), key_hi(i)], key j is seen by
  // exactly [query_lo(j), query_hi(j)]: the bf16 kernels' two compares per element
  for (int i = 0; i < T; ++i)
    for (int j = 0; j < T; ++j) {
      ASSERT_EQ(m.visible(i, j), rm.visible(i, j)) << rm.where() << " row " << i << " key " << j;
      ASSERT_EQ(m.query_lo(j) <= i && i <= m.query_hi(j), rm.visible(i, j)) << rm.where() << " key " << j << " query " << i;
    }
}

TEST(AttentionVariantMask, TileRangesAndRowRangesMatchBruteForce) {
  std::mt19937 g(1);
  for (int trial = 0; trial < 1500; ++trial) {
    const RandomMask rm(g, 200);
    ASSERT_NO_FATAL_FAILURE(check_tile_ranges(g, rm));
  }
}

// Prefix-LM in the CPU reference equals brute force (fixed and data prefixes, with the other
// variants, GQA, odd T): bidirectional inside the prefix, causal after it.
TEST(AttentionVariantReference, PrefixLmEqualsBruteForce) {
  std::mt19937 g(3);
  std::mt19937_64 g64(3);
  std::normal_distribution<double> n(0.0, 1.0);
  int prefixes = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int B = 2, D = 3, Hkv = 1 + static_cast<int>(g() % 2), H = Hkv * (1 + static_cast<int>(g() % 3));
    std::vector<RandomMask> rows{RandomMask(g, 25)};
    const int T = rows[0].T;
    rows.push_back(rows[0]);  // row 1: the same options, its own tokens
    for (auto& t : rows[1].tokens) t = g() % 13 == 0 ? 0 : 1 + static_cast<int>(g() % 5);
    RandomMask& r1 = rows[1];
    for (int t = 0, d = 0; t < T; ++t) r1.doc[t] = d, d += r1.tokens[t] == 0;
    if (r1.o.prefix_lm) {
      r1.P = r1.o.prefix_len > 0 ? std::min(r1.o.prefix_len, T) : T;
      for (int t = 0; t < T && r1.o.prefix_token >= 0; ++t)
        if (r1.tokens[t] == 5) { r1.P = t + 1; break; }
    }
    prefixes += rows[0].o.prefix_lm;
    const attn::AttentionOptions& o = rows[0].o;
    Brute br{B, T, H, Hkv, D, {}};
    br.qkv.resize(static_cast<size_t>(B) * T * (H + 2 * Hkv) * D);
    for (double& x : br.qkv) x = n(g64);
    std::vector<int32_t> in(rows[0].tokens);
    in.insert(in.end(), rows[1].tokens.begin(), rows[1].tokens.end());
    const attn::AttentionShape s{B, T, H, Hkv, D};
    std::vector<double> y(static_cast<size_t>(B) * T * H * D), P(static_cast<size_t>(B) * H * T * T);
    attn::naive_attention_forward(y.data(), P.data(), br.qkv.data(), in.data(), s, o, attn::DropoutState{});
    const auto ref = br.run(o, [&](int b, int i, int j) { return rows[b].visible(i, j); });
    ASSERT_LT(max_abs_diff(y, ref), 1e-12) << rows[0].where();
  }
  EXPECT_GT(prefixes, 100);
}

}  // namespace
