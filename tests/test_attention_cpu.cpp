// The naive CPU attention: finite-difference checks of every variant (float64, fresh
// random inputs each run; replay with ATTN_TEST_SEED), masks, document packing, GQA.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "attention/cpu_attention.h"
#include "core/error.h"
#include "core/rng.h"
#include "fd_check.h"

namespace attn {
namespace {

using testing::check_gradient;
using testing::FdResult;
using testing::kFdTol;
using testing::random_indices;
using testing::randn;

struct Variant {
  std::string name;
  int T, H, Hkv;
  bool causal = true;
  int window = 0;
  bool doc = false;
  bool alibi = false;
  float softcap = 0.0f;
  float p = 0.0f;
  int prefix_len = 0;     // prefix-LM with a fixed prefix
  int prefix_token = -1;  // prefix-LM ending with the first token of this id
};

std::ostream& operator<<(std::ostream& os, const Variant& v) { return os << v.name; }

constexpr int kEot = 0;

AttentionOptions options_of(const Variant& v) {
  AttentionOptions o;
  o.causal = v.causal;
  o.sliding_window = v.window;
  o.document_mask = v.doc;
  o.eot_token = kEot;
  o.alibi = v.alibi;
  o.softcap = v.softcap;
  o.prefix_lm = v.prefix_len > 0 || v.prefix_token >= 0;
  o.prefix_len = v.prefix_len, o.prefix_token = v.prefix_token;
  return o;
}

class AttentionFd : public ::testing::TestWithParam<Variant> {};

TEST_P(AttentionFd, GradientMatchesFiniteDifferences) {
  const Variant& v = GetParam();
  const uint64_t seed = testing::test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const int B = 2, D = 4;
  const AttentionShape s{B, v.T, v.H, v.Hkv, D};
  const AttentionOptions o = options_of(v);
  const DropoutState dr{v.p, stream_key(seed, 1, 0, 3)};
  std::vector<int32_t> inputs(B * v.T);
  for (auto& t : inputs) t = static_cast<int32_t>(1 + rng() % 9);
  if (v.doc && v.T > 3) inputs[2] = kEot, inputs[v.T + v.T / 2] = kEot, inputs[v.T - 2] = kEot;
  const size_t nq = static_cast<size_t>(B) * v.T * s.qkv_dim(), ny = static_cast<size_t>(B) * v.T * v.H * D;
  auto qkv = randn(rng, nq, 1.5), R = randn(rng, ny);
  std::vector<double> y(ny), P(static_cast<size_t>(B) * v.H * v.T * v.T), dqkv(nq, std::nan(""));
  auto f = [&] {
    naive_attention_forward(y.data(), P.data(), qkv.data(), inputs.data(), s, o, dr);
    double l = 0;
    for (size_t i = 0; i < ny; ++i) l += y[i] * R[i];
    return l;
  };
  f();
  naive_attention_backward(dqkv.data(), R.data(), qkv.data(), P.data(), inputs.data(), s, o, dr);
  for (double d : dqkv) ASSERT_TRUE(std::isfinite(d)) << "dqkv element not written";
  const FdResult r = check_gradient(qkv.data(), dqkv.data(), nq, f, "qkv", random_indices(rng, nq, 160));
  EXPECT_LE(r.max_rel, kFdTol) << "worst: " << r.worst;
  std::printf("[   FD     ] attention %-18s checked %4d  max rel err %.2e (max abs %.1e)\n", v.name.c_str(), r.checked, r.max_rel, r.max_abs);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, AttentionFd,
    ::testing::Values(Variant{"causal", 7, 4, 4}, Variant{"noncausal", 7, 4, 4, false},
                      Variant{"T1", 1, 2, 2}, Variant{"T17", 17, 4, 4},
                      Variant{"window3", 17, 2, 2, true, 3}, Variant{"window4_noncausal", 9, 2, 2, false, 4},
                      Variant{"docmask", 17, 2, 2, true, 0, true}, Variant{"alibi", 17, 4, 4, true, 0, false, true},
                      Variant{"alibi_H6", 7, 6, 6, true, 0, false, true},
                      Variant{"softcap", 17, 2, 2, true, 0, false, false, 1.5f},
                      Variant{"dropout", 17, 2, 2, true, 0, false, false, 0.0f, 0.3f},
                      Variant{"gqa", 17, 4, 2}, Variant{"mqa", 7, 4, 1}, Variant{"mqa_noncausal", 7, 4, 1, false},
                      Variant{"everything", 17, 6, 2, true, 6, true, true, 2.0f, 0.2f},
                      Variant{"everything_noncausal", 7, 4, 1, false, 3, true, true, 2.0f, 0.2f},
                      Variant{"prefix_lm", 17, 4, 2, true, 0, false, false, 0.0f, 0.0f, 6},
                      Variant{"prefix_lm_T1", 1, 2, 1, true, 0, false, false, 0.0f, 0.0f, 3},
                      Variant{"prefix_lm_data", 17, 4, 2, true, 0, false, false, 0.0f, 0.0f, 0, 4},
                      Variant{"prefix_lm_everything", 17, 6, 2, true, 6, true, true, 2.0f, 0.2f, 0, 4}),
    [](const ::testing::TestParamInfo<Variant>& i) { return i.param.name; });

// Runs the attention forward and backward on (B=1) rows [t0, t1) of a packed row; returns y
// and (in *dqkv) the gradient of sum(y * dy) over those rows.
std::vector<double> run_segment(const std::vector<double>& qkv, const std::vector<int32_t>& inputs, int t0, int t1,
                                const AttentionShape& full, const AttentionOptions& o,
                                const std::vector<double>& dy, std::vector<double>* dqkv) {
  const int Q = full.qkv_dim(), C = full.n_head * full.head_dim, T = t1 - t0;
  AttentionShape s = full;
  s.B = 1, s.T = T;
  std::vector<double> part(qkv.begin() + static_cast<size_t>(t0) * Q, qkv.begin() + static_cast<size_t>(t1) * Q);
  std::vector<double> dpart(dy.begin() + static_cast<size_t>(t0) * C, dy.begin() + static_cast<size_t>(t1) * C);
  std::vector<int32_t> in(inputs.begin() + t0, inputs.begin() + t1);
  std::vector<double> y(static_cast<size_t>(T) * C), P(static_cast<size_t>(s.n_head) * T * T);
  naive_attention_forward(y.data(), P.data(), part.data(), in.data(), s, o, DropoutState{});
  dqkv->assign(part.size(), 0.0);
  naive_attention_backward(dqkv->data(), dpart.data(), part.data(), P.data(), in.data(), s, o, DropoutState{});
  return y;
}

// Document masking on a packed row equals running each document separately: outputs and every
// gradient (dQ, dK, dV of a token come from its own document only), with ALiBi, soft-capping, window.
TEST(Attention, DocumentMaskEqualsSeparateDocuments) {
  const uint64_t seed = testing::test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const int T = 23, H = 4, Hkv = 2, D = 8, C = H * D;
  const AttentionShape s{1, T, H, Hkv, D};
  std::vector<int32_t> inputs(T);
  for (auto& t : inputs) t = static_cast<int32_t>(1 + rng() % 50);
  // documents [0, 6) [6, 7) [7, 16) [16, 23): each ends with its eot (the eot belongs to it)
  inputs[5] = kEot, inputs[6] = kEot, inputs[15] = kEot;
  const std::vector<std::pair<int, int>> docs{{0, 6}, {6, 7}, {7, 16}, {16, 23}};
  const auto qkv = randn(rng, static_cast<size_t>(T) * s.qkv_dim());
  const auto dy = randn(rng, static_cast<size_t>(T) * C);
  const int Q = s.qkv_dim();
  for (int variant = 0; variant < 4; ++variant) {
    AttentionOptions o;
    o.document_mask = true;
    o.eot_token = kEot;
    o.alibi = variant >= 1;
    o.softcap = variant >= 2 ? 2.5f : 0.0f;
    o.sliding_window = variant >= 3 ? 4 : 0;
    std::vector<double> y(static_cast<size_t>(T) * C), P(static_cast<size_t>(H) * T * T);
    naive_attention_forward(y.data(), P.data(), qkv.data(), inputs.data(), s, o, DropoutState{});
    std::vector<double> dqkv(qkv.size());
    naive_attention_backward(dqkv.data(), dy.data(), qkv.data(), P.data(), inputs.data(), s, o, DropoutState{});
    AttentionOptions plain = o;
    plain.document_mask = false;
    for (auto [t0, t1] : docs) {
      std::vector<double> dseg;
      const auto ys = run_segment(qkv, inputs, t0, t1, s, plain, dy, &dseg);
      for (int t = t0; t < t1; ++t) {
        for (int c = 0; c < C; ++c)
          ASSERT_NEAR(y[static_cast<size_t>(t) * C + c], ys[static_cast<size_t>(t - t0) * C + c], 1e-12)
              << "variant " << variant << " t " << t;
        for (int c = 0; c < Q; ++c)  // dQ, dK, dV of the token: only its own document contributes
          ASSERT_NEAR(dqkv[static_cast<size_t>(t) * Q + c], dseg[static_cast<size_t>(t - t0) * Q + c], 1e-12)
              << "variant " << variant << " dqkv t " << t << " column " << c;
      }
    }
  }
}

TEST(Attention, ProbabilitiesAreMaskedAndNormalised) {
  std::mt19937_64 rng(3);
  const int B = 2, T = 12, H = 2, D = 4;
  const AttentionShape s{B, T, H, H, D};
  AttentionOptions o;
  o.sliding_window = 3;
  o.alibi = true;
  const auto qkv = randn(rng, static_cast<size_t>(B) * T * s.qkv_dim());
  std::vector<double> y(static_cast<size_t>(B) * T * H * D), P(static_cast<size_t>(B) * H * T * T);
  naive_attention_forward(y.data(), P.data(), qkv.data(), nullptr, s, o, DropoutState{});
  for (int bh = 0; bh < B * H; ++bh)
    for (int i = 0; i < T; ++i) {
      double sum = 0;
      for (int j = 0; j < T; ++j) {
        const double p = P[(static_cast<size_t>(bh) * T + i) * T + j];
        if (j > i || i - j >= 3)
          EXPECT_EQ(p, 0.0);
        else
          EXPECT_GT(p, 0.0);
        sum += p;
      }
      EXPECT_NEAR(sum, 1.0, 1e-14);
    }
}

// Grouped-query attention equals multi-head attention with each kv head repeated over its
// group; the kv gradients are the sums over the group.
TEST(Attention, GroupedQueryEqualsRepeatedHeads) {
  std::mt19937_64 rng(testing::test_seed());
  const int B = 2, T = 9, H = 6, Hkv = 2, D = 4, G = H / Hkv;
  const AttentionShape sg{B, T, H, Hkv, D}, sm{B, T, H, H, D};
  AttentionOptions o;
  o.alibi = true;
  o.softcap = 3.0f;
  const auto qkv = randn(rng, static_cast<size_t>(B) * T * sg.qkv_dim());
  const auto dy = randn(rng, static_cast<size_t>(B) * T * H * D);
  std::vector<double> qkv_m(static_cast<size_t>(B) * T * sm.qkv_dim());
  for (int bt = 0; bt < B * T; ++bt) {
    const double* src = qkv.data() + static_cast<size_t>(bt) * sg.qkv_dim();
    double* dst = qkv_m.data() + static_cast<size_t>(bt) * sm.qkv_dim();
    for (int i = 0; i < H * D; ++i) dst[i] = src[i];
    for (int h = 0; h < H; ++h)
      for (int d = 0; d < D; ++d) {
        dst[(H + h) * D + d] = src[(H + h / G) * D + d];
        dst[(2 * H + h) * D + d] = src[(H + Hkv + h / G) * D + d];
      }
  }
  std::vector<double> yg(dy.size()), ym(dy.size()), Pg(static_cast<size_t>(B) * H * T * T), Pm(Pg.size());
  std::vector<double> dg(qkv.size()), dm(qkv_m.size());
  naive_attention_forward(yg.data(), Pg.data(), qkv.data(), nullptr, sg, o, DropoutState{});
  naive_attention_forward(ym.data(), Pm.data(), qkv_m.data(), nullptr, sm, o, DropoutState{});
  for (size_t i = 0; i < yg.size(); ++i) ASSERT_NEAR(yg[i], ym[i], 1e-13);
  naive_attention_backward(dg.data(), dy.data(), qkv.data(), Pg.data(), nullptr, sg, o, DropoutState{});
  naive_attention_backward(dm.data(), dy.data(), qkv_m.data(), Pm.data(), nullptr, sm, o, DropoutState{});
  for (int bt = 0; bt < B * T; ++bt) {
    const double* g = dg.data() + static_cast<size_t>(bt) * sg.qkv_dim();
    const double* m = dm.data() + static_cast<size_t>(bt) * sm.qkv_dim();
    for (int i = 0; i < H * D; ++i) ASSERT_NEAR(g[i], m[i], 1e-13);
    for (int kv = 0; kv < Hkv; ++kv)
      for (int d = 0; d < D; ++d) {
        double sk = 0, sv = 0;
        for (int h = kv * G; h < (kv + 1) * G; ++h) sk += m[(H + h) * D + d], sv += m[(2 * H + h) * D + d];
        ASSERT_NEAR(g[(H + kv) * D + d], sk, 1e-13);
        ASSERT_NEAR(g[(H + Hkv + kv) * D + d], sv, 1e-13);
      }
  }
}

TEST(Attention, DropoutIsAPureFunctionOfTheKey) {
  std::mt19937_64 rng(5);
  const AttentionShape s{2, 10, 2, 1, 4};
  const auto qkv = randn(rng, static_cast<size_t>(2) * 10 * s.qkv_dim());
  std::vector<double> y1(2 * 10 * 8), y2(y1.size()), y3(y1.size()), y0(y1.size()), P(2 * 2 * 100);
  const AttentionOptions o;
  naive_attention_forward(y1.data(), P.data(), qkv.data(), nullptr, s, o, DropoutState{0.3f, 77});
  naive_attention_forward(y2.data(), P.data(), qkv.data(), nullptr, s, o, DropoutState{0.3f, 77});
  naive_attention_forward(y3.data(), P.data(), qkv.data(), nullptr, s, o, DropoutState{0.3f, 78});
  naive_attention_forward(y0.data(), P.data(), qkv.data(), nullptr, s, o, DropoutState{});
  EXPECT_EQ(y1, y2);
  EXPECT_NE(y1, y3);
  EXPECT_NE(y1, y0);
}

TEST(Attention, AlibiSlopes) {
  for (int h = 0; h < 8; ++h) EXPECT_DOUBLE_EQ(alibi_slope(h, 8), std::pow(2.0, -(h + 1.0)));
  for (int h = 0; h < 4; ++h) EXPECT_DOUBLE_EQ(alibi_slope(h, 4), std::pow(2.0, -2.0 * (h + 1)));
  // H = 6: the 4-head slopes, then slopes 0 and 2 of the 8-head sequence
  const double expect6[] = {0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125};
  for (int h = 0; h < 6; ++h) EXPECT_DOUBLE_EQ(alibi_slope(h, 6), expect6[h]);
}

TEST(Attention, RefusesWhatTheCpuCannotRun) {
  AttentionOptions o;
  o.document_mask = true;  // no eot_token
  std::vector<double> buf(1000);
  std::vector<int32_t> in(4, 1);
  const AttentionShape one{1, 4, 1, 1, 2};
  EXPECT_THROW(naive_attention_forward(buf.data(), buf.data(), buf.data(), in.data(), one, o, DropoutState{}), Error);
  const AttentionShape bad{1, 4, 4, 3, 2};
  EXPECT_THROW(naive_attention_forward(buf.data(), buf.data(), buf.data(), nullptr, bad, AttentionOptions{},
                                       DropoutState{}),
               Error);
}

}  // namespace
}  // namespace attn
