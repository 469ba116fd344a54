// The decode-step GEMV (kernels/gemv.h) against a float64 CPU reference, on fresh random
// inputs at sizes that are no multiple of the kernel's tiles (M = 1..8, K = 8, 40, 768 + 8,
// 3072 + 8, N = 1, 13, 37, 776, 2304, 50257; the load plans): plain, bias, layernorm prologue, GELU, residual in place, fp32
// logits with the fused argmax (also replayed from a CUDA graph), the bf16 cache append, and
// the refusals (which must leave no CUDA error behind).
#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "kernels/gemv.h"
#include "kernels/generation.h"
#include "test_util.h"

namespace {

using namespace attn;
using tu::bf16;
using tu::Vec;

struct Case {
  int M, N, K;
  bool bias = false, ln = false, gelu = false, residual = false;
  double a_offset = 0.3;  // the mean of a's entries (uniform in a_offset +- 1)
};

// float64 reference of gemv.h's math; a' is rounded to bf16 as the kernel stores it.
Vec reference(const Case& c, const Vec& a, const Vec& w, const Vec& bias, const Vec& lw, const Vec& lb, const Vec& res) {
  Vec ap = a;
  if (c.ln) {
    for (int m = 0; m < c.M; ++m) {
      double mean = 0.0, var = 0.0;
      for (int k = 0; k < c.K; ++k) mean += a[m * c.K + k];
      mean /= c.K;
      for (int k = 0; k < c.K; ++k) var += (a[m * c.K + k] - mean) * (a[m * c.K + k] - mean);
      const double rstd = 1.0 / std::sqrt(var / c.K + 1e-5);
      for (int k = 0; k < c.K; ++k)
        ap[m * c.K + k] = tu::from_t<bf16>(tu::to_t<bf16>((a[m * c.K + k] - mean) * rstd * lw[k] + lb[k]));
    }
  }
  Vec out(static_cast<size_t>(c.M) * c.N);
  for (int m = 0; m < c.M; ++m)
    for (int n = 0; n < c.N; ++n) {
      double s = c.bias ? bias[n] : 0.0;
      for (int k = 0; k < c.K; ++k) s += ap[static_cast<size_t>(m) * c.K + k] * w[static_cast<size_t>(n) * c.K + k];
      if (c.gelu) s = 0.5 * s * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (s + 0.044715 * s * s * s)));
      if (c.residual) s += res[static_cast<size_t>(m) * c.N + n];
      out[static_cast<size_t>(m) * c.N + n] = s;
    }
  return out;
}

void run_case(const Case& c, uint64_t seed) {
  const size_t MK = static_cast<size_t>(c.M) * c.K, NK = static_cast<size_t>(c.N) * c.K, MN = static_cast<size_t>(c.M) * c.N;
  const Vec a = tu::rounded<bf16>(tu::random_vec(MK, seed, 1.0, c.a_offset));
  const Vec w = tu::rounded<bf16>(tu::random_vec(NK, seed + 1, 1.0 / std::sqrt(c.K)));
  const Vec bias = tu::rounded<bf16>(tu::random_vec(c.N, seed + 2, 0.5));
  const Vec lw = tu::rounded<bf16>(tu::random_vec(c.K, seed + 3, 0.2, 1.0));
  const Vec lb = tu::rounded<bf16>(tu::random_vec(c.K, seed + 4, 0.2));
  const Vec res = tu::rounded<bf16>(tu::random_vec(MN, seed + 5));
  tu::DevBuf<bf16> da(a), dw(w), db(bias), dlw(lw), dlb(lb), dout(res);
  kern::GemvArgs p;
  p.a = da.get(), p.w = dw.get(), p.M = c.M, p.N = c.N, p.K = c.K;
  if (c.bias) p.bias = db.get();
  if (c.ln) p.ln_w = dlw.get(), p.ln_b = dlb.get();
  p.gelu = c.gelu;
  if (c.residual) p.residual = dout.get();  // in place: out = residual + y
  p.out = dout.get();
  kern::gemv(p, nullptr);
  const Vec ref = reference(c, a, w, bias, lw, lb, res);
  EXPECT_REL(dout.download(), ref, 1e-2,
             fmt::format("M {} N {} K {} bias {} ln {} gelu {} res {}", c.M, c.N, c.K, c.bias, c.ln, c.gelu, c.residual));
  ASSERT_CUDA(cudaGetLastError());
}

TEST(Gemv, EveryRowCountOddSizes) {
  SKIP_WITHOUT_GPU();
  for (int M = 1; M <= kern::kGemvMaxRows; ++M) run_case({M, 37, 768 + 8, true}, 100 + M);
  for (int M : {1, 3, 8}) run_case({M, 2304, 768 + 8, true}, 200 + M);
  run_case({2, 1, 8, true}, 301);    // one column, one 8-element chunk: three of four warps idle
  run_case({7, 13, 40, false}, 302);  // a partial chunk, a partial tile, no bias

}

TEST(Gemv, LayernormGeluResidual) {
  SKIP_WITHOUT_GPU();
  run_case({1, 3072, 768 + 8, true, true, true}, 11);   // ln_2 -> c_fc -> GELU
  run_case({6, 3072, 768, true, true, true}, 12);
  run_case({1, 776, 3072 + 8, true, false, false, true}, 13);  // c_proj + residual
  run_case({8, 768, 3072, true, false, false, true}, 14);
  run_case({5, 2304, 768, true, true}, 15);  // ln_1 -> qkv
}

// The prologue's one-pass statistics (var = E[a^2] - mean^2 in fp32) on rows whose mean is far
// from zero: about 50 and 100 standard deviations (a's entries uniform in 30 +- 1 and 60 +- 1, sd
// 0.58). A float32 emulation of the kernel's summation order puts the output's error against
// float64 at 6e-4 and 1.2e-3; a variance without the mean's square subtracted is off by far more.
TEST(Gemv, LayernormOfRowsFarFromZeroMean) {
  SKIP_WITHOUT_GPU();
  Case c{1, 40, 768, true, true};
  c.a_offset = 30.0;
  run_case(c, 31);
  c.M = 8, c.a_offset = 60.0;
  run_case(c, 32);
}

// The load plans (gemv.cu): one tile of several load groups a block (fc_proj's K = 3072, in the
// kernel that loads a whole tile at once, and K = 5128, 6000 beyond it, M = 8 at the shared
// memory limit), and blocks of several tiles of 2 groups each (more tiles than resident blocks,
// the LM head's form).
TEST(Gemv, LoadPlans) {
  SKIP_WITHOUT_GPU();
  run_case({1, 40, 3072, true, true}, 21);                // 3 groups, one load
  run_case({3, 21, 5120 + 8, true, true}, 22);            // 6 groups
  run_case({8, 24, 6000, true, false, false, true}, 23);  // 6 groups, M = 8
  run_case({2, 8 * 700 + 3, 1536 + 8, true}, 24);         // 701 tiles over at most 5 blocks per SM, 2 groups each
}

// The LM head: ln_f prologue, fp32 logits into a wider row (ld > N), fused argmax checked
// exactly against the first maximum of the kernel's own logits; two rows of W equal so that
// ties occur; launched twice, then captured into a graph and replayed twice (the scratch must
// reset itself).
TEST(Gemv, LmHeadArgmaxLaunchedAndReplayed) {
  SKIP_WITHOUT_GPU();
  const int N = 50257, K = 768, ld = 50304;
  for (int M : {1, 5, 8}) {
    const Case c{M, N, K, false, true};
    Vec a = tu::rounded<bf16>(tu::random_vec(static_cast<size_t>(M) * K, 300 + M, 1.0, 0.3));
    Vec w = tu::rounded<bf16>(tu::random_vec(static_cast<size_t>(N) * K, 301, 1.0 / std::sqrt(K)));
    for (int k = 0; k < K; ++k) w[static_cast<size_t>(40000) * K + k] = w[static_cast<size_t>(7) * K + k] *= 8.0;
    const Vec lw = tu::rounded<bf16>(tu::random_vec(K, 302, 0.2, 1.0)), lb = tu::rounded<bf16>(tu::random_vec(K, 303, 0.2));
    tu::DevBuf<bf16> da(a), dw(w), dlw(lw), dlb(lb);
    tu::DevBuf<float> dlog(static_cast<size_t>(M) * ld);
    tu::DevBuf<int32_t> dnext(kern::kGemvMaxRows);
    tu::DevBuf<unsigned char> scratch(kern::argmax_scratch_bytes(M));
    ASSERT_CUDA(cudaMemset(scratch.get(), 0, kern::argmax_scratch_bytes(M)));
    kern::GemvArgs p;
    p.a = da.get(), p.w = dw.get(), p.ln_w = dlw.get(), p.ln_b = dlb.get(), p.M = M, p.N = N, p.K = K;
    p.out_f32 = dlog.get(), p.ld_f32 = ld, p.argmax = dnext.get();
    p.argmax_scratch = reinterpret_cast<unsigned long long*>(scratch.get());
    cudaStream_t s;
    ASSERT_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    for (int call = 0; call < 4; ++call) {
      ASSERT_CUDA(cudaMemsetAsync(dnext.get(), 0xFF, kern::kGemvMaxRows * sizeof(int32_t), s));
      if (call < 2) {
        kern::gemv(p, s);
      } else {
        if (!exec) {
          ASSERT_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
          kern::gemv(p, s);
          ASSERT_CUDA(cudaStreamEndCapture(s, &graph));
          ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
        }
        ASSERT_CUDA(cudaGraphLaunch(exec, s));
      }
      ASSERT_CUDA(cudaStreamSynchronize(s));
      std::vector<float> logits(static_cast<size_t>(M) * ld);
      ASSERT_CUDA(cudaMemcpy(logits.data(), dlog.get(), logits.size() * sizeof(float), cudaMemcpyDeviceToHost));
      std::vector<int32_t> next(kern::kGemvMaxRows);
      ASSERT_CUDA(cudaMemcpy(next.data(), dnext.get(), next.size() * sizeof(int32_t), cudaMemcpyDeviceToHost));
      Vec got(static_cast<size_t>(M) * N);
      for (int m = 0; m < M; ++m) {
        const float* row = logits.data() + static_cast<size_t>(m) * ld;
        for (int n = 0; n < N; ++n) got[static_cast<size_t>(m) * N + n] = row[n];
        EXPECT_EQ(next[m], std::max_element(row, row + N) - row) << "M " << M << " row " << m << " call " << call;
        EXPECT_EQ(row[7], row[40000]);
      }
      if (call == 0) EXPECT_REL(got, reference(c, a, w, {}, lw, lb, {}), 1e-2, fmt::format("lm head M {}", M));
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(s);
    ASSERT_CUDA(cudaGetLastError());
  }
}

// The QKV projection writing K and V of each row's new token into a bf16 cache at positions[m]
// (one position past the cache: not written); every other cache element keeps its sentinel.
TEST(Gemv, CacheAppendWritesKAndV) {
  SKIP_WITHOUT_GPU();
  const int M = 4, H = 3, Hkv = 3, D = 64, L = 40, K = 776, N = (H + 2 * Hkv) * D;
  const Vec a = tu::rounded<bf16>(tu::random_vec(static_cast<size_t>(M) * K, 400, 1.0));
  const Vec w = tu::rounded<bf16>(tu::random_vec(static_cast<size_t>(N) * K, 401, 1.0 / std::sqrt(K)));
  const Vec bias = tu::rounded<bf16>(tu::random_vec(N, 402, 0.5));
  const size_t cache_elems = static_cast<size_t>(M) * Hkv * L * D;
  tu::DevBuf<bf16> da(a), dw(w), db(bias), dout(static_cast<size_t>(M) * N);
  tu::DevBuf<bf16> kc(Vec(cache_elems, -7.0)), vc(Vec(cache_elems, -7.0));
  const std::vector<int32_t> pos = {0, 17, L - 1, L};
  tu::DevBuf<int32_t> dpos(pos);
  kern::GemvArgs p;
  p.a = da.get(), p.w = dw.get(), p.bias = db.get(), p.M = M, p.N = N, p.K = K, p.out = dout.get();
  p.k_cache = kc.get(), p.v_cache = vc.get(), p.positions = dpos.get();
  p.cache_col0 = H * D, p.Hkv = Hkv, p.D = D, p.max_len = L;
  kern::gemv(p, nullptr);
  const Vec out = dout.download(), k = kc.download(), v = vc.download();
  EXPECT_REL(out, reference({M, N, K, true}, a, w, bias, {}, {}, {}), 1e-2, "qkv with cache append");
  size_t written = 0;
  for (int m = 0; m < M; ++m)
    for (int g = 0; g < Hkv; ++g)
      for (int t = 0; t < L; ++t)
        for (int d = 0; d < D; ++d) {
          const size_t i = ((static_cast<size_t>(m) * Hkv + g) * L + t) * D + d;
          const bool fresh = t == pos[m];
          written += fresh;
          const size_t row = static_cast<size_t>(m) * N;
          EXPECT_EQ(k[i], fresh ? out[row + (H + g) * D + d] : -7.0) << m << " " << g << " " << t << " " << d;
          EXPECT_EQ(v[i], fresh ? out[row + (H + Hkv + g) * D + d] : -7.0) << m << " " << g << " " << t << " " << d;
        }
  EXPECT_EQ(written, static_cast<size_t>(M - 1) * Hkv * D);
}

TEST(Gemv, RefusalsLeaveNoCudaError) {
  SKIP_WITHOUT_GPU();
  tu::DevBuf<bf16> a(16 * 1024), w(16 * 1024), out(16 * 1024);
  kern::GemvArgs p;
  p.a = a.get(), p.w = w.get(), p.out = out.get(), p.N = 8, p.K = 768;
  p.M = kern::kGemvMaxRows + 1;
  EXPECT_THROW(kern::gemv(p, nullptr), attn::Error);
  p.M = 2, p.K = 770;
  EXPECT_THROW(kern::gemv(p, nullptr), attn::Error);
  p.K = 8 * 1024;  // more shared memory than the kernel's limit at M = 8
  p.M = 8;
  EXPECT_THROW(kern::gemv(p, nullptr), attn::Error);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  p.M = 1, p.K = 768;
  kern::gemv(p, nullptr);
  ASSERT_CUDA(cudaDeviceSynchronize());
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

}  // namespace
