// The GPT-2 model on the CPU: finite-difference checks of every layer and of the whole
// model (float64, fresh random inputs each run; replay one with ATTN_TEST_SEED), dropout
// determinism, AdamW, and the float CpuBackend against CpuGPT<double>.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cpu_backend.h"
#include "core/error.h"
#include "core/grad_clip.h"
#include "fd_check.h"
#include "test_support.h"
#include "model/adamw.h"
#include "model/cpu_layers.h"
#include "model/dropout_sites.h"
#include "model/gpt_cpu.h"

namespace attn {
namespace {

using testing::check_gradient;
using testing::FdResult;
using testing::kFdTol;
using testing::random_indices;
using testing::randn;

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

#define EXPECT_FD_OK(res)                                                                   \
  do {                                                                                      \
    const FdResult& r_ = (res);                                                             \
    EXPECT_GT(r_.checked, 0);                                                               \
    EXPECT_LE(r_.max_rel, kFdTol) << "worst: " << r_.worst;                                 \
    std::printf("[   FD     ] %-28s checked %5d  max rel err %.2e (max abs %.1e)\n",                \
                ::testing::UnitTest::GetInstance()->current_test_info()->name(), r_.checked, r_.max_rel,  \
                r_.max_abs);                                                                         \
  } while (0)

class LayerFd : public ::testing::Test {
 protected:
  void SetUp() override {
    seed = testing::test_seed();
    rng.seed(seed);
    RecordProperty("seed", std::to_string(seed));
  }
  uint64_t seed = 0;
  std::mt19937_64 rng;
};

// ---- layers ----------------------------------------------------------------------

TEST_F(LayerFd, Encoder) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  const int B = 2, T = 5, C = 6, V = 7;
  std::vector<int32_t> tok(B * T);
  for (auto& t : tok) t = static_cast<int32_t>(rng() % V);
  auto wte = randn(rng, V * C), wpe = randn(rng, T * C), R = randn(rng, B * T * C);
  std::vector<double> out(B * T * C), dwte(V * C, 0.0), dwpe(T * C, 0.0);
  auto f = [&] {
    encoder_forward(out.data(), tok.data(), wte.data(), wpe.data(), B, T, C);
    return dot(out, R);
  };
  encoder_backward(dwte.data(), dwpe.data(), R.data(), tok.data(), B, T, C);
  FdResult res = check_gradient(wte.data(), dwte.data(), wte.size(), f, "wte");
  res.merge(check_gradient(wpe.data(), dwpe.data(), wpe.size(), f, "wpe"));
  EXPECT_FD_OK(res);
}

TEST_F(LayerFd, LayerNorm) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  const int N = 7, C = 13;
  auto x = randn(rng, N * C, 2.0, 0.5), w = randn(rng, C, 0.5, 1.0), b = randn(rng, C), R = randn(rng, N * C);
  std::vector<double> out(N * C), mean(N), rstd(N), dx(N * C, 0.0), dw(C, 0.0), db(C, 0.0);
  auto f = [&] {
    layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
    return dot(out, R);
  };
  f();
  layernorm_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
  FdResult res = check_gradient(x.data(), dx.data(), x.size(), f, "x");
  res.merge(check_gradient(w.data(), dw.data(), w.size(), f, "w"));
  res.merge(check_gradient(b.data(), db.data(), b.size(), f, "b"));
  EXPECT_FD_OK(res);
  // saved statistics are those of torch (biased variance, eps 1e-5)
  double m = 0, v = 0;
  for (int c = 0; c < C; ++c) m += x[c];
  m /= C;
  for (int c = 0; c < C; ++c) v += (x[c] - m) * (x[c] - m);
  v /= C;
  EXPECT_NEAR(mean[0], m, 1e-12);
  EXPECT_NEAR(rstd[0], 1.0 / std::sqrt(v + 1e-5), 1e-9);
}

TEST_F(LayerFd, Linear) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  const int N = 9, IN = 11, OUT = 6;
  auto x = randn(rng, N * IN), w = randn(rng, OUT * IN), b = randn(rng, OUT), R = randn(rng, N * OUT);
  std::vector<double> out(N * OUT), dx(N * IN, 123.0), dw(OUT * IN, 0.0), db(OUT, 0.0);
  auto f = [&] {
    matmul_forward(out.data(), x.data(), w.data(), b.data(), N, IN, OUT);
    return dot(out, R);
  };
  f();
  // y[n, o] = sum_i x[n, i] W[o, i] + b[o]  (torch.nn.Linear layout)
  double y01 = b[1];
  for (int i = 0; i < IN; ++i) y01 += x[i] * w[1 * IN + i];
  EXPECT_NEAR(out[1], y01, 1e-12);
  matmul_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), N, IN, OUT);
  FdResult res = check_gradient(x.data(), dx.data(), x.size(), f, "x");
  res.merge(check_gradient(w.data(), dw.data(), w.size(), f, "W"));
  res.merge(check_gradient(b.data(), db.data(), b.size(), f, "b"));
  EXPECT_FD_OK(res);
  // parameter gradients accumulate
  std::vector<double> dw2 = dw;
  matmul_backward(dx.data(), dw2.data(), static_cast<double*>(nullptr), R.data(), x.data(), w.data(), N, IN, OUT);
  for (size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(dw2[i], 2 * dw[i], 1e-12);
}

TEST_F(LayerFd, LmHeadPaddedVocab) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  const int N = 5, C = 8, V = 11, Vp = 16;
  auto x = randn(rng, N * C), wte = randn(rng, Vp * C), R = randn(rng, N * Vp);
  for (int n = 0; n < N; ++n)
    for (int v = V; v < Vp; ++v) R[n * Vp + v] = 0.0;  // padded columns are not outputs
  std::vector<double> logits(N * Vp, 0.0), dx(N * C), dwte(Vp * C, 0.0);
  auto f = [&] {
    lm_head_forward(logits.data(), x.data(), wte.data(), N, C, V, Vp);
    return dot(logits, R);
  };
  lm_head_backward(dx.data(), dwte.data(), R.data(), x.data(), wte.data(), N, C, V, Vp);
  FdResult res = check_gradient(x.data(), dx.data(), x.size(), f, "x");
  res.merge(check_gradient(wte.data(), dwte.data(), wte.size(), f, "wte"));
  EXPECT_FD_OK(res);
  for (int i = V * C; i < Vp * C; ++i) EXPECT_EQ(dwte[i], 0.0);
}

TEST_F(LayerFd, Gelu) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  const size_t n = 400;
  auto x = randn(rng, n, 2.0), R = randn(rng, n);
  std::vector<double> out(n), dx(n);
  auto f = [&] {
    gelu_forward(out.data(), x.data(), n);
    return dot(out, R);
  };
  f();
  const double k = std::sqrt(2.0 / M_PI);
  EXPECT_NEAR(out[3], 0.5 * x[3] * (1 + std::tanh(k * (x[3] + 0.044715 * x[3] * x[3] * x[3]))), 1e-14);
  gelu_backward(dx.data(), x.data(), R.data(), n);
  EXPECT_FD_OK(check_gradient(x.data(), dx.data(), n, f, "x"));
  // the chunked parallel path (n above the threshold) computes the same values
  const size_t big = 100000;
  auto xb = randn(rng, big, 2.0), db = randn(rng, big);
  std::vector<double> ob(big), gb(big);
  gelu_forward(ob.data(), xb.data(), big);
  gelu_backward(gb.data(), xb.data(), db.data(), big);
  for (size_t i = 0; i < big; i += 997) {
    double o1, g1;
    gelu_forward(&o1, &xb[i], 1);
    gelu_backward(&g1, &xb[i], &db[i], 1);
    ASSERT_EQ(ob[i], o1);
    ASSERT_EQ(gb[i], g1);
  }
}

TEST_F(LayerFd, Residual) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  const size_t n = 50;
  auto a = randn(rng, n), b = randn(rng, n), R = randn(rng, n);
  std::vector<double> out(n), da(n, 0.0), db(n, 0.0);
  auto f = [&] {
    residual_forward(out.data(), a.data(), b.data(), n);
    return dot(out, R);
  };
  residual_backward(da.data(), db.data(), R.data(), n);
  FdResult res = check_gradient(a.data(), da.data(), n, f, "a");
  res.merge(check_gradient(b.data(), db.data(), n, f, "b"));
  EXPECT_FD_OK(res);
}

TEST_F(LayerFd, Dropout) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  const size_t n = 200;
  const float p = 0.3f;
  const uint64_t key = stream_key(seed, 5, 1, dropout_site::kEmbedding);
  auto x = randn(rng, n), R = randn(rng, n);
  std::vector<double> out(n), dx(n);
  auto f = [&] {
    dropout_forward(out.data(), x.data(), n, p, key);
    return dot(out, R);
  };
  dropout_backward(dx.data(), R.data(), n, p, key);
  EXPECT_FD_OK(check_gradient(x.data(), dx.data(), n, f, "x"));
}

TEST_F(LayerFd, SoftmaxCrossEntropy) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  const int N = 9, V = 13, Vp = 16;
  auto logits = randn(rng, N * Vp, 3.0);
  std::vector<int32_t> tgt(N);
  for (auto& t : tgt) t = static_cast<int32_t>(rng() % V);
  tgt[2] = -1, tgt[5] = -1;
  std::vector<double> dl(N * Vp, 7.0);
  const double scale = 0.75;
  auto f = [&] { return scale * softmax_crossentropy<double>(nullptr, logits.data(), tgt.data(), N, V, Vp); };
  const double loss = softmax_crossentropy<double>(dl.data(), logits.data(), tgt.data(), N, V, Vp, scale);
  EXPECT_FD_OK(check_gradient(logits.data(), dl.data(), logits.size(), f, "logits"));
  // the mean over the 7 counted rows of -log softmax, padded columns ignored
  double ref = 0;
  for (int i = 0; i < N; ++i) {
    if (tgt[i] < 0) continue;
    double s = 0;
    for (int v = 0; v < V; ++v) s += std::exp(logits[i * Vp + v]);
    ref += std::log(s) - logits[i * Vp + tgt[i]];
  }
  EXPECT_NEAR(loss, ref / 7, 1e-12);
  for (int v = 0; v < Vp; ++v) EXPECT_EQ(dl[2 * Vp + v], 0.0);
  for (int v = V; v < Vp; ++v) EXPECT_EQ(dl[0 * Vp + v], 0.0);
  // in place (dlogits aliasing logits) gives the same gradient
  std::vector<double> inplace = logits;
  softmax_crossentropy<double>(inplace.data(), inplace.data(), tgt.data(), N, V, Vp, scale);
  for (size_t i = 0; i < dl.size(); ++i) EXPECT_EQ(inplace[i], dl[i]);
  // every target ignored: loss 0, gradient 0
  std::vector<int32_t> none(N, -1);
  EXPECT_EQ(softmax_crossentropy<double>(dl.data(), logits.data(), none.data(), N, V, Vp), 0.0);
}

TEST(Dropout, SameKeySameMaskAndRate) {
  const size_t n = 100000;
  std::vector<float> x(n, 1.0f), a(n), b(n), c(n);
  const uint64_t k1 = dropout_site::key(42, 7, 0, dropout_site::attention_branch(1));
  const uint64_t k2 = dropout_site::key(42, 7, 1, dropout_site::attention_branch(1));
  dropout_forward(a.data(), x.data(), n, 0.25f, k1);
  dropout_forward(b.data(), x.data(), n, 0.25f, k1);
  dropout_forward(c.data(), x.data(), n, 0.25f, k2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    kept += a[i] != 0.0f;
    if (a[i] != 0.0f) EXPECT_FLOAT_EQ(a[i], 1.0f / 0.75f);
  }
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.75, 0.01);
  // the sites of one micro-step are distinct streams
  EXPECT_NE(dropout_site::attention_branch(0), dropout_site::mlp_branch(0));
  EXPECT_NE(dropout_site::kEmbedding, dropout_site::attention_probs(0));
}

// ---- the whole model ----------------------------------------------------------------

GPTConfig tiny_config(int n_kv_head = 2) {
  GPTConfig c;
  c.vocab_size = 23;
  c.padded_vocab_size = 32;
  c.block_size = 16;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = n_kv_head;
  c.n_embd = 16;
  return c;
}

// Larger than GPT-2's init so that every path (attention scores, LayerNorm gains) matters.
void randomize(CpuGPT<double>& m, std::mt19937_64& rng) {
  std::normal_distribution<double> nd(0.0, 1.0);
  double* p = m.params();
  for (const ParamTensor& t : m.layout().tensors())
    for (size_t i = 0; i < t.numel; ++i) {
      double& x = p[t.offset + i];
      switch (t.kind) {
        case ParamKind::NormWeight: x = 1.0 + 0.2 * nd(rng); break;
        case ParamKind::Matrix:
        case ParamKind::Embedding: x = 0.3 * nd(rng); break;
        default: x = 0.1 * nd(rng); break;
      }
    }
}

struct TinyBatch {
  int B = 2, T = 11;
  std::vector<int32_t> inputs, targets;
};

TinyBatch tiny_batch(std::mt19937_64& rng, int V, int B = 2, int T = 11) {
  TinyBatch b{B, T, std::vector<int32_t>(B * T), std::vector<int32_t>(B * T)};
  for (auto& t : b.inputs) t = static_cast<int32_t>(rng() % V);
  for (auto& t : b.targets) t = static_cast<int32_t>(rng() % V);
  b.targets[3] = -1;
  return b;
}

FdResult model_fd(CpuGPT<double>& m, const TinyBatch& b, const StepContext& ctx, std::mt19937_64& rng,
                  int per_tensor = 6) {
  m.zero_grad();
  m.forward(b.inputs.data(), b.targets.data(), b.B, b.T, ctx);
  m.backward(1.0);
  const std::vector<double> grads(m.grads(), m.grads() + m.num_scalars());
  auto f = [&] { return m.forward(b.inputs.data(), b.targets.data(), b.B, b.T, ctx); };
  FdResult res;
  const GPTConfig& c = m.config();
  for (const ParamTensor& t : m.layout().tensors()) {
    size_t n = t.numel;
    if (t.name == "wte") n = static_cast<size_t>(c.vocab_size) * c.n_embd;  // padded rows: checked below
    if (t.name == "wpe") n = static_cast<size_t>(b.T) * c.n_embd;           // positions >= T are unused
    res.merge(check_gradient(m.params() + t.offset, grads.data() + t.offset, n, f, t.name,
                             random_indices(rng, n, per_tensor)));
  }
  const ParamTensor& wte = m.layout().get(m.layout().wte());
  for (size_t i = static_cast<size_t>(c.vocab_size) * c.n_embd; i < wte.numel; ++i) EXPECT_EQ(grads[wte.offset + i], 0.0);
  const ParamTensor& wpe = m.layout().get(m.layout().wpe());
  for (size_t i = static_cast<size_t>(b.T) * c.n_embd; i < wpe.numel; ++i) EXPECT_EQ(grads[wpe.offset + i], 0.0);
  return res;
}

TEST_F(LayerFd, WholeModelGQA) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  CpuGPT<double> m(tiny_config(2));
  randomize(m, rng);
  const TinyBatch b = tiny_batch(rng, 23);
  EXPECT_FD_OK(model_fd(m, b, StepContext{}, rng, 8));
}

TEST_F(LayerFd, WholeModelMQAOddT) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  CpuGPT<double> m(tiny_config(1));
  randomize(m, rng);
  const TinyBatch b = tiny_batch(rng, 23, 3, 7);
  EXPECT_FD_OK(model_fd(m, b, StepContext{}, rng));
}

TEST_F(LayerFd, WholeModelEveryOptionWithDropout) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  GPTConfig c = tiny_config(2);
  c.dropout = 0.1f;
  c.attn_dropout = 0.15f;
  AttentionOptions o;
  o.alibi = true;
  o.softcap = 3.0f;
  o.sliding_window = 5;
  o.document_mask = true;
  o.eot_token = 0;
  CpuGPT<double> m(c, o);
  randomize(m, rng);
  TinyBatch b = tiny_batch(rng, 23, 2, 13);
  b.inputs[4] = 0, b.inputs[9] = 0, b.inputs[13 + 6] = 0;
  StepContext ctx;
  ctx.seed = seed, ctx.step = 3, ctx.micro_step = 1, ctx.train = true;
  EXPECT_FD_OK(model_fd(m, b, ctx, rng));
}

TEST(CpuGPT, LossAtInitIsLogVocab) {
  GPTConfig c = tiny_config(4);
  c.vocab_size = 65, c.padded_vocab_size = 128, c.block_size = 32, c.n_embd = 32;
  CpuGPT<double> m(c);
  const uint64_t seed = testing::test_seed();
  m.init_params(seed);
  std::mt19937_64 rng(seed);
  const TinyBatch b = tiny_batch(rng, 65, 4, 32);
  const double loss = m.forward(b.inputs.data(), b.targets.data(), b.B, b.T, StepContext{});
  EXPECT_NEAR(loss, std::log(65.0), 0.05) << "seed " << seed;
}

TEST(CpuGPT, DropoutTrainDiffersFromEvalAndIsDeterministic) {
  GPTConfig c = tiny_config();
  c.dropout = 0.2f, c.attn_dropout = 0.2f;
  CpuGPT<double> m(c);
  m.init_params(1);
  std::mt19937_64 rng(2);
  const TinyBatch b = tiny_batch(rng, 23);
  StepContext train{7, 3, 0, true}, eval{7, 3, 0, false}, other{7, 4, 0, true};
  const double l_train = m.forward(b.inputs.data(), b.targets.data(), b.B, b.T, train);
  const double l_again = m.forward(b.inputs.data(), b.targets.data(), b.B, b.T, train);
  const double l_eval = m.forward(b.inputs.data(), b.targets.data(), b.B, b.T, eval);
  const double l_other = m.forward(b.inputs.data(), b.targets.data(), b.B, b.T, other);
  EXPECT_EQ(l_train, l_again);
  EXPECT_NE(l_train, l_eval);
  EXPECT_NE(l_train, l_other);
  // eval equals a model without dropout
  CpuGPT<double> m0(tiny_config());
  std::copy(m.params(), m.params() + m.num_scalars(), m0.params());
  EXPECT_EQ(l_eval, m0.forward(b.inputs.data(), b.targets.data(), b.B, b.T, train));
}

TEST(CpuGPT, TokenAndLengthErrors) {
  CpuGPT<double> m(tiny_config());
  std::vector<int32_t> in(2 * 5, 1), tg(2 * 5, 1);
  in[1 * 5 + 3] = 23;
  try {
    m.forward(in.data(), tg.data(), 2, 5, StepContext{});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "token id 23 at (1,3) out of range for vocab 23");
  }
  in[1 * 5 + 3] = -2;
  EXPECT_THROW(m.forward(in.data(), tg.data(), 2, 5, StepContext{}), Error);
  in[1 * 5 + 3] = 0;
  tg[4] = 99;
  EXPECT_THROW(m.forward(in.data(), tg.data(), 2, 5, StepContext{}), Error);
  std::vector<int32_t> long_in(17, 0);
  EXPECT_THROW(m.forward(long_in.data(), nullptr, 1, 17, StepContext{}), Error);
  EXPECT_THROW(m.backward(1.0), Error);  // no forward with targets yet
  GPTConfig bad = tiny_config(3);          // 3 does not divide 4
  EXPECT_THROW(CpuGPT<double>{bad}, Error);
}

TEST(CpuGPT, LastLogitsAndGrowingBuffers) {
  CpuGPT<double> m(tiny_config(), {}, 1, 4);  // planned smaller than used: buffers grow
  m.init_params(3);
  std::mt19937_64 rng(4);
  const TinyBatch b = tiny_batch(rng, 23, 3, 9);
  m.forward(b.inputs.data(), nullptr, b.B, b.T, StepContext{});
  const std::vector<double> full(m.logits(), m.logits() + b.B * b.T * 32);
  std::vector<double> last(b.B * 23);
  m.last_logits(b.inputs.data(), b.B, b.T, last.data());
  for (int r = 0; r < b.B; ++r)
    for (int v = 0; v < 23; ++v) EXPECT_NEAR(last[r * 23 + v], full[(r * b.T + b.T - 1) * 32 + v], 1e-13);
}

TEST(CpuGPT, GradientsAccumulateOverMicroBatches) {
  CpuGPT<double> m(tiny_config());
  m.init_params(5);
  std::mt19937_64 rng(6);
  const TinyBatch b = tiny_batch(rng, 23);
  m.forward(b.inputs.data(), b.targets.data(), b.B, b.T, StepContext{});
  m.backward(1.0);
  const std::vector<double> once(m.grads(), m.grads() + m.num_scalars());
  m.zero_grad();
  for (int k = 0; k < 2; ++k) {
    m.forward(b.inputs.data(), b.targets.data(), b.B, b.T, StepContext{});
    m.backward(0.5);
  }
  for (size_t i = 0; i < once.size(); ++i) ASSERT_NEAR(m.grads()[i], once[i], 1e-14 + 1e-12 * std::abs(once[i]));
}

// ---- AdamW ---------------------------------------------------------------------------

TEST(AdamW, FirstStepMatchesTheFormula) {
  std::vector<double> p{0.5, -1.0, 2.0}, g{0.1, -0.3, 0.0}, m(3, 0.0), v(3, 0.0);
  const float lr = 0.01f, wd = 0.1f, gm = 0.5f;
  adamw_update(p.data(), g.data(), m.data(), v.data(), 3, lr, 0.9f, 0.95f, 1e-8f, wd, gm, 1);
  // t = 1: m_hat = g', v_hat = g'^2, so the Adam step is g' / (|g'| + eps) with g' = gm * g
  const double lr_d = lr, wd_d = wd;
  EXPECT_NEAR(p[0], 0.5 - lr_d * (0.05 / (0.05 + 1e-8) + wd_d * 0.5), 1e-12);
  EXPECT_NEAR(p[1], -1.0 - lr_d * (-0.15 / (0.15 + 1e-8) + wd_d * -1.0), 1e-12);
  EXPECT_NEAR(p[2], 2.0 - lr_d * (0.0 + wd_d * 2.0), 1e-12);
  EXPECT_NEAR(m[0], (1 - 0.9f) * (0.5f * 0.1), 1e-12);  // beta1, multiplier are floats
  EXPECT_NEAR(v[1], (1 - 0.95f) * std::pow(0.5f * 0.3, 2), 1e-12);
}

TEST(AdamW, FewStepsReduceTheLoss) {
  auto be = make_cpu_backend(tiny_config(), BackendOptions{});
  std::vector<float> p(be->layout().total());
  init_gpt2_params(be->layout(), 11, p.data());
  be->set_params(p.data());
  std::mt19937_64 rng(12);
  const TinyBatch b = tiny_batch(rng, 23, 4, 16);
  const Batch batch{b.inputs.data(), b.targets.data(), b.B, b.T};
  const float first = be->forward_loss(batch);
  for (int t = 1; t <= 30; ++t) {
    be->zero_grad();
    be->forward_backward(batch, 1.0f, StepContext{0, t, 0, true});
    be->adamw_step(AdamWConfig{}, 3e-3f, 1.0f, t);
  }
  const float last = be->forward_loss(batch);
  EXPECT_LT(last, first - 0.5f) << first << " -> " << last;
}

// ---- the float backend against the float64 model ------------------------------------

double rel_norm_diff(const float* a, const double* b, size_t n) {
  double d = 0, r = 0;
  for (size_t i = 0; i < n; ++i) d += (a[i] - b[i]) * (a[i] - b[i]), r += b[i] * b[i];
  return std::sqrt(d) / std::max(std::sqrt(r), 1e-30);
}

TEST(CpuBackend, FloatMatchesDouble) {
  GPTConfig c = tiny_config(2);
  c.dropout = 0.1f, c.attn_dropout = 0.1f;
  BackendOptions opts;
  opts.attention.alibi = true;
  opts.attention.softcap = 10.0f;
  opts.max_batch = 3, opts.max_seq = 16;
  auto be = make_cpu_backend(c, opts);
  EXPECT_EQ(be->name(), "cpu");
  CpuGPT<double> ref(c, opts.attention);
  std::vector<float> p(be->layout().total());
  init_gpt2_params(be->layout(), testing::test_seed(), p.data());
  be->set_params(p.data());
  std::copy(p.begin(), p.end(), ref.params());
  std::mt19937_64 rng(testing::test_seed());
  const TinyBatch b = tiny_batch(rng, 23, 3, 16);
  const StepContext ctx{99, 5, 2, true};
  be->zero_grad();
  const float lf = be->forward_backward({b.inputs.data(), b.targets.data(), b.B, b.T}, 1.0f, ctx);
  const double ld = ref.forward(b.inputs.data(), b.targets.data(), b.B, b.T, ctx);
  ref.backward(1.0);
  EXPECT_NEAR(lf, ld, 1e-4 * std::abs(ld));
  std::vector<float> g(be->layout().total());
  be->get_grads(g.data());
  for (const ParamTensor& t : be->layout().tensors()) {
    const double e = rel_norm_diff(g.data() + t.offset, ref.grads() + t.offset, t.numel);
    EXPECT_LE(e, 1e-4) << t.name;
  }
  double gn = 0;
  for (size_t i = 0; i < ref.num_scalars(); ++i) gn += ref.grads()[i] * ref.grads()[i];
  EXPECT_NEAR(be->grad_norm(), std::sqrt(gn), 1e-4 * std::sqrt(gn));
  // eval loss and last logits
  const float ef = be->forward_loss({b.inputs.data(), b.targets.data(), b.B, b.T});
  const double ed = ref.forward(b.inputs.data(), b.targets.data(), b.B, b.T, StepContext{0, 0, 0, false});
  EXPECT_NEAR(ef, ed, 1e-4 * std::abs(ed));
  std::vector<float> lf_out(b.B * 23);
  std::vector<double> ld_out(b.B * 23);
  be->last_logits(b.inputs.data(), b.B, b.T, lf_out.data());
  ref.last_logits(b.inputs.data(), b.B, b.T, ld_out.data());
  EXPECT_LE(rel_norm_diff(lf_out.data(), ld_out.data(), lf_out.size()), 1e-4);
  // one AdamW step on both
  std::vector<double> md(ref.num_scalars(), 0.0), vd(ref.num_scalars(), 0.0);
  be->adamw_step(AdamWConfig{}, 1e-3f, 0.7f, 1);
  for (const ParamTensor& t : ref.layout().tensors())
    adamw_update(ref.params() + t.offset, ref.grads() + t.offset, md.data() + t.offset, vd.data() + t.offset, t.numel,
                 1e-3f, 0.9f, 0.95f, 1e-8f, t.decay() ? 0.1f : 0.0f, 0.7f, 1);
  be->get_params(p.data());
  EXPECT_LE(rel_norm_diff(p.data(), ref.params(), p.size()), 1e-5);
  std::vector<float> m(p.size()), v(p.size());
  be->get_optimizer_state(m.data(), v.data());
  EXPECT_LE(rel_norm_diff(m.data(), md.data(), m.size()), 1e-4);
}

TEST(CpuBackend, OptionsAndMemory) {
  BackendOptions o;
  // bf16 and tf32 (tensor-core formats) are refused, not run silently as fp32.
  for (const std::string p : {"bf16", "tf32"}) {
    o.precision = p;
    try {
      make_cpu_backend(tiny_config(), o);
      FAIL() << "no error for " << p;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), "device.precision = \"" + p +
                                           "\" needs the cuda backend (a GPU); on the CPU add --device.precision=fp32");
    }
  }
  o.precision = "fp32";
  o.attention.impl = "flash";
  try {
    make_cpu_backend(tiny_config(), o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "attention.impl = \"flash\" is not available on cpu (available: flash on cuda)");
  }
  o.attention.impl = "naive";
  o.max_batch = 2, o.max_seq = 8;
  auto be = make_cpu_backend(tiny_config(), o);
  const MemoryReport r = be->memory();
  ASSERT_EQ(r.categories.size(), 4u);
  const size_t pb = be->layout().total() * sizeof(float);
  EXPECT_EQ(r.categories[0].name, "parameters");
  EXPECT_EQ(r.categories[0].bytes, pb);
  EXPECT_EQ(r.categories[2].bytes, 2 * pb);
  EXPECT_GT(r.categories[3].bytes, 0u);
  EXPECT_EQ(r.total_peak, 4 * pb + r.categories[3].peak);
  std::vector<float> m(be->layout().total(), 0.5f), v(be->layout().total(), 0.25f), m2(m.size()), v2(m.size());
  be->set_optimizer_state(m.data(), v.data());
  be->get_optimizer_state(m2.data(), v2.data());
  EXPECT_EQ(m, m2);
  EXPECT_EQ(v, v2);
}

// Backend::train_step (what the trainer calls; the CPU backend keeps the default) is the
// separate calls in order, bit for bit, with the clip factor norm > clip ? clip / norm : 1.
TEST(CpuBackend, TrainStepIsTheSeparateCalls) {
  GPTConfig g = tiny_config();
  g.dropout = g.attn_dropout = 0.1f;
  BackendOptions o;
  o.device = "cpu", o.max_batch = 2, o.max_seq = 9, o.threads = 1;
  auto one = make_cpu_backend(g, o), calls = make_cpu_backend(g, o);
  EXPECT_EQ(one->train_step_mode(), "calls (device.cuda_graph applies to the CUDA backend)");
  std::vector<float> p(one->layout().total());
  init_gpt2_params(one->layout(), 3, p.data());
  one->set_params(p.data()), calls->set_params(p.data());
  std::mt19937_64 rng(std::random_device{}());
  const AdamWConfig ac{0.9f, 0.95f, 1e-8f, 0.1f};
  for (int step = 0; step < 3; ++step) {
    std::vector<std::vector<int32_t>> x(2, std::vector<int32_t>(18)), y = x;
    TrainStep plan;
    for (int m = 0; m < 2; ++m) {
      for (auto& v : x[m]) v = static_cast<int32_t>(rng() % 23);
      for (auto& v : y[m]) v = static_cast<int32_t>(rng() % 23);
      y[m][m + 1] = -1;
      plan.micro_batches.push_back(Batch{x[m].data(), y[m].data(), 2, 9});
      plan.contexts.push_back(StepContext{7, step, m, true});
    }
    plan.grad_scale = 0.5f, plan.adamw = ac, plan.lr = 1e-2f * (step + 1), plan.t = step + 1;
    plan.grad_clip = step == 1 ? 0.0 : 0.3;  // clipping off, then on (the norm is above 0.3)
    const TrainStepResult r = one->train_step(plan);
    calls->zero_grad();
    for (int m = 0; m < 2; ++m) {
      const float loss = calls->forward_backward(plan.micro_batches[m], 0.5f, plan.contexts[m]);
      EXPECT_EQ(loss, r.losses.at(m)) << "step " << step << " micro " << m;
    }
    const float norm = calls->grad_norm();
    EXPECT_EQ(norm, r.norm);
    ASSERT_GT(norm, 0.3f);
    const float mult = plan.grad_clip > 0 ? static_cast<float>(plan.grad_clip / norm) : 1.0f;
    calls->adamw_step(ac, plan.lr, mult, plan.t);
    std::vector<float> a(p.size()), b(p.size());
    one->get_params(a.data()), calls->get_params(b.data());
    EXPECT_EQ(a, b) << "step " << step;
  }
  TrainStep bad;
  bad.micro_batches.resize(1);
  EXPECT_NE(testing::error_of([&] { one->train_step(bad); }).find("1 micro-batches and 0 contexts"), std::string::npos);
}

TEST(GradClip, MultiplierIsClipOverNormAboveTheThreshold) {
  EXPECT_EQ(grad_clip_multiplier(2.0f, 0.0), 1.0f);   // off
  EXPECT_EQ(grad_clip_multiplier(0.5f, 1.0), 1.0f);   // below
  EXPECT_EQ(grad_clip_multiplier(1.0f, 1.0), 1.0f);   // at
  EXPECT_EQ(grad_clip_multiplier(4.0f, 1.0), 0.25f);  // above: clip / norm
  EXPECT_EQ(grad_clip_multiplier(3.0f, 1.0), static_cast<float>(1.0 / 3.0));  // in double, then float
  EXPECT_EQ(grad_clip_multiplier(std::nanf(""), 1.0), 1.0f);  // non-finite: the trainer stops anyway
}

// nanoGPT's CPU "baby GPT" (shakespeare_char on a laptop): 4 layers, 4 heads, n_embd 128,
// block 64, batch 12, vocab 65. Run with --gtest_also_run_disabled_tests.
TEST(CpuBackend, DISABLED_BabyGPTBenchmark) {
  GPTConfig c;
  c.vocab_size = 65, c.padded_vocab_size = 128, c.block_size = 64;
  c.n_layer = 4, c.n_head = 4, c.n_kv_head = 4, c.n_embd = 128;
  BackendOptions o;
  o.max_batch = 12, o.max_seq = 64;
  auto be = make_cpu_backend(c, o);
  std::vector<float> p(be->layout().total());
  init_gpt2_params(be->layout(), 1, p.data());
  be->set_params(p.data());
  std::mt19937_64 rng(1);
  const TinyBatch b = tiny_batch(rng, 65, 12, 64);
  const Batch batch{b.inputs.data(), b.targets.data(), b.B, b.T};
  const int iters = std::getenv("ATTN_BENCH_ITERS") ? std::atoi(std::getenv("ATTN_BENCH_ITERS")) : 100;
  auto start = std::chrono::steady_clock::now();
  for (int it = 1; it <= iters + 5; ++it) {
    if (it == 6) start = std::chrono::steady_clock::now();  // 5 warm-up iterations
    be->zero_grad();
    be->forward_backward(batch, 1.0f, StepContext{0, it, 0, true});
    const float gn = be->grad_norm();
    be->adamw_step(AdamWConfig{}, 1e-3f, gn > 1.0f ? 1.0f / gn : 1.0f, it);
    if (it == iters + 5) {
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      std::printf("baby GPT: %.2f ms/iteration (%d iterations, forward+backward+AdamW)\n", ms / iters, iters);
    }
  }
}

}  // namespace
}  // namespace attn
