// The CUDA backend against the CPU backend (make_backend device "cpu") on the same
// parameters and batch: forward loss and every parameter gradient (fp32: 1e-4, bf16: 2e-2),
// and one AdamW step against the CPU optimizer.
//
// Compiled in only once the CPU backend is merged (its model/gpt_cpu.h is visible): until
// then this file holds no tests.
#if __has_include("model/gpt_cpu.h")
#include <algorithm>
#include <string>

#include "backend/backend.h"
#include "backend/cuda_backend.h"
#include "backend_parity.h"
#include "test_util.h"

namespace {

using tu::Vec;

// naive: head_dim 18 (no tile fits), GQA, attention dropout. flash: head_dim 64 (what its
// kernels support), GQA, attention dropout inside the kernels (the same masks as the CPU).
attn::GPTConfig cfg_for_parity(const std::string& impl) {
  attn::GPTConfig c;
  c.vocab_size = 101, c.padded_vocab_size = 128, c.block_size = 80;
  c.n_layer = 2, c.n_head = 4, c.n_kv_head = 2, c.n_embd = impl == "flash" ? 256 : 72;
  c.dropout = 0.1f;  // both backends draw the same masks (dropout_sites.h)
  c.attn_dropout = 0.1f;
  return c;
}

std::unique_ptr<attn::Backend> backend(const std::string& device, const std::string& precision,
                                       const std::string& impl) {
  return tu::parity_backend(cfg_for_parity(impl), device, precision, impl);
}

class VsCpu : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};
INSTANTIATE_TEST_SUITE_P(Precisions, VsCpu,
                         ::testing::Combine(::testing::Values("fp32", "bf16"), ::testing::Values("naive", "flash")));

TEST_P(VsCpu, LossGradientsAndAdamW) {
  SKIP_WITHOUT_GPU();
  const auto [prec_, impl] = GetParam();
  const std::string prec = prec_ + " " + impl;
  const double tol = prec_ == "fp32" ? 1e-4 : 2e-2;
  auto cpu = backend("cpu", "fp32", impl);
  auto gpu = backend("cuda", prec_, impl);
  const attn::ParamLayout& layout = cpu->layout();
  const std::vector<float> params = tu::set_same_initial_params(*cpu, *gpu);

  const int B = 3, T = 77;
  std::mt19937_64 g(2);
  std::vector<int32_t> x(B * T), y(B * T);
  for (auto& v : x) v = static_cast<int32_t>(g() % 101);
  for (auto& v : y) v = static_cast<int32_t>(g() % 101);
  for (int i = 0; i < B * T; i += 9) y[i] = -1;
  tu::expect_loss_and_grads_match(*cpu, *gpu, attn::Batch{x.data(), y.data(), B, T}, attn::StepContext{7, 3, 0, true},
                                  tol, prec);

  // one AdamW step on the CPU's gradients from the same state
  const float norm = cpu->grad_norm();
  EXPECT_REL(Vec{gpu->grad_norm()}, Vec{norm}, tol, prec + " grad norm vs cpu");
  const attn::AdamWConfig ac{};
  cpu->adamw_step(ac, 1e-3f, 1.0f / std::max(1.0f, norm), 1);
  gpu->adamw_step(ac, 1e-3f, 1.0f / std::max(1.0f, norm), 1);
  std::vector<float> pc(layout.total()), pg(layout.total());
  cpu->get_params(pc.data());
  gpu->get_params(pg.data());
  // The first Adam step is ~lr * sign(g): compare the update itself where the gradients
  // agree to 1e-4 (fp32); with bf16 gradients compare the new parameters.
  Vec dc(pc.size()), dg(pg.size());
  for (size_t i = 0; i < pc.size(); ++i) dc[i] = pc[i] - params[i], dg[i] = pg[i] - params[i];
  if (prec_ == "fp32") EXPECT_REL(dg, dc, 1e-3, prec + " adamw update vs cpu");
  EXPECT_REL(Vec(pg.begin(), pg.end()), Vec(pc.begin(), pc.end()), prec_ == "fp32" ? 1e-5 : 2e-2,
             prec + " params after adamw vs cpu");
}

}  // namespace
#endif
