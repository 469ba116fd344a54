// GPT-2 124M at its real sizes (V = 50257 padded to 50304, T = 1024, C = 768, 12 layers):
// the loss starts at ~ln(V), a few AdamW steps on one batch lower it, and the step time
// and memory are printed (a smoke test, not a benchmark).
#include <algorithm>
#include <chrono>

#include "backend/cuda_backend.h"
#include "test_util.h"

namespace {

class Gpt2Smoke : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Precisions, Gpt2Smoke, ::testing::Values("bf16", "fp32"));

TEST_P(Gpt2Smoke, LossFallsAndStepTime) {
  SKIP_WITHOUT_GPU();
  attn::GPTConfig c;
  c.vocab_size = 50257, c.padded_vocab_size = 50304, c.block_size = 1024;
  c.n_layer = 12, c.n_head = 12, c.n_kv_head = 12, c.n_embd = 768;
  const int B = 4, T = 1024;
  attn::BackendOptions o;
  o.precision = GetParam(), o.max_batch = B, o.max_seq = T;
  auto be = attn::make_cuda_backend(c, o);
  static std::vector<float> params;  // shared by both precisions (the init takes seconds)
  if (params.empty()) {
    params.resize(be->layout().total());
    attn::init_gpt2_params(be->layout(), 1, params.data());
  }
  be->set_params(params.data());
  std::mt19937_64 g(3);
  std::vector<int32_t> x(B * T), y(B * T);
  for (auto& v : x) v = static_cast<int32_t>(g() % c.vocab_size);
  for (int i = 0; i < B * T; ++i) y[i] = i + 1 < B * T ? x[i + 1] : 0;
  const attn::Batch batch{x.data(), y.data(), B, T};
  std::vector<float> losses;
  std::vector<double> ms;
  for (int step = 0; step < 8; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    be->zero_grad();
    losses.push_back(be->forward_backward(batch, 1.0f, attn::StepContext{1, step, 0, true}));
    const float norm = be->grad_norm();
    ASSERT_TRUE(std::isfinite(norm)) << "step " << step;
    be->adamw_step(attn::AdamWConfig{}, 1e-3f, norm > 1.0f ? 1.0f / norm : 1.0f, step + 1);
    be->grad_norm();  // waits for the step
    ms.push_back(1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin() + 1, ms.end());
  const double med = ms[1 + (ms.size() - 1) / 2];
  std::printf("    [gpt2] %s B=%d T=%d: loss %.4f -> %.4f, step %.1f ms (median of 7), %.0f tok/s, first %.0f ms\n",
              o.precision.c_str(), B, T, losses.front(), losses.back(), med, B * T / (med / 1e3), ms[0]);
  const attn::MemoryReport mem = be->memory();
  std::printf("    [gpt2] %s memory:", o.precision.c_str());
  for (const auto& m : mem.categories) std::printf(" %s %.0f MiB", m.name.c_str(), m.peak / 1048576.0);
  std::printf(", total peak %.0f MiB, device used %.0f MiB\n", mem.total_peak / 1048576.0, mem.device_used / 1048576.0);
  EXPECT_NEAR(losses.front(), std::log(50257.0), 0.3);
  EXPECT_LT(losses.back(), losses.front() - 0.5f);
}

}  // namespace
