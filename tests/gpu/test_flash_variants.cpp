// Flash attention masks and score modifications (sliding window, document mask, ALiBi,
// soft-capping, and combinations) against the float64 CPU reference (attention/cpu_attention.h),
// forward (O, lse) and gradients (dQ, dK, dV), bf16 (wgmma) and fp32 paths, atomic and
// deterministic backward (two deterministic runs bitwise equal), MHA / GQA / MQA, D 64 and 128,
// awkward T, windows that are not multiples of a tile, document boundaries inside tiles and on
// tile edges (64, 128), attention dropout with variants. The document ids come from the device
// kernel kern::document_ids on the uploaded tokens (its own test below checks it against the CPU
// rule).
//
// Metric: ||x - ref|| / ||ref|| over the whole tensor; tolerances as tests/gpu/test_flash_attention.cu:
// bf16 <= 1e-2, fp32 <= 1e-4, tf32 (1xTF32) <= 4 * 2^-11. Every output buffer is poisoned (NaN)
// first, so an element that is never written (e.g. a skipped tile that should not have been)
// fails the test.
//
// Also: the whole model on the CUDA backend (flash + window + ALiBi + soft-capping, flash +
// document mask; fp32 and bf16) against the CPU backend.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "attention/cpu_attention.h"
#include "core/dropout.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/document_ids.h"
#include "kernels/flash_attention.h"
#include "kernels/flash_attention_mask.cuh"
#include "test_util.h"

namespace {

constexpr int32_t kEot = 1;  // the end-of-text id of these tests' token rows (others are 0 or >= 2)

struct Variant {
  std::string name;
  int B, T, H, Hkv, D;
  bool causal;
  int window = 0;     // 0 = off
  int docs = 0;       // 0 = no document mask; else the eot pattern (see make_tokens)
  bool alibi = false;
  float softcap = 0.0f;
  int prefix = 0;  // prefix-LM: > 0 a fixed prefix length; -1 the prefix ends with the first kEot
  float dropout = 0.0f;  // attention dropout p (the reference draws the same mask)
  int width() const { return (H + 2 * Hkv) * D; }
  attn::DropoutState dropout_state() const { return {dropout, dropout > 0.f ? attn::mix64(0xD50Full + T) : 0}; }
};

// Token rows with eot tokens: documents that end on tile edges (eot at 63 and 127: the next
// document starts at 64 / 128), inside tiles, single-token documents, and (pattern 2) a last row
// with no eot at all. Deterministic in the seed.
std::vector<int32_t> make_tokens(const Variant& v, uint64_t seed) {
  std::vector<int32_t> tok(static_cast<size_t>(v.B) * v.T, 0);
  if (v.docs == 0 && v.prefix >= 0) return tok;
  if (v.docs == 0) {  // prefix-LM from the data: one separator per row anywhere, the last row none (all prefix)
    std::mt19937_64 g(seed);
    for (auto& t : tok) t = 2 + static_cast<int32_t>(g() % 50);
    for (int b = 0; b + 1 < v.B; ++b) tok[static_cast<size_t>(b) * v.T + g() % v.T] = kEot;
    return tok;
  }
  std::mt19937_64 g(seed);
  for (int b = 0; b < v.B; ++b) {
    int32_t* row = tok.data() + static_cast<size_t>(b) * v.T;
    for (int t = 0; t < v.T; ++t) row[t] = 2 + static_cast<int32_t>(g() % 50);
    if (v.docs == 2 && b == v.B - 1) continue;  // one document spanning the row
    for (int t : {63, 127, 128, 300, 301, 302, 511, 700}) if (t < v.T) row[t] = kEot;
    for (int k = 0; k < v.T / 97; ++k) row[g() % v.T] = kEot;  // boundaries anywhere
    if (v.T > 5) row[3] = kEot, row[4] = kEot;                   // a one-token document [4, 5)
  }
  return tok;
}

attn::AttentionOptions options_of(const Variant& v) {
  attn::AttentionOptions o;
  o.causal = v.causal;
  o.sliding_window = v.window;
  o.document_mask = v.docs > 0;
  o.eot_token = kEot;
  o.alibi = v.alibi;
  o.softcap = v.softcap;
  o.prefix_lm = v.prefix != 0;
  o.prefix_len = std::max(v.prefix, 0), o.prefix_token = v.prefix < 0 ? kEot : -1;
  return o;
}

struct Reference {
  tu::Vec qkv, dy, y, lse, dqkv;
  std::vector<int32_t> tokens;
};

Reference make_reference(const Variant& v, uint64_t seed) {
  Reference r;
  const size_t n_qkv = static_cast<size_t>(v.B) * v.T * v.width(), n_y = static_cast<size_t>(v.B) * v.T * v.H * v.D;
  // bf16-representable inputs, so the bf16 and fp32 paths see the same values.
  r.qkv = tu::rounded<tu::bf16>(tu::random_vec(n_qkv, seed));
  r.dy = tu::rounded<tu::bf16>(tu::random_vec(n_y, seed + 1));
  r.tokens = make_tokens(v, seed + 2);
  r.y.resize(n_y);
  r.lse.resize(static_cast<size_t>(v.B) * v.H * v.T);
  r.dqkv.resize(n_qkv);
  const attn::AttentionShape shape{v.B, v.T, v.H, v.Hkv, v.D};
  const attn::AttentionOptions opts = options_of(v);
  std::vector<double> P(static_cast<size_t>(v.B) * v.H * v.T * v.T);
  attn::naive_attention_forward(r.y.data(), P.data(), r.qkv.data(), r.tokens.data(), shape, opts,
                                v.dropout_state(), r.lse.data());
  attn::naive_attention_backward(r.dqkv.data(), r.dy.data(), r.qkv.data(), P.data(), r.tokens.data(), shape, opts,
                                 v.dropout_state());
  return r;
}

// Relative L2 error of the selected elements, with the floor of test_flash_attention.cu: a
// reference that is (nearly) zero is compared absolutely (RMS error <= tol / 100). Window 1 and
// one-token documents give rows where P = 1 exactly, so dS = 0 and dQ, dK are rounding noise.
template <typename Sel>
double rel_err(const tu::Vec& x, const tu::Vec& ref, Sel sel) {
  double num = 0.0, den = 0.0;
  size_t cnt = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!sel(i)) continue;
    if (!std::isfinite(x[i])) return INFINITY;
    num += (x[i] - ref[i]) * (x[i] - ref[i]);
    den += ref[i] * ref[i];
    ++cnt;
  }
  const double floor = 1e-2 * std::sqrt(static_cast<double>(std::max<size_t>(cnt, 1)));
  return std::sqrt(num) / std::max(std::sqrt(den), floor);
}

struct Errors {
  double o = 0, lse = 0, dq = 0, dk = 0, dv = 0;
};

// Forward + backward of the flash kernels in precision E (float or bf16).
template <typename E>
Errors run_flash(const Variant& v, const Reference& r, bool deterministic, std::vector<E>* dqkv_raw,
                 std::vector<E>* y_raw = nullptr, bool tf32 = false) {
  const int W = v.width(), HD = v.H * v.D;
  tu::DevBuf<E> qkv(r.qkv), dy(r.dy), y(static_cast<size_t>(v.B) * v.T * HD), dqkv(r.qkv.size());
  tu::DevBuf<float> lse(r.lse.size());
  // the variants' token counts (document ids, ...) by the device kernel, as the CUDA backend does
  const attn::AttentionOptions opts = options_of(v);
  const std::vector<int> counted = attn::counted_tokens(opts);
  tu::DevBuf<int32_t> tokens(r.tokens), counts(std::max<size_t>(1, counted.size()) * r.tokens.size());
  CUDA_CHECK(cudaMemset(y.get(), 0xFF, y.size() * sizeof(E)));
  CUDA_CHECK(cudaMemset(lse.get(), 0xFF, lse.size() * sizeof(float)));
  CUDA_CHECK(cudaMemset(dqkv.get(), 0xFF, dqkv.size() * sizeof(E)));
  std::vector<const int32_t*> count_ptrs;
  for (size_t k = 0; k < counted.size(); ++k) {
    count_ptrs.push_back(counts.get() + k * r.tokens.size());
    attn::kern::document_ids(counts.get() + k * r.tokens.size(), tokens.get(), v.B, v.T, counted[k], nullptr);
  }

  attn::FlashAttentionParams p;
  p.q = qkv.get();
  p.k = qkv.get() + static_cast<size_t>(v.H) * v.D;
  p.v = qkv.get() + static_cast<size_t>(v.H + v.Hkv) * v.D;
  p.o = y.get();
  p.lse = lse.get();
  p.B = v.B, p.T = v.T, p.H = v.H, p.Hkv = v.Hkv, p.D = v.D;
  p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = static_cast<int64_t>(v.T) * W;
  p.q_token_stride = p.k_token_stride = p.v_token_stride = W;
  p.o_batch_stride = static_cast<int64_t>(v.T) * HD;
  p.o_token_stride = HD;
  static_cast<attn::VariantArgs&>(p) = attn::variant_args(opts);  // causal, window, alibi, softcap, ...
  attn::set_token_counts(p, opts, count_ptrs.data());
  p.scale = 1.0f / std::sqrt(static_cast<float>(v.D));
  p.bf16 = std::is_same_v<E, tu::bf16>;
  p.tf32 = tf32;
  p.dropout_p = v.dropout_state().p;
  p.dropout_key = v.dropout_state().key;
  attn::flash_attention_forward(p, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());

  attn::FlashAttentionBackwardParams bp;
  bp.fwd = p;
  bp.dO = dy.get();
  bp.do_batch_stride = static_cast<int64_t>(v.T) * HD;
  bp.do_token_stride = HD;
  bp.dq = dqkv.get();
  bp.dk = dqkv.get() + static_cast<size_t>(v.H) * v.D;
  bp.dv = dqkv.get() + static_cast<size_t>(v.H + v.Hkv) * v.D;
  bp.dq_batch_stride = bp.dk_batch_stride = bp.dv_batch_stride = static_cast<int64_t>(v.T) * W;
  bp.dq_token_stride = bp.dk_token_stride = bp.dv_token_stride = W;
  bp.deterministic = deterministic;
  tu::DevBuf<char> ws(attn::flash_attention_backward_workspace_bytes(bp));
  CUDA_CHECK(cudaMemset(ws.get(), 0xFF, ws.size()));
  attn::flash_attention_backward(bp, ws.get(), nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());

  Errors e;
  auto all = [](size_t) { return true; };
  e.o = rel_err(y.download(), r.y, all);
  e.lse = rel_err(lse.download(), r.lse, all);
  const tu::Vec g = dqkv.download();
  const size_t Wz = W, qe = static_cast<size_t>(v.H) * v.D, ke = qe + static_cast<size_t>(v.Hkv) * v.D;
  e.dq = rel_err(g, r.dqkv, [&](size_t i) { return i % Wz < qe; });
  e.dk = rel_err(g, r.dqkv, [&](size_t i) { return i % Wz >= qe && i % Wz < ke; });
  e.dv = rel_err(g, r.dqkv, [&](size_t i) { return i % Wz >= ke; });
  if (y_raw) {
    y_raw->resize(y.size());
    CUDA_CHECK(cudaMemcpy(y_raw->data(), y.get(), y.size() * sizeof(E), cudaMemcpyDeviceToHost));
  }
  if (dqkv_raw) {
    dqkv_raw->resize(dqkv.size());
    CUDA_CHECK(cudaMemcpy(dqkv_raw->data(), dqkv.get(), dqkv.size() * sizeof(E), cudaMemcpyDeviceToHost));
  }
  return e;
}

void check(const Variant& v, const char* path, const Errors& e, double tol) {
  std::printf("[variants] %-22s %-8s B=%d T=%-5d H=%d Hkv=%d D=%-3d  O %.2e lse %.2e dQ %.2e dK %.2e dV %.2e\n",
              v.name.c_str(), path, v.B, v.T, v.H, v.Hkv, v.D, e.o, e.lse, e.dq, e.dk, e.dv);
  EXPECT_LE(e.o, tol) << path << " O";
  EXPECT_LE(e.lse, tol) << path << " lse";
  EXPECT_LE(e.dq, tol) << path << " dQ";
  EXPECT_LE(e.dk, tol) << path << " dK";
  EXPECT_LE(e.dv, tol) << path << " dV";
}

class FlashVariants : public ::testing::TestWithParam<Variant> {};

TEST_P(FlashVariants, MatchesFloat64Reference) {
  SKIP_WITHOUT_GPU();
  const Variant v = GetParam();
  const uint64_t seed = std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32);
  SCOPED_TRACE("seed " + std::to_string(seed));
  const Reference r = make_reference(v, seed);
  check(v, "bf16", run_flash<tu::bf16>(v, r, false, nullptr), 1e-2);
  std::vector<tu::bf16> det1, det2;
  check(v, "bf16-det", run_flash<tu::bf16>(v, r, true, &det1), 1e-2);
  run_flash<tu::bf16>(v, r, true, &det2);
  EXPECT_EQ(0, std::memcmp(det1.data(), det2.data(), det1.size() * sizeof(tu::bf16)))
      << "deterministic backward differs between two runs";
  check(v, "fp32", run_flash<float>(v, r, false, nullptr), 1e-4);
  std::vector<float> fdet1, fdet2;
  check(v, "fp32-det", run_flash<float>(v, r, true, &fdet1), 1e-4);
  run_flash<float>(v, r, true, &fdet2);
  EXPECT_EQ(0, std::memcmp(fdet1.data(), fdet2.data(), fdet1.size() * sizeof(float)))
      << "fp32 deterministic backward differs between two runs";
  // the TF32 bound of tests/gpu/test_flash_attention.cu (kTf32Tol: 4u, u = 2^-11)
  check(v, "tf32", run_flash<float>(v, r, false, nullptr, nullptr, true), 4 * 0x1p-11);
}

std::vector<Variant> variants() {
  //            name                      B  T     H  Hkv D    causal window docs alibi softcap prefix dropout
  return {
      Variant{"window1", 2, 77, 4, 4, 64, true, 1},
      Variant{"window5_T1", 2, 1, 4, 2, 64, true, 5},
      Variant{"window5", 1, 1000, 4, 2, 128, true, 5},
      Variant{"window100", 1, 1025, 4, 1, 64, true, 100},
      Variant{"window100_D128", 2, 1000, 4, 2, 128, true, 100},
      Variant{"window1000", 1, 1025, 4, 4, 128, true, 1000},
      Variant{"window1000_D64", 1, 1025, 4, 2, 64, true, 1000},
      Variant{"window100_noncausal", 1, 1000, 4, 2, 64, false, 100},
      Variant{"docs", 2, 1025, 4, 2, 64, true, 0, 1},
      Variant{"docs_D128", 2, 1000, 4, 4, 128, true, 0, 2},
      Variant{"docs_T77", 3, 77, 4, 1, 64, true, 0, 1},
      Variant{"docs_noncausal", 2, 1025, 4, 2, 128, false, 0, 2},
      Variant{"alibi", 2, 1000, 4, 4, 64, true, 0, 0, true},
      Variant{"alibi_H6_D128", 1, 1025, 6, 2, 128, true, 0, 0, true},
      Variant{"alibi_noncausal", 2, 77, 4, 2, 64, false, 0, 0, true},
      Variant{"softcap", 1, 1025, 4, 2, 64, true, 0, 0, false, 2.0f},
      Variant{"softcap_D128", 2, 77, 4, 4, 128, false, 0, 0, false, 1.5f},
      Variant{"softcap_T1", 2, 1, 4, 1, 64, true, 0, 0, false, 2.0f},
      Variant{"window_alibi_softcap", 1, 1025, 4, 2, 64, true, 100, 0, true, 3.0f},
      // window + soft-capping with GQA at T = 77 and 1025, both head dims: the shapes the
      // compute-sanitizer runs take (gpu_check.sh sanitize)
      Variant{"window_softcap_T77", 2, 77, 4, 2, 64, true, 30, 0, false, 2.0f},
      Variant{"window_softcap_T77_D128", 1, 77, 6, 2, 128, true, 30, 0, false, 2.0f},
      Variant{"window_softcap_D128", 1, 1025, 4, 2, 128, true, 100, 0, false, 3.0f},
      Variant{"window_docs", 2, 1000, 4, 2, 128, true, 5, 1},
      Variant{"everything", 2, 1025, 4, 1, 64, true, 1000, 1, true, 2.5f},
      Variant{"everything_D128", 1, 1000, 6, 3, 128, true, 100, 2, true, 2.5f},
      Variant{"alibi_softcap_noncausal", 1, 1000, 4, 4, 128, false, 0, 0, true, 2.0f},
      Variant{"prefix_lm", 2, 1025, 4, 2, 64, true, 0, 0, false, 0.0f, 300},
      Variant{"prefix_lm_T77_mqa", 3, 77, 4, 1, 128, true, 0, 0, false, 0.0f, 40},
      Variant{"prefix_lm_longer_than_T", 1, 77, 4, 4, 64, true, 0, 0, false, 0.0f, 500},
      Variant{"prefix_lm_data", 2, 1000, 4, 2, 128, true, 0, 0, false, 0.0f, -1},
      Variant{"prefix_lm_data_docs_window", 2, 1025, 6, 3, 64, true, 200, 2, true, 2.0f, -1},
      // a non-causal window: every key block's query range starts at block 0, below its diagonal
      Variant{"window300_noncausal_D128", 1, 1025, 4, 2, 128, false, 300},
      // attention dropout with variants (the general kind's dropout kernels, atomic and deterministic)
      Variant{"dropout_window_alibi", 1, 1025, 4, 2, 64, true, 100, 0, true, 0.0f, 0, 0.1f},
      Variant{"dropout_docs_softcap_D128", 2, 1025, 4, 1, 128, true, 0, 1, false, 3.0f, 0, 0.2f},
      Variant{"dropout_prefix", 1, 1000, 4, 2, 64, true, 0, 0, false, 0.0f, 300, 0.1f},
  };
}

// Prefix FlashVariants: every test of this file matches --gtest_filter='FlashVariants*'.
INSTANTIATE_TEST_SUITE_P(FlashVariants, FlashVariants, ::testing::ValuesIn(variants()),
                         [](const ::testing::TestParamInfo<Variant>& i) { return i.param.name; });

// The general kernels (chosen whenever a window is set) with a window that masks nothing
// (window = T) against the plain causal / full kernels (window 0): the same tiles and the same
// arithmetic, so O and the deterministic gradients must agree bit for bit. Catches the two code
// paths (kernels/flash_attention_mask.cuh: MaskKind) drifting apart, e.g. a tile range or a
// per-element mask of the general path that differs from the plain one. (The deterministic
// backward of plain causal / full is itself the general kernel with every variant off, so there
// the check is of the forward's two kernels and of the general backward's window = T path.) In
// the atomic mode dK and dV (summed in registers in a fixed order) must agree bit for bit too:
// the sm90 backward's plain and general instantiations; dQ's bulk reductions land in any order.

TEST(FlashVariantsGeneralVsPlain, WindowCoveringAllIsBitwiseThePlainKernel) {
  SKIP_WITHOUT_GPU();
  const uint64_t seed = std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32);
  SCOPED_TRACE("seed " + std::to_string(seed));
  for (const bool causal : {true, false})
    for (const int D : {64, 128}) {
      const Variant plain{causal ? "plain_causal" : "plain_full", 2, 333, 4, 2, D, causal};
      Variant general = plain;
      general.name += "_window_T";
      general.window = plain.T;
      const Reference r = make_reference(plain, seed + D + causal);
      std::vector<tu::bf16> y_plain, y_general, g_plain, g_general;
      check(plain, "bf16-det", run_flash<tu::bf16>(plain, r, true, &g_plain, &y_plain), 1e-2);
      check(general, "bf16-det", run_flash<tu::bf16>(general, r, true, &g_general, &y_general), 1e-2);
      EXPECT_EQ(0, std::memcmp(y_plain.data(), y_general.data(), y_plain.size() * sizeof(tu::bf16)))
          << "O of the general kernel differs from the plain one, D " << D << (causal ? " causal" : " full");
      EXPECT_EQ(0, std::memcmp(g_plain.data(), g_general.data(), g_plain.size() * sizeof(tu::bf16)))
          << "dQKV of the general kernels differs from the plain ones, D " << D << (causal ? " causal" : " full");
      std::vector<tu::bf16> a_plain, a_general;
      check(plain, "bf16", run_flash<tu::bf16>(plain, r, false, &a_plain), 1e-2);
      check(general, "bf16", run_flash<tu::bf16>(general, r, false, &a_general), 1e-2);
      const size_t W = plain.width(), qe = static_cast<size_t>(plain.H) * plain.D;
      size_t differ = 0;
      for (size_t i = 0; i < a_plain.size(); ++i)
        if (i % W >= qe && std::memcmp(&a_plain[i], &a_general[i], sizeof(tu::bf16)) != 0) ++differ;
      EXPECT_EQ(differ, 0u) << "atomic-mode dK / dV of the general kernel differ from the plain one, D " << D
                            << (causal ? " causal" : " full");
    }
}

// kern::document_ids against the CPU rule doc(t) = #eot among inputs[0..t-1], on rows longer
// than one chunk per thread (T > 256) and shorter, with eot at the first and last positions.
TEST(FlashVariantsDocumentIds, MatchTheCpuRule) {
  SKIP_WITHOUT_GPU();
  for (int T : {1, 77, 256, 1000, 5000}) {
    const int B = 3;
    std::mt19937_64 g(T);
    std::vector<int32_t> tok(static_cast<size_t>(B) * T);
    for (auto& t : tok) t = g() % 7 == 0 ? kEot : 5;
    tok[0] = kEot, tok.back() = kEot;
    tu::DevBuf<int32_t> dtok(tok), ddoc(tok.size());
    CUDA_CHECK(cudaMemset(ddoc.get(), 0xFF, tok.size() * sizeof(int32_t)));
    attn::kern::document_ids(ddoc.get(), dtok.get(), B, T, kEot, nullptr);
    std::vector<int32_t> got(tok.size());
    CUDA_CHECK(cudaMemcpy(got.data(), ddoc.get(), got.size() * sizeof(int32_t), cudaMemcpyDeviceToHost));
    for (int b = 0; b < B; ++b) {
      int d = 0;
      for (int t = 0; t < T; ++t) {
        ASSERT_EQ(got[static_cast<size_t>(b) * T + t], d) << "T " << T << " b " << b << " t " << t;
        d += tok[static_cast<size_t>(b) * T + t] == kEot;
      }
    }
  }
}

TEST(FlashVariantsErrors, RejectsBadOptions) {
  SKIP_WITHOUT_GPU();
  attn::FlashAttentionParams p;
  alignas(16) static float dummy[64];
  p.q = p.k = p.v = p.o = dummy;
  p.lse = dummy;
  p.B = 1, p.T = 4, p.H = 2, p.Hkv = 1, p.D = 64;
  p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = p.o_batch_stride = 4 * 4 * 128;
  p.q_token_stride = p.k_token_stride = p.v_token_stride = p.o_token_stride = 4 * 128;
  p.scale = 0.1f;
  // (window and softcap values: validated once, by attention/registry.h)
  p.doc_ids = reinterpret_cast<const int32_t*>(reinterpret_cast<const char*>(dummy) + 2);
  EXPECT_THROW(attn::flash_attention_forward(p, nullptr), attn::Error);
}

}  // namespace

// ---- the whole model: CUDA backend (flash + masks / modifications) vs the CPU backend ----------
#if __has_include("model/gpt_cpu.h")
#include "backend/backend.h"
#include "backend/cuda_backend.h"
#include "backend_parity.h"

namespace {

attn::AttentionOptions model_attention(bool docs) {
  attn::AttentionOptions a;
  a.causal = true;
  if (docs) {
    a.document_mask = true;
    a.eot_token = kEot;
  } else {
    a.sliding_window = 19;
    a.alibi = true;
    a.softcap = 3.0f;
  }
  return a;
}

std::unique_ptr<attn::Backend> model_backend(const std::string& device, const std::string& precision, bool docs) {
  attn::GPTConfig c;
  c.vocab_size = 101, c.padded_vocab_size = 128, c.block_size = 160;
  c.n_layer = 2, c.n_head = 4, c.n_kv_head = 2, c.n_embd = 256;  // head_dim 64
  c.dropout = 0.1f;  // both backends draw the same masks, attention dropout too
  c.attn_dropout = 0.1f;
  attn::BackendOptions o;
  o.device = device, o.precision = precision, o.max_batch = 3, o.max_seq = 150, o.threads = 2;
  o.attention = model_attention(docs);
  o.attention.impl = device == "cpu" ? "naive" : "flash";
  return attn::make_backend(c, o);
}

class FlashVariantsBackendVsCpu : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};
INSTANTIATE_TEST_SUITE_P(FlashVariants, FlashVariantsBackendVsCpu,
                         ::testing::Combine(::testing::Values("fp32", "bf16"), ::testing::Bool()),
                         [](const auto& i) {
                           return std::get<0>(i.param) + (std::get<1>(i.param) ? "_document_mask" : "_window_alibi_softcap");
                         });

TEST_P(FlashVariantsBackendVsCpu, LossAndGradients) {
  SKIP_WITHOUT_GPU();
  const auto [prec, docs] = GetParam();
  const std::string what = prec + (docs ? " docs" : " window+alibi+softcap");
  const double tol = prec == "fp32" ? 1e-4 : 2e-2;
  auto cpu = model_backend("cpu", "fp32", docs);
  auto gpu = model_backend("cuda", prec, docs);
  tu::set_same_initial_params(*cpu, *gpu);

  const int B = 3, T = 150;  // > 128: two flash tiles
  std::mt19937_64 g(5);
  std::vector<int32_t> x(B * T), y(B * T);
  for (auto& v : x) v = static_cast<int32_t>(2 + g() % 99);
  for (auto& v : y) v = static_cast<int32_t>(g() % 101);
  // documents: boundaries on the tile edge (eot at 63 / 127), inside tiles, row 2 one document
  for (int t : {10, 63, 64, 100, 127, 140}) x[t] = kEot;
  for (int t : {0, 1, 77}) x[T + t] = kEot;
  tu::expect_loss_and_grads_match(*cpu, *gpu, attn::Batch{x.data(), y.data(), B, T}, attn::StepContext{7, 3, 0, true},
                                  tol, what);
}

}  // namespace
#endif
