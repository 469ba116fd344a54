// The whole CUDA backend against the float64 GPT of reference.h: loss and every parameter
// gradient (with dropout, GQA, ignored targets, two accumulated micro-steps), eval loss,
// last-position logits, grad norm, AdamW, determinism, memory accounting and errors.
#include <algorithm>
#include <cstring>
#include <string>

#include "backend/cuda_backend.h"
#include "backend/cuda_data_parallel.h"
#include "core/error.h"
#include "reference.h"
#include "test_util.h"

namespace {

using tu::Vec;

attn::GPTConfig small_config(float dropout) {
  attn::GPTConfig c;
  c.vocab_size = 101;
  c.padded_vocab_size = 128;
  c.block_size = 80;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = 2;  // GQA
  c.n_embd = 72;    // head_dim 18
  c.dropout = dropout;
  c.attn_dropout = dropout;
  return c;
}

constexpr int B = 3, T_ = 77;

std::vector<float> test_params(const attn::ParamLayout& layout, uint64_t seed) {
  std::vector<float> p(layout.total());
  attn::init_gpt2_params(layout, seed, p.data());
  const Vec noise = tu::random_vec(p.size(), seed + 1, 0.02);
  for (const attn::ParamTensor& t : layout.tensors())  // non-zero biases, LayerNorm weights != 1
    for (size_t i = t.offset; i < t.offset + t.numel; ++i) p[i] += static_cast<float>(noise[i]);
  return p;
}

struct TestBatch {
  std::vector<int32_t> x, y;
  attn::Batch batch() const { return attn::Batch{x.data(), y.data(), B, T_}; }
};
TestBatch test_batch(uint64_t seed, int vocab) {
  std::mt19937_64 g(seed);
  TestBatch b;
  b.x.resize(B * T_), b.y.resize(B * T_);
  for (auto& v : b.x) v = static_cast<int32_t>(g() % vocab);
  for (auto& v : b.y) v = static_cast<int32_t>(g() % vocab);
  for (int i = 5; i < B * T_; i += 11) b.y[i] = -1;  // ignored targets
  return b;
}

std::unique_ptr<attn::Backend> make(const attn::GPTConfig& cfg, const std::string& precision, int max_batch = B,
                                    int max_seq = 80) {
  attn::BackendOptions o;
  o.device = "cuda";
  o.precision = precision;
  o.max_batch = max_batch;
  o.max_seq = max_seq;
  return attn::make_cuda_backend(cfg, o);
}

Vec to_vec(const std::vector<float>& f) { return Vec(f.begin(), f.end()); }

// Per-tensor relative errors of grads vs ref; prints the worst few, expects all <= tol.
void expect_tensors_close(const attn::ParamLayout& layout, const std::vector<float>& got, const Vec& want, double tol,
                          const std::string& what) {
  std::vector<std::pair<double, std::string>> errs;
  for (const attn::ParamTensor& t : layout.tensors()) {
    const Vec g(got.begin() + t.offset, got.begin() + t.offset + t.numel);
    const Vec w(want.begin() + t.offset, want.begin() + t.offset + t.numel);
    errs.emplace_back(tu::rel_err(g, w), t.name);
  }
  std::sort(errs.rbegin(), errs.rend());
  std::printf("    [rel] %s: worst tensors", what.c_str());
  for (size_t i = 0; i < std::min<size_t>(4, errs.size()); ++i)
    std::printf(" %s %.3e%s", errs[i].second.c_str(), errs[i].first, i + 1 < 4 ? "," : "");
  std::printf(" (tol %.0e)\n", tol);
  for (const auto& [e, name] : errs) EXPECT_LE(e, tol) << what << ": " << name;
}

class Backend : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Precisions, Backend, ::testing::Values("fp32", "bf16"));

double model_tol(const std::string& precision) { return precision == "fp32" ? 1e-4 : 2e-2; }

TEST_P(Backend, LossAndGradientsMatchReference) {
  SKIP_WITHOUT_GPU();
  const std::string prec = GetParam();
  const double tol = model_tol(prec);
  const attn::GPTConfig cfg = small_config(0.1f);
  auto be = make(cfg, prec);
  const attn::ParamLayout& layout = be->layout();
  const std::vector<float> params = test_params(layout, 3);
  const Vec pd = to_vec(params);
  be->set_params(params.data());
  be->zero_grad();
  const TestBatch b0 = test_batch(10, cfg.vocab_size), b1 = test_batch(11, cfg.vocab_size);
  const attn::StepContext c0{99, 4, 0, true}, c1{99, 4, 1, true};
  const float loss0 = be->forward_backward(b0.batch(), 0.5f, c0);
  const float loss1 = be->forward_backward(b1.batch(), 0.5f, c1);
  std::vector<float> grads(layout.total());
  be->get_grads(grads.data());

  Vec ref_grads(layout.total(), 0.0);
  const double r0 = ref::gpt_forward_backward(layout, pd, b0.x, b0.y, B, T_, ref::Dropout{true, 99, 4, 0}, 0.5,
                                              &ref_grads);
  const double r1 = ref::gpt_forward_backward(layout, pd, b1.x, b1.y, B, T_, ref::Dropout{true, 99, 4, 1}, 0.5,
                                              &ref_grads);
  EXPECT_REL(Vec{loss0}, Vec{r0}, tol, prec + " loss micro-step 0");
  EXPECT_REL(Vec{loss1}, Vec{r1}, tol, prec + " loss micro-step 1");
  EXPECT_REL(to_vec(grads), ref_grads, tol, prec + " all gradients");
  expect_tensors_close(layout, grads, ref_grads, tol, prec + " gradients");

  // grad norm of what the device holds
  double sq = 0.0;
  for (float g : grads) sq += static_cast<double>(g) * g;
  EXPECT_REL(Vec{be->grad_norm()}, Vec{std::sqrt(sq)}, 1e-5, prec + " grad_norm");

  // eval loss (no dropout) and last-position logits
  const TestBatch b2 = test_batch(12, cfg.vocab_size);
  Vec logits;
  const double r2 = ref::gpt_forward_backward(layout, pd, b2.x, b2.y, B, T_, ref::Dropout{}, 1.0, nullptr, &logits);
  EXPECT_REL(Vec{be->forward_loss(b2.batch())}, Vec{r2}, tol, prec + " forward_loss");
  std::vector<float> last(static_cast<size_t>(B) * cfg.vocab_size);
  be->last_logits(b2.x.data(), B, T_, last.data());
  Vec want_last;
  for (int r = 0; r < B; ++r)
    for (int v = 0; v < cfg.vocab_size; ++v)
      want_last.push_back(logits[(static_cast<size_t>(r) * T_ + T_ - 1) * cfg.padded_vocab_size + v]);
  EXPECT_REL(to_vec(last), want_last, tol, prec + " last_logits");
}

TEST_P(Backend, AdamWStepMatchesReference) {
  SKIP_WITHOUT_GPU();
  const std::string prec = GetParam();
  const attn::GPTConfig cfg = small_config(0.0f);
  auto be = make(cfg, prec);
  const attn::ParamLayout& layout = be->layout();
  const std::vector<float> params = test_params(layout, 5);
  be->set_params(params.data());
  std::vector<float> m(layout.total()), v(layout.total());
  const Vec mr = tu::random_vec(m.size(), 20, 1e-3), vr = tu::random_vec(v.size(), 21, 1e-5);
  for (size_t i = 0; i < m.size(); ++i) m[i] = static_cast<float>(mr[i]), v[i] = static_cast<float>(std::abs(vr[i]));
  be->set_optimizer_state(m.data(), v.data());
  be->zero_grad();
  const TestBatch b = test_batch(30, cfg.vocab_size);
  be->forward_backward(b.batch(), 1.0f, attn::StepContext{1, 0, 0, true});
  std::vector<float> g(layout.total());
  be->get_grads(g.data());

  const attn::AdamWConfig ac{0.9f, 0.95f, 1e-8f, 0.1f};
  const float lr = 1e-3f, mult = 0.8f;
  const int64_t t = 3;
  be->adamw_step(ac, lr, mult, t);
  std::vector<float> p2(layout.total()), m2(layout.total()), v2(layout.total());
  be->get_params(p2.data());
  be->get_optimizer_state(m2.data(), v2.data());

  Vec pw(layout.total()), mw(layout.total()), vw(layout.total()), dp(layout.total()), dp_got(layout.total());
  for (size_t i = 0; i < pw.size(); ++i) pw[i] = params[i], mw[i] = m[i], vw[i] = v[i];
  Vec wd(layout.total(), 0.0);  // padding between tensors: p = 0, so no decay either way
  for (const attn::ParamTensor& te : layout.tensors())
    if (te.decay()) std::fill(wd.begin() + te.offset, wd.begin() + te.offset + te.numel, ac.weight_decay);
  for (size_t i = 0; i < pw.size(); ++i)
    ref::adamw(pw[i], mw[i], vw[i], g[i], lr, ac.beta1, ac.beta2, ac.eps, wd[i], mult, t);
  for (size_t i = 0; i < pw.size(); ++i) dp[i] = pw[i] - params[i], dp_got[i] = static_cast<double>(p2[i]) - params[i];
  EXPECT_REL(to_vec(p2), pw, 1e-6, prec + " adamw params");
  EXPECT_REL(dp_got, dp, 1e-4, prec + " adamw update");
  EXPECT_REL(to_vec(m2), mw, 1e-5, prec + " adamw m");
  EXPECT_REL(to_vec(v2), vw, 1e-5, prec + " adamw v");

  // the matmul copy of the weights (bf16) follows the update: eval loss with the new params
  std::vector<float> p2f(p2);
  const double r = ref::gpt_forward_backward(layout, to_vec(p2f), b.x, b.y, B, T_, ref::Dropout{}, 1.0, nullptr);
  EXPECT_REL(Vec{be->forward_loss(b.batch())}, Vec{r}, model_tol(prec), prec + " forward_loss after step");
}

TEST_P(Backend, DeterministicGradients) {
  SKIP_WITHOUT_GPU();
  const std::string prec = GetParam();
  const attn::GPTConfig cfg = small_config(0.1f);
  auto be = make(cfg, prec);
  const std::vector<float> params = test_params(be->layout(), 7);
  be->set_params(params.data());
  const TestBatch b = test_batch(40, cfg.vocab_size);
  std::vector<float> g1(be->layout().total()), g2(be->layout().total());
  be->zero_grad();
  const float l1 = be->forward_backward(b.batch(), 1.0f, attn::StepContext{5, 1, 0, true});
  be->get_grads(g1.data());
  be->zero_grad();
  const float l2 = be->forward_backward(b.batch(), 1.0f, attn::StepContext{5, 1, 0, true});
  be->get_grads(g2.data());
  EXPECT_EQ(l1, l2);
  EXPECT_EQ(std::memcmp(g1.data(), g2.data(), g1.size() * sizeof(float)), 0) << "gradients differ between runs";
}

TEST_P(Backend, MemoryReport) {
  SKIP_WITHOUT_GPU();
  const std::string prec = GetParam();
  auto be = make(small_config(0.0f), prec);
  const attn::MemoryReport r = be->memory();
  const size_t total = be->layout().total();
  auto get = [&](const std::string& n) {
    for (const auto& c : r.categories)
      if (c.name == n) return c;
    ADD_FAILURE() << "no memory category " << n;
    return attn::MemoryCategory{};
  };
  // fp32 master (+ bf16 copy) and gradients; the buffers are padded so that ZeRO-1 splits them
  // evenly for 1..8 ranks (CudaDataParallel::padded_floats).
  const size_t padded = attn::CudaDataParallel::padded_floats(total);
  ASSERT_GE(padded, total);
  EXPECT_EQ(get("parameters").bytes, padded * 4 + (prec == "fp32" ? 0 : padded * 2));
  EXPECT_EQ(get("gradients").bytes, padded * 4);
  EXPECT_GE(get("optimizer").bytes, total * 8);
  EXPECT_GT(get("activations").bytes, 0u);
  EXPECT_GT(get("attention").bytes, 0u);
  EXPECT_GE(get("workspace").bytes, size_t{32} << 20);
  EXPECT_GE(r.total_peak, get("activations").bytes + get("attention").bytes);
  EXPECT_GT(r.device_used, r.total_peak / 2);
  for (const auto& c : r.categories)
    std::printf("    [mem] %s %-12s %zu bytes (peak %zu)\n", prec.c_str(), c.name.c_str(), c.bytes, c.peak);
}

TEST(BackendErrors, OutOfMemoryNamesTheCategory) {
  SKIP_WITHOUT_GPU();
  try {
    make(small_config(0.0f), "bf16", /*max_batch=*/1 << 24, /*max_seq=*/80);
    ADD_FAILURE() << "an absurd batch was allocated";
  } catch (const attn::Error& e) {
    const std::string msg = e.what();
    std::printf("    [oom] %s\n", msg.c_str());
    EXPECT_NE(msg.find("out of GPU memory"), std::string::npos) << msg;
    EXPECT_NE(msg.find("for activations"), std::string::npos) << msg;
    EXPECT_NE(msg.find("training.batch_size"), std::string::npos) << msg;
  }
  // the device is still usable afterwards
  auto be = make(small_config(0.0f), "fp32");
  const TestBatch b = test_batch(50, 101);
  EXPECT_TRUE(std::isfinite(be->forward_loss(b.batch())));
}

TEST(BackendErrors, BadInputsAndOptions) {
  SKIP_WITHOUT_GPU();
  auto expect_error = [](auto&& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error (expected '" << needle << "')";
    } catch (const attn::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([] { make(small_config(0.0f), "fp16"); }, "device.precision");
  auto be = make(small_config(0.0f), "fp32");
  TestBatch b = test_batch(60, 101);
  b.x[3] = 101;
  expect_error([&] { be->forward_loss(b.batch()); }, "token id 101");
  b = test_batch(60, 101);
  expect_error([&] { be->forward_loss(attn::Batch{b.x.data(), b.y.data(), B + 1, T_}); }, "max_batch");
  attn::BackendOptions o;
  o.precision = "fp32";
  o.max_batch = 1, o.max_seq = 16;
  o.attention.alibi = true;
  expect_error([&] { attn::make_cuda_backend(small_config(0.0f), o); }, "attention.alibi");
}

}  // namespace
