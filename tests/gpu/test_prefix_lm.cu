// Prefix-LM (kernels/variants/prefix_lm.h) on the GPU, cached generation: prefill by the flash
// kernels with the prefix mask, then the decode kernel, against the float64 CPU model over the
// whole sequence (CpuGPT<double>::last_logits, no cache), fixed prefixes and prefixes from a
// separator token, GQA (4 heads over 2 kv heads), prompts of different lengths in one batch.
// The flash forward/backward with prefix-LM: FlashVariants.*prefix* (test_flash_variants.cu).
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/generator.h"
#include "core/error.h"
#include "model/gpt_cpu.h"
#include "test_util.h"

namespace {

using namespace attn;

GPTConfig cfg() {
  GPTConfig c;
  c.vocab_size = 101, c.padded_vocab_size = 128, c.block_size = 64;
  c.n_layer = 2, c.n_head = 4, c.n_kv_head = 2, c.n_embd = 256;
  return c;
}

// Worst relative logit error of prefill + decode steps against the float64 recompute.
double worst_vs_fp64(const AttentionOptions& a, const std::vector<std::vector<int32_t>>& prompts, uint64_t seed) {
  const GPTConfig g = cfg();
  BackendOptions o;
  o.device = "cuda", o.precision = "fp32", o.max_batch = 3, o.max_seq = 64;
  o.attention = a;
  auto gpu = make_backend(g, o);
  std::vector<float> params(gpu->layout().total());
  init_gpt2_params(gpu->layout(), seed, params.data());
  for (float& x : params) x *= 4.0f;
  gpu->set_params(params.data());
  AttentionOptions on_cpu = a;
  on_cpu.impl = "naive";
  CpuGPT<double> ref(g, on_cpu, 1, 64);
  std::copy(params.begin(), params.end(), ref.params());
  const int B = static_cast<int>(prompts.size()), steps = 6;
  int T = 0;
  for (const auto& p : prompts) T = std::max(T, static_cast<int>(p.size()));
  std::vector<int32_t> padded(static_cast<size_t>(B) * T, 0);
  std::vector<int> lengths;
  std::vector<std::vector<int32_t>> seqs = prompts;
  for (int b = 0; b < B; ++b) {
    std::copy(prompts[b].begin(), prompts[b].end(), padded.begin() + static_cast<size_t>(b) * T);
    lengths.push_back(static_cast<int>(prompts[b].size()));
  }
  GeneratorOptions go;
  go.batch = B, go.max_len = T + steps + 1, go.cache = KVCacheDType::FP32;
  auto gen = gpu->make_generator(go);
  std::vector<float> logits(static_cast<size_t>(B) * g.vocab_size);
  gen->prefill(padded.data(), lengths.data(), T, logits.data());
  std::mt19937_64 rng(seed);
  double worst = 0;
  for (int s = 0; s <= steps; ++s) {
    std::vector<int32_t> next(B);
    for (int b = 0; b < B; ++b) {
      std::vector<double> r(g.vocab_size);
      ref.last_logits(seqs[b].data(), 1, static_cast<int>(seqs[b].size()), r.data());
      double num = 0, den = 0;
      for (int v = 0; v < g.vocab_size; ++v) {
        const double d = logits[static_cast<size_t>(b) * g.vocab_size + v] - r[v];
        num += d * d, den += r[v] * r[v];
      }
      worst = std::max(worst, std::sqrt(num / std::max(den, 1e-30)));
      next[b] = 1 + static_cast<int32_t>(rng() % 100);
      seqs[b].push_back(next[b]);
    }
    if (s < steps) gen->decode(next.data(), logits.data());
  }
  return worst;
}

std::vector<int32_t> tokens(std::mt19937_64& rng, int n) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = 1 + static_cast<int32_t>(rng() % 100);
  return t;
}

TEST(PrefixLmGpu, CachedGenerationEqualsRecomputeFixedPrefix) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(11);
  AttentionOptions a;
  a.impl = "flash", a.prefix_lm = true, a.prefix_len = 5;
  const double w = worst_vs_fp64(a, {tokens(rng, 7), tokens(rng, 13), tokens(rng, 5)}, 3);
  std::printf("[prefix-lm] fixed prefix 5: worst rel logit error %.2e\n", w);
  EXPECT_LT(w, 1e-4);
}

TEST(PrefixLmGpu, CachedGenerationEqualsRecomputePrefixFromSeparator) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(12);
  AttentionOptions a;
  a.impl = "flash", a.prefix_lm = true, a.prefix_token = 0;
  std::vector<std::vector<int32_t>> p{tokens(rng, 9), tokens(rng, 13), tokens(rng, 4)};
  p[0][3] = 0, p[1][11] = 0, p[1][12] = 0, p[2][0] = 0;  // prefixes of 4, 12 and 1 tokens
  const double w = worst_vs_fp64(a, p, 4);
  std::printf("[prefix-lm] prefix from separator: worst rel logit error %.2e\n", w);
  EXPECT_LT(w, 1e-4);
}

// A prompt shorter than its prefix would attend to its padding on the GPU: refused, one line.
TEST(PrefixLmGpu, RefusesAPrefixPastAPaddedPrompt) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(13);
  AttentionOptions a;
  a.impl = "flash", a.prefix_lm = true, a.prefix_len = 8;
  try {
    worst_vs_fp64(a, {tokens(rng, 3), tokens(rng, 13)}, 5);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("padding"), std::string::npos) << e.what();
  }
}

}  // namespace
