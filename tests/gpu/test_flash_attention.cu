// Flash attention kernels (kernels/flash_attention.h) against the float64 CPU reference
// (the CPU backend's naive attention, attention/cpu_attention.h), on fresh random inputs read from a packed qkv buffer
// through strides, outputs written into a padded y and into dqkv.
//
// Metric: ||x - ref|| / ||ref|| over the whole tensor (O, lse, dQ, dK, dV).
// Tolerances: bf16 path <= 1e-2, fp32 path (3xTF32 tensor cores) <= 1e-4, tf32 path (1xTF32)
// <= kTf32Tol below.
//
// Measured on an H100 (PyTorch 2.11 SDPA flash backend on the same kind of inputs: N(0,1),
// B=2 H=4 T=1000, scripts/bench_sdpa.py --accuracy), bf16:
//            ours (D=64/128, full | causal)        PyTorch flash
//   O        2.2e-3 | 2.0e-3                       2.2e-3 | 2.0e-3
//   dQ       2.4e-3 | 2.4e-3 .. 2.5e-3             2.4e-3 | 2.5e-3
//   dK       2.4e-3 | 2.4e-3                       2.3e-3 | 2.5e-3
//   dV       2.4e-3 | 2.3e-3                       2.3e-3 | 2.3e-3
// i.e. ~1.0x PyTorch's error (the issue asks <= 1.5x). Worst over all cases here: O 2.3e-3,
// dQ / dK 3.0e-3 (T = 17), dV 2.4e-3, lse 2e-7; the fp32 path's CUDA-core kernel before issue 20
// <= 1.3e-6 (<= 2e-5 at T = 1, where dQ and dK are rounding noise around 0, see rel_err); its
// 3xTF32 kernel passes the same 1e-4 (`scripts/gpu_check.sh fp32flash` prints the worst per path).
// Every output buffer is poisoned (NaN) before each run: a non-finite value fails the test,
// and the padding of y (token stride H*D + 8) must come back untouched.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/flash_attention.h"
#include "kernels/flash_attention_common.cuh"
#include "attention/cpu_attention.h"
#include "test_util.h"

namespace {

using attn::FlashAttentionBackwardParams;
using attn::FlashAttentionParams;
// The attention problem of a test case; the float64 reference is the CPU backend's naive
// attention (attention/cpu_attention.h), which also gives the logsumexp.
struct AttnShape {
  int B = 1, T = 1, H = 1, Hkv = 1, D = 64;
  bool causal = false;
  attn::DropoutState dropout;  // attention dropout: p and key (0: off)
  int width() const { return (H + 2 * Hkv) * D; }
};

double bf16_round(double x) { return static_cast<double>(__bfloat162float(__float2bfloat16(static_cast<float>(x)))); }

// Device buffer of E (float or __nv_bfloat16), uploaded from / downloaded to doubles.
template <typename E>
struct DevBuf {
  E* ptr = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t n_) : n(n_) {
    if (cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(E)) != cudaSuccess) ptr = nullptr;
  }
  ~DevBuf() { cudaFree(ptr); }
  DevBuf(const DevBuf&) = delete;
  void upload(const std::vector<double>& x) {
    std::vector<E> h(n);
    for (size_t i = 0; i < n; ++i) h[i] = static_cast<E>(static_cast<float>(x[i]));
    cudaMemcpy(ptr, h.data(), n * sizeof(E), cudaMemcpyHostToDevice);
  }
  void poison() { cudaMemset(ptr, 0xFF, n * sizeof(E)); }  // NaN in bf16 and fp32
  std::vector<E> raw() const {
    std::vector<E> h(n);
    cudaMemcpy(h.data(), ptr, n * sizeof(E), cudaMemcpyDeviceToHost);
    return h;
  }
  std::vector<double> download() const {
    std::vector<E> h = raw();
    std::vector<double> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = static_cast<double>(static_cast<float>(h[i]));
    return x;
  }
};

struct Err {
  double rel = 0.0;
  bool finite = true;
};

// Relative L2 error of the elements selected by sel(i) (all when null).
template <typename Sel>
Err rel_err(const std::vector<double>& x, const std::vector<double>& ref, Sel sel) {
  double num = 0.0, den = 0.0;
  size_t cnt = 0;
  Err e;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!sel(i)) continue;
    if (!std::isfinite(x[i])) e.finite = false;
    num += (x[i] - ref[i]) * (x[i] - ref[i]);
    den += ref[i] * ref[i];
    ++cnt;
  }
  // Floor: a reference that is (nearly) all zero is compared absolutely (RMS error <= tol/100).
  // At T = 1, dS = P (dP - rowsum(dO*O)) is exactly 0 in exact arithmetic, and any fp32
  // evaluation leaves rounding noise of ~1e-7 in dQ and dK.
  const double floor = 1e-2 * std::sqrt(static_cast<double>(std::max<size_t>(cnt, 1)));
  e.rel = std::sqrt(num) / std::max(std::sqrt(den), floor);
  if (!e.finite) e.rel = INFINITY;
  return e;
}

struct RefResult {
  std::vector<double> qkv, dy, y, lse, dqkv;
};

RefResult make_reference(const AttnShape& s, uint64_t seed) {
  RefResult r;
  const size_t n_qkv = (size_t)s.B * s.T * s.width(), n_y = (size_t)s.B * s.T * s.H * s.D;
  r.qkv.resize(n_qkv);
  r.dy.resize(n_y);
  r.y.resize(n_y);
  r.lse.resize((size_t)s.B * s.H * s.T);
  r.dqkv.resize(n_qkv);
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  // bf16-representable inputs, so the bf16 and fp32 paths see the same values.
  for (auto& x : r.qkv) x = bf16_round(nd(gen));
  for (auto& x : r.dy) x = bf16_round(nd(gen));
  const attn::AttentionShape shape{s.B, s.T, s.H, s.Hkv, s.D};
  attn::AttentionOptions opts;
  opts.causal = s.causal;
  std::vector<double> P((size_t)s.B * s.H * s.T * s.T);
  attn::naive_attention_forward(r.y.data(), P.data(), r.qkv.data(), nullptr, shape, opts, s.dropout, r.lse.data());
  attn::naive_attention_backward(r.dqkv.data(), r.dy.data(), r.qkv.data(), P.data(), nullptr, shape, opts,
                                 s.dropout);
  return r;
}

struct RunErrors {
  Err o, lse, dq, dk, dv;
  bool pad_ok = true;
};

// Runs forward + backward on the GPU in precision E; returns errors vs the reference and the
// raw dqkv of the backward (for bitwise comparisons).
template <typename E>
RunErrors run_case(const AttnShape& s, const RefResult& r, bool deterministic, std::vector<E>* dqkv_raw,
                   bool tf32 = false) {
  RunErrors out;
  const int W = s.width(), HD = s.H * s.D, OS = HD + 8;  // padded y token stride
  DevBuf<E> qkv((size_t)s.B * s.T * W), y((size_t)s.B * s.T * OS), dy((size_t)s.B * s.T * HD),
      dqkv((size_t)s.B * s.T * W);
  DevBuf<float> lse((size_t)s.B * s.H * s.T);
  qkv.upload(r.qkv);
  dy.upload(r.dy);
  y.poison();
  lse.poison();
  dqkv.poison();

  FlashAttentionParams p;
  p.q = qkv.ptr;
  p.k = qkv.ptr + (size_t)s.H * s.D;
  p.v = qkv.ptr + (size_t)(s.H + s.Hkv) * s.D;
  p.o = y.ptr;
  p.lse = lse.ptr;
  p.B = s.B, p.T = s.T, p.H = s.H, p.Hkv = s.Hkv, p.D = s.D;
  p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = (int64_t)s.T * W;
  p.q_token_stride = p.k_token_stride = p.v_token_stride = W;
  p.o_batch_stride = (int64_t)s.T * OS;
  p.o_token_stride = OS;
  p.causal = s.causal;
  p.scale = 1.0f / std::sqrt(static_cast<float>(s.D));
  p.bf16 = std::is_same_v<E, __nv_bfloat16>;
  p.tf32 = tf32;
  p.dropout_p = s.dropout.p;
  p.dropout_key = s.dropout.key;
  attn::flash_attention_forward(p, nullptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  FlashAttentionBackwardParams bp;
  bp.fwd = p;
  bp.dO = dy.ptr;
  bp.do_batch_stride = (int64_t)s.T * HD;
  bp.do_token_stride = HD;
  bp.dq = dqkv.ptr;
  bp.dk = dqkv.ptr + (size_t)s.H * s.D;
  bp.dv = dqkv.ptr + (size_t)(s.H + s.Hkv) * s.D;
  bp.dq_batch_stride = bp.dk_batch_stride = bp.dv_batch_stride = (int64_t)s.T * W;
  bp.dq_token_stride = bp.dk_token_stride = bp.dv_token_stride = W;
  bp.deterministic = deterministic;
  const size_t ws_bytes = attn::flash_attention_backward_workspace_bytes(bp);
  void* ws = nullptr;
  EXPECT_EQ(cudaMalloc(&ws, ws_bytes), cudaSuccess);
  cudaMemset(ws, 0xFF, ws_bytes);
  attn::flash_attention_backward(bp, ws, nullptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  cudaFree(ws);

  // y: compare the H*D real columns, check the padding is untouched.
  std::vector<E> yraw = y.raw();
  std::vector<double> yv((size_t)s.B * s.T * HD);
  for (size_t t = 0; t < (size_t)s.B * s.T; ++t) {
    for (int c = 0; c < HD; ++c) yv[t * HD + c] = static_cast<double>(static_cast<float>(yraw[t * OS + c]));
    for (int c = HD; c < OS; ++c) {
      unsigned char bytes[sizeof(E)];
      std::memcpy(bytes, &yraw[t * OS + c], sizeof(E));
      for (unsigned char bt : bytes) out.pad_ok &= bt == 0xFF;
    }
  }
  auto all = [](size_t) { return true; };
  out.o = rel_err(yv, r.y, all);
  out.lse = rel_err(lse.download(), r.lse, all);
  const std::vector<double> g = dqkv.download();
  const size_t Wz = (size_t)W;
  const size_t qe = (size_t)s.H * s.D, ke = qe + (size_t)s.Hkv * s.D;
  out.dq = rel_err(g, r.dqkv, [&](size_t i) { return i % Wz < qe; });
  out.dk = rel_err(g, r.dqkv, [&](size_t i) { return i % Wz >= qe && i % Wz < ke; });
  out.dv = rel_err(g, r.dqkv, [&](size_t i) { return i % Wz >= ke; });
  if (dqkv_raw) *dqkv_raw = dqkv.raw();
  return out;
}

struct CaseParam {
  int T, H, Hkv, D;
  bool causal;
};

std::string case_name(const CaseParam& c) {
  return "T" + std::to_string(c.T) + "_H" + std::to_string(c.H) + "_Hkv" + std::to_string(c.Hkv) + "_D" +
         std::to_string(c.D) + (c.causal ? "_causal" : "_full");
}

class FlashAttention : public ::testing::TestWithParam<CaseParam> {};

// The tf32 path's bound, from TF32's 10-bit mantissa (unit roundoff u = 2^-11). The inputs here
// are bf16 values, exact in TF32, so S = Q K^T and dP = dO V^T carry fp32 errors only; the
// operands rounded are P (O = P V, dV = P^T dO) and dS (dQ = dS K, dK = dS^T Q), each element
// with relative error <= u. Normwise over a sum of such products with independent roundings
// (uniform in [-u, u], standard deviation u / sqrt(3)) the error is ~0.6u, at most u per output
// when the terms do not cancel; dS itself adds the fp32 error of dP - Dsum. 4u leaves room for
// the cancellation in dQ, dK (sums of dS of both signs).
constexpr double kTf32U = 0x1p-11;
constexpr double kTf32Tol = 4 * kTf32U;

void report(const char* tag, const AttnShape& s, const RunErrors& e) {
  std::printf("[flash] %-9s B=%d T=%-5d H=%d Hkv=%d D=%-3d %s  O %.2e lse %.2e dQ %.2e dK %.2e dV %.2e\n", tag,
              s.B, s.T, s.H, s.Hkv, s.D, s.causal ? "causal" : "full  ", e.o.rel, e.lse.rel, e.dq.rel, e.dk.rel,
              e.dv.rel);
}

void expect_within(const RunErrors& e, double tol, const char* tag) {
  EXPECT_TRUE(e.pad_ok) << tag << ": y padding overwritten";
  EXPECT_LE(e.o.rel, tol) << tag << " O";
  EXPECT_LE(e.lse.rel, tol) << tag << " lse";
  EXPECT_LE(e.dq.rel, tol) << tag << " dQ";
  EXPECT_LE(e.dk.rel, tol) << tag << " dK";
  EXPECT_LE(e.dv.rel, tol) << tag << " dV";
}

TEST_P(FlashAttention, MatchesFloat64Reference) {
  SKIP_WITHOUT_GPU();
  const CaseParam c = GetParam();
  AttnShape s;
  s.B = c.Hkv == c.H ? 2 : (c.T >= 1000 ? 1 : 3);
  s.T = c.T, s.H = c.H, s.Hkv = c.Hkv, s.D = c.D, s.causal = c.causal;
  const uint64_t seed = std::random_device{}() ^ ((uint64_t)std::random_device{}() << 32);
  SCOPED_TRACE("seed " + std::to_string(seed));
  const RefResult r = make_reference(s, seed);

  std::vector<__nv_bfloat16> det1, det2;
  const RunErrors bf = run_case<__nv_bfloat16>(s, r, false, nullptr);
  report("bf16", s, bf);
  expect_within(bf, 1e-2, "bf16");
  const RunErrors bd = run_case<__nv_bfloat16>(s, r, true, &det1);
  report("bf16-det", s, bd);
  expect_within(bd, 1e-2, "bf16 deterministic");
  run_case<__nv_bfloat16>(s, r, true, &det2);
  EXPECT_EQ(0, std::memcmp(det1.data(), det2.data(), det1.size() * sizeof(__nv_bfloat16)))
      << "deterministic backward differs between two runs";
  const RunErrors f = run_case<float>(s, r, false, nullptr);
  report("fp32", s, f);
  expect_within(f, 1e-4, "fp32");
  std::vector<float> fdet1, fdet2;
  const RunErrors fd = run_case<float>(s, r, true, &fdet1);
  report("fp32-det", s, fd);
  expect_within(fd, 1e-4, "fp32 deterministic");
  run_case<float>(s, r, true, &fdet2);
  EXPECT_EQ(0, std::memcmp(fdet1.data(), fdet2.data(), fdet1.size() * sizeof(float)))
      << "fp32 deterministic backward differs between two runs";
  const RunErrors t = run_case<float>(s, r, false, nullptr, true);
  report("tf32", s, t);
  expect_within(t, kTf32Tol, "tf32");
  // TF32 really on: P (in O = P V) is rounded to 10 bits, ~0.6u normwise; at T = 1, P = 1 is exact.
  if (s.T >= 77) EXPECT_GE(t.o.rel, kTf32U / 16) << "tf32 O as accurate as fp32: 1xTF32 is off";
}

// T = 161: one row past two 80-row query blocks (the backward's D = 128 tile) and 1.26 key blocks.
std::vector<CaseParam> all_cases() {
  std::vector<CaseParam> v;
  for (int D : {64, 128})
    for (bool causal : {false, true})
      for (int T : {1, 17, 77, 161, 1000, 1025})
        for (auto hk : {std::pair{4, 4}, std::pair{4, 2}, std::pair{4, 1}})
          v.push_back({T, hk.first, hk.second, D, causal});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Cases, FlashAttention, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<CaseParam>& i) { return case_name(i.param); });

// Attention dropout inside the kernels: the float64 reference draws the same mask (the rule of
// model/dropout_sites.h), so the bounds are those without dropout; every kernel (bf16, bf16
// deterministic, fp32, fp32 deterministic, tf32) at awkward T, MHA/GQA/MQA, both head dims.
// A run with another key must miss the reference by far: the comparison can fail.
struct DropoutCase {
  int T, Hkv, D;
  bool causal;
  float p;
};
class FlashDropout : public ::testing::TestWithParam<DropoutCase> {};

TEST_P(FlashDropout, MatchesFloat64ReferenceWithTheSameMask) {
  SKIP_WITHOUT_GPU();
  const DropoutCase c = GetParam();
  AttnShape s;
  s.B = c.T >= 1000 ? 1 : 2;
  s.T = c.T, s.H = 4, s.Hkv = c.Hkv, s.D = c.D, s.causal = c.causal;
  const uint64_t seed = std::random_device{}() ^ ((uint64_t)std::random_device{}() << 32);
  SCOPED_TRACE("seed " + std::to_string(seed));
  s.dropout = attn::DropoutState{c.p, attn::mix64(seed)};
  const RefResult r = make_reference(s, seed);
  // At T = 1, dQ and dK are exactly 0 (dS = P (dP - Dsum) with P = 1 and Dsum = dO . O = dP), so
  // rel_err compares them absolutely (RMS error / 1e-2, see its floor). Without dropout O = V
  // exactly and the bf16 kernels leave ~0 there; with dropout O = V / (1 - p) is rounded to bf16
  // (TF32 in tf32) before Dsum = dO . O is formed, so dS keeps that rounding: RMS ~2e-3 measured
  // on the H200. Those two then get an absolute RMS bound of 1e-2 (rel <= 1): far below the
  // O(0.1-1) gradients of any longer row.
  auto expect_dropout = [&](RunErrors e, double tol, const char* tag) {
    if (c.T == 1) {
      EXPECT_LE(e.dq.rel, 1.0) << tag << " dQ (T = 1: RMS error / 1e-2)";
      EXPECT_LE(e.dk.rel, 1.0) << tag << " dK (T = 1: RMS error / 1e-2)";
      e.dq.rel = e.dk.rel = 0.0;
    }
    expect_within(e, tol, tag);
  };

  std::vector<__nv_bfloat16> det1, det2;
  const RunErrors bf = run_case<__nv_bfloat16>(s, r, false, nullptr);
  report("bf16-drop", s, bf);
  expect_dropout(bf, 1e-2, "bf16 dropout");
  const RunErrors bd = run_case<__nv_bfloat16>(s, r, true, &det1);
  report("bf16-ddet", s, bd);
  expect_dropout(bd, 1e-2, "bf16 deterministic dropout");
  run_case<__nv_bfloat16>(s, r, true, &det2);
  EXPECT_EQ(0, std::memcmp(det1.data(), det2.data(), det1.size() * sizeof(__nv_bfloat16)))
      << "deterministic backward with dropout differs between two runs";
  const RunErrors f = run_case<float>(s, r, false, nullptr);
  report("fp32-drop", s, f);
  expect_within(f, 1e-4, "fp32 dropout");
  const RunErrors fd = run_case<float>(s, r, true, nullptr);
  expect_within(fd, 1e-4, "fp32 deterministic dropout");
  const RunErrors t = run_case<float>(s, r, false, nullptr, true);
  report("tf32-drop", s, t);
  expect_dropout(t, kTf32Tol, "tf32 dropout");

  if (c.T >= 17) {  // another mask: far from the reference (O, dV), so a wrong index would fail
    AttnShape other = s;
    other.dropout.key ^= 1;
    const RunErrors w = run_case<__nv_bfloat16>(other, r, false, nullptr);
    EXPECT_GT(w.o.rel, 0.05) << "O with another dropout key still matches the reference";
    EXPECT_GT(w.dv.rel, 0.05) << "dV with another dropout key still matches the reference";
  }
}

std::vector<DropoutCase> dropout_cases() {
  std::vector<DropoutCase> v;
  int i = 0;
  for (int D : {64, 128})
    for (bool causal : {false, true})
      for (int T : {1, 17, 77, 1025})
        for (int Hkv : {4, 2, 1}) v.push_back({T, Hkv, D, causal, (i++ % 2) ? 0.2f : 0.1f});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Cases, FlashDropout, ::testing::ValuesIn(dropout_cases()),
                         [](const ::testing::TestParamInfo<DropoutCase>& i) {
                           const DropoutCase& c = i.param;
                           return "T" + std::to_string(c.T) + "_Hkv" + std::to_string(c.Hkv) + "_D" +
                                  std::to_string(c.D) + (c.causal ? "_causal" : "_full") + "_p" +
                                  std::to_string(static_cast<int>(c.p * 10 + 0.5f));
                         });

// Larger problem, deterministic mode: two backward runs bitwise equal; atomic mode close to it.
TEST(FlashAttentionDeterminism, LargeCausalGqaBitwise) {
  SKIP_WITHOUT_GPU();
  AttnShape s;
  s.B = 2, s.T = 2048 + 33, s.H = 8, s.Hkv = 2, s.D = 128, s.causal = true;
  RefResult r;  // inputs only, no reference
  std::mt19937_64 gen(std::random_device{}());
  std::normal_distribution<double> nd(0.0, 1.0);
  r.qkv.resize((size_t)s.B * s.T * s.width());
  r.dy.resize((size_t)s.B * s.T * s.H * s.D);
  for (auto& x : r.qkv) x = nd(gen);
  for (auto& x : r.dy) x = nd(gen);
  r.y.assign(r.dy.size(), 0.0);
  r.lse.assign((size_t)s.B * s.H * s.T, 0.0);
  r.dqkv.assign(r.qkv.size(), 0.0);
  std::vector<__nv_bfloat16> a, b, c;
  run_case<__nv_bfloat16>(s, r, true, &a);
  run_case<__nv_bfloat16>(s, r, true, &b);
  run_case<__nv_bfloat16>(s, r, false, &c);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(__nv_bfloat16)));
  std::vector<double> da(a.size()), dc(c.size());
  for (size_t i = 0; i < a.size(); ++i) da[i] = __bfloat162float(a[i]), dc[i] = __bfloat162float(c[i]);
  const Err e = rel_err(dc, da, [](size_t) { return true; });
  std::printf("[flash] deterministic vs atomic dqkv rel diff %.2e\n", e.rel);
  EXPECT_LE(e.rel, 1e-2);
}

// More query tiles than SMs (B=2, H=12, T=777: 7 x 12 x 2 = 168 tiles of 128 rows), so the
// persistent forward runs several tiles per block: its Q barrier and K/V ring carry their phases
// from tile to tile. MQA (12 query heads on 1 kv head) and a T that no tile size divides (TMA
// fills the rows past T with zeros).
TEST(FlashAttentionPersistent, SeveralTilesPerBlockMatchReference) {
  SKIP_WITHOUT_GPU();
  for (const auto& [D, causal] : {std::pair{64, true}, std::pair{128, false}}) {
    AttnShape s;
    s.B = 2, s.T = 777, s.H = 12, s.Hkv = 1, s.D = D, s.causal = causal;
    const uint64_t seed = std::random_device{}() ^ ((uint64_t)std::random_device{}() << 32);
    SCOPED_TRACE("seed " + std::to_string(seed));
    const RefResult r = make_reference(s, seed);
    const RunErrors bf = run_case<__nv_bfloat16>(s, r, false, nullptr);
    report("bf16", s, bf);
    expect_within(bf, 1e-2, "bf16 several tiles per block");
  }
}

// Long sequences: 33 key blocks of 128 (the last one a single key), many query blocks per key
// block, so the sm90 backward's Q / dO ring wraps its barrier phases many times, in the atomic
// (sm90) and deterministic (general kernels) modes; MQA causal (D = 64) and GQA full (D = 128).
TEST(FlashAttentionBwdKernels, LongSequenceMatchesReference) {
  SKIP_WITHOUT_GPU();
  struct Long {
    int H, Hkv, D;
    bool causal;
  };
  for (const Long& c : {Long{4, 1, 64, true}, Long{4, 2, 128, false}}) {
    AttnShape s;
    s.B = 1, s.T = 4097, s.H = c.H, s.Hkv = c.Hkv, s.D = c.D, s.causal = c.causal;
    const uint64_t seed = std::random_device{}() ^ ((uint64_t)std::random_device{}() << 32);
    SCOPED_TRACE("seed " + std::to_string(seed));
    const RefResult r = make_reference(s, seed);
    for (const bool deterministic : {false, true}) {
      const RunErrors e = run_case<__nv_bfloat16>(s, r, deterministic, nullptr);
      report(deterministic ? "bf16-det" : "bf16", s, e);
      expect_within(e, 1e-2, deterministic ? "bf16 deterministic long" : "bf16 long");
    }
  }
}

TEST(FlashAttentionErrors, RejectsBadShapesAndStrides) {
  SKIP_WITHOUT_GPU();
  FlashAttentionParams p;
  alignas(16) static float dummy[64];
  p.q = p.k = p.v = dummy;
  p.o = dummy;
  p.lse = dummy;
  p.B = 1, p.T = 4, p.H = 2, p.Hkv = 1, p.D = 96;
  p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = p.o_batch_stride = 4 * 4 * 128;
  p.q_token_stride = p.k_token_stride = p.v_token_stride = p.o_token_stride = 4 * 128;
  p.scale = 0.1f;
  EXPECT_THROW(attn::flash_attention_forward(p, nullptr), attn::Error);  // D = 96
  p.D = 64;
  p.q_token_stride = 4 * 128 + 3;  // not a multiple of 16 bytes
  EXPECT_THROW(attn::flash_attention_forward(p, nullptr), attn::Error);
  p.q_token_stride = 4 * 128;
  p.Hkv = 3;  // 2 % 3 != 0
  EXPECT_THROW(attn::flash_attention_forward(p, nullptr), attn::Error);
  p.Hkv = 1;
  p.q = reinterpret_cast<const char*>(dummy) + 2;  // misaligned
  EXPECT_THROW(attn::flash_attention_forward(p, nullptr), attn::Error);
  p.q = dummy;
  p.tf32 = true;  // TF32 products of bf16 inputs
  EXPECT_THROW(attn::flash_attention_forward(p, nullptr), attn::Error);
}

// The order the forward's and backward's blocks take their work in (host code, no GPU): every
// (rank, pair) item exactly once; groups of pairs_per_group pairs in order, ranks slowest within a
// group; one group of all pairs is the plain order (rank = L / n_pairs, pair = L % n_pairs).
TEST(FlashAttentionWorkOrder, GroupedOrderCoversEveryItemOnceGroupByGroup) {
  for (int n_ranks : {1, 2, 16, 17, 129})
    for (int n_pairs : {1, 3, 8, 128, 133})
      for (int per_group : {1, 2, 7, 8, 132, 1000}) {
        const int ppg = std::min(per_group, n_pairs);  // the hosts clamp to [1, n_pairs]
        SCOPED_TRACE(std::to_string(n_ranks) + " ranks, " + std::to_string(n_pairs) + " pairs, " +
                     std::to_string(ppg) + " per group");
        std::vector<int> seen((size_t)n_ranks * n_pairs, 0);
        int last_group = 0, last_rank = 0;
        for (int L = 0; L < n_ranks * n_pairs; ++L) {
          const attn::flash::GroupedOrder o(L, n_ranks, n_pairs, ppg);
          ASSERT_TRUE(o.rank >= 0 && o.rank < n_ranks && o.pair >= 0 && o.pair < n_pairs) << "L=" << L;
          ++seen[(size_t)o.pair * n_ranks + o.rank];
          const int group = o.pair / ppg;
          ASSERT_GE(group, last_group) << "L=" << L;
          if (group == last_group) ASSERT_GE(o.rank, last_rank) << "L=" << L;
          last_group = group;
          last_rank = o.rank;
          if (ppg == n_pairs) {
            ASSERT_EQ(o.rank, L / n_pairs);
            ASSERT_EQ(o.pair, L % n_pairs);
          }
        }
        for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], 1) << "item " << i;
      }
}

}  // namespace
