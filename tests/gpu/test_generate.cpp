// Cached generation on the CUDA backend (src/backend/cuda_generator.cu) against the float64
// CPU model (CpuGPT<double>::last_logits over the whole sequence: no cache at all), at an
// awkward shape: GQA 4 heads over 2 kv heads, head dim 64 (what the flash and decode
// kernels take), vocab 101 padded to 128, prompts of lengths 1, 13 and 6 in one batch.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/generator.h"
#include "core/error.h"
#include "kernels/gemv.h"
#include "model/gpt_cpu.h"
#include "test_util.h"
#include "tests/test_support.h"
#include "train/generate.h"

namespace {

using namespace attn;

GPTConfig gen_cfg() {
  GPTConfig c;
  c.vocab_size = 101, c.padded_vocab_size = 128, c.block_size = 96;
  c.n_layer = 2, c.n_head = 4, c.n_kv_head = 2, c.n_embd = 256;
  return c;
}

std::unique_ptr<Backend> gpu_backend(const std::string& precision, const std::string& impl, int max_batch = 3,
                                     const AttentionOptions& attention = {}) {
  BackendOptions o;
  o.device = "cuda", o.precision = precision, o.max_batch = max_batch, o.max_seq = 96;
  o.attention = attention;
  o.attention.impl = impl;
  return make_backend(gen_cfg(), o);
}

// GPT-2 init, weights scaled by `spread` so that greedy choices have clear margins.
std::vector<float> params_for(const ParamLayout& layout, uint64_t seed, float spread) {
  std::vector<float> p(layout.total());
  init_gpt2_params(layout, seed, p.data());
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.02f);
  for (float& x : p)
    if (x != 0.0f && x != 1.0f) x = x * spread + n(rng);  // also perturb biases/norms a little
  return p;
}

std::vector<int32_t> random_tokens(std::mt19937_64& rng, int n) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % 101);
  return t;
}

// Runs prefill + `steps` decode steps with random next tokens, and returns the worst
// rms(logits - ref) / rms(ref) over all steps and sequences, ref = float64 recompute with the
// backend's attention variants `attention`; prompts: random ones of lengths 1, 13 and 6 unless given.
double worst_vs_fp64(Backend& gpu, const std::vector<float>& params, KVCacheDType dt, bool graph, int steps,
                     uint64_t seed, const AttentionOptions& attention = {},
                     std::vector<std::vector<int32_t>> seqs = {}) {
  const GPTConfig g = gen_cfg();
  AttentionOptions on_cpu = attention;
  on_cpu.impl = "naive";
  CpuGPT<double> ref(g, on_cpu);
  std::copy(params.begin(), params.end(), ref.params());
  std::mt19937_64 rng(seed);
  if (seqs.empty())
    for (int n : {1, 13, 6}) seqs.push_back(random_tokens(rng, n));
  const int B = static_cast<int>(seqs.size());
  std::vector<int> lengths;
  for (const auto& s : seqs) lengths.push_back(static_cast<int>(s.size()));
  const int T = *std::max_element(lengths.begin(), lengths.end());
  std::vector<int32_t> padded(B * T, 7);
  for (int b = 0; b < B; ++b) std::copy(seqs[b].begin(), seqs[b].end(), padded.begin() + b * T);
  GeneratorOptions go;
  go.batch = B, go.max_len = T + steps + 1, go.cache = dt, go.cuda_graph = graph;
  auto gen = gpu.make_generator(go);
  EXPECT_EQ(gen->cache_bytes(), kv_cache_bytes(g, B, go.max_len, dt));
  std::vector<float> logits(B * g.vocab_size);
  gen->prefill(padded.data(), lengths.data(), T, logits.data());
  double worst = 0;
  for (int s = 0; s <= steps; ++s) {
    std::vector<int32_t> next(B);
    for (int b = 0; b < B; ++b) {
      std::vector<double> r(g.vocab_size);
      ref.last_logits(seqs[b].data(), 1, static_cast<int>(seqs[b].size()), r.data());
      double e2 = 0, r2 = 0;
      for (int v = 0; v < g.vocab_size; ++v) {
        e2 += std::pow(logits[b * g.vocab_size + v] - r[v], 2);
        r2 += r[v] * r[v];
      }
      worst = std::max(worst, std::sqrt(e2 / r2));
      next[b] = random_tokens(rng, 1)[0];
      seqs[b].push_back(next[b]);
    }
    if (s < steps) gen->decode(next.data(), logits.data());
  }
  return worst;
}

class GenerateGpu : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Generate, GenerateGpu, ::testing::Values("naive", "flash"));

// fp32: the cached logits equal the float64 recompute; greedy tokens equal the uncached
// generate() of the same backend; a batch of different prompt lengths equals each alone.
TEST_P(GenerateGpu, Fp32CachedEqualsRecompute) {
  SKIP_WITHOUT_GPU();
  auto gpu = gpu_backend("fp32", GetParam());
  const auto params = params_for(gpu->layout(), 3, 1.0f);
  gpu->set_params(params.data());
  for (bool graph : {false, true}) {
    const double err = worst_vs_fp64(*gpu, params, KVCacheDType::FP32, graph, 40, 4);
    printf("fp32 %s graph=%d: worst rms logits error vs fp64 %.3g\n", GetParam().c_str(), graph, err);
    EXPECT_LT(err, 1e-5) << "graph " << graph;
  }
  const auto spread = params_for(gpu->layout(), 5, 6.0f);
  gpu->set_params(spread.data());
  std::mt19937_64 rng(6);
  const std::vector<std::vector<int32_t>> prompts{random_tokens(rng, 1), random_tokens(rng, 17), random_tokens(rng, 5)};
  SamplingOptions opt;
  opt.temperature = 0, opt.max_new_tokens = 50;
  const auto together = generate_cached(*gpu, prompts, opt, KVCacheDType::FP32, nullptr);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(together[i].size(), 50u);
    EXPECT_EQ(together[i], generate(*gpu, prompts[i], 1, opt, nullptr)[0]) << "prompt " << i;
    EXPECT_EQ(together[i], generate_cached(*gpu, {prompts[i]}, opt, KVCacheDType::FP32, nullptr)[0]) << "prompt " << i;
  }
}

// Past block_size (issue 19): a batch mixing a prompt of 2 x block_size with short ones, 3 x
// block_size new tokens each; the full cache is re-prefilled with the last block_size - 1
// tokens every step (the captured decode graph unchanged): every sequence gets every token
// asked, equal to the uncached generate() of each prompt alone (fp32 greedy).
TEST_P(GenerateGpu, PastBlockSizeEqualsRecompute) {
  SKIP_WITHOUT_GPU();
  auto gpu = gpu_backend("fp32", GetParam());
  const auto spread = params_for(gpu->layout(), 7, 6.0f);
  gpu->set_params(spread.data());
  const int block = gpu->layout().config().block_size;
  std::mt19937_64 rng(8);
  const std::vector<std::vector<int32_t>> prompts{random_tokens(rng, 2 * block), random_tokens(rng, 3),
                                                  random_tokens(rng, block - 1)};
  SamplingOptions opt;
  opt.temperature = 0, opt.max_new_tokens = 3 * block;
  const auto together = generate_cached(*gpu, prompts, opt, KVCacheDType::FP32, nullptr);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(together[i].size(), static_cast<size_t>(3 * block)) << "prompt " << i;
    EXPECT_EQ(together[i], generate(*gpu, prompts[i], 1, opt, nullptr)[0]) << "prompt " << i;
  }
}

// bf16 activations and weights: the error of every cache precision against float64 stays
// within bf16 noise (fp32/bf16 cache) or a little more (8-bit caches).
TEST_P(GenerateGpu, Bf16LogitsWithinNoise) {
  SKIP_WITHOUT_GPU();
  auto gpu = gpu_backend("bf16", GetParam());
  const auto params = params_for(gpu->layout(), 7, 1.0f);
  gpu->set_params(params.data());
  const std::vector<std::pair<KVCacheDType, double>> limits{
      {KVCacheDType::FP32, 2e-2}, {KVCacheDType::BF16, 2e-2}, {KVCacheDType::INT8, 4e-2}, {KVCacheDType::FP8_E4M3, 8e-2}};
  for (auto [dt, limit] : limits) {
    const double err = worst_vs_fp64(*gpu, params, dt, true, 30, 8);
    printf("bf16 %s, %s cache: worst rms logits error vs fp64 %.3g (limit %.g)\n", GetParam().c_str(),
           kv_cache_dtype_name(dt), err, limit);
    EXPECT_LT(err, limit) << kv_cache_dtype_name(dt);
    EXPECT_GT(err, 0.0);
  }
}

// The cuBLASLt decode step (bf16 at B > kern::kGemvMaxRows: each residual add fused with the
// layernorm after it, c_proj's split-K partials summed by it (GeneratorOptions::fc_proj_splits:
// K = 4 x 256 in the default's 4 slices), the logits and their argmax in one pass) within bf16
// noise of float64, prompts of lengths 1 to 13, replayed from a graph.
TEST_P(GenerateGpu, Bf16WideBatchWithinNoise) {
  SKIP_WITHOUT_GPU();
  auto gpu = gpu_backend("bf16", GetParam());
  const auto params = params_for(gpu->layout(), 7, 1.0f);
  gpu->set_params(params.data());
  std::mt19937_64 rng(31);
  std::vector<std::vector<int32_t>> seqs;
  for (int b = 0; b < kern::kGemvMaxRows + 2; ++b) seqs.push_back(random_tokens(rng, b == 0 ? 1 : 1 + static_cast<int>(rng() % 13)));
  const double err = worst_vs_fp64(*gpu, params, KVCacheDType::BF16, true, 12, 9, {}, seqs);
  printf("bf16 %s, %d sequences: worst rms logits error vs fp64 %.3g\n", GetParam().c_str(), kern::kGemvMaxRows + 2, err);
  EXPECT_LT(err, 2e-2);
  EXPECT_GT(err, 0.0);
}

// The graph replays exactly the kernels of the launched step: identical logits.
TEST_P(GenerateGpu, GraphReplayEqualsLaunchedDecode) {
  SKIP_WITHOUT_GPU();
  for (const char* prec : {"fp32", "bf16"}) {
    auto gpu = gpu_backend(prec, GetParam());
    const auto params = params_for(gpu->layout(), 9, 1.0f);
    gpu->set_params(params.data());
    std::vector<std::vector<float>> out[2];
    for (int graph = 0; graph < 2; ++graph) {
      GeneratorOptions go;
      go.batch = 3, go.max_len = 60, go.cache = KVCacheDType::INT8, go.cuda_graph = graph;
      auto gen = gpu->make_generator(go);
      std::mt19937_64 rng(10);
      const auto tokens = random_tokens(rng, 3 * 9);
      const std::vector<int> lengths{9, 2, 5};
      std::vector<float> logits(3 * 101);
      gen->prefill(tokens.data(), lengths.data(), 9, logits.data());
      for (int s = 0; s < 40; ++s) {
        const auto next = random_tokens(rng, 3);
        gen->decode(next.data(), logits.data());
        out[graph].push_back(logits);
      }
      EXPECT_EQ(gen->length(1), 42);
    }
    double worst = 0;
    for (size_t s = 0; s < out[0].size(); ++s)
      for (size_t i = 0; i < out[0][s].size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(out[0][s][i] - out[1][s][i])));
    printf("%s %s: graph vs launched max |diff| %.3g\n", prec, GetParam().c_str(), worst);
    EXPECT_LE(worst, 1e-6) << prec;
  }
}

// Teacher-forced loss through the decode path equals forward_loss (fp32), and an 8-bit cache
// moves a bf16 model's loss by little.
TEST_P(GenerateGpu, TeacherForcedLossEqualsForwardLoss) {
  SKIP_WITHOUT_GPU();
  auto gpu = gpu_backend("fp32", GetParam(), 4);
  const auto params = params_for(gpu->layout(), 11, 2.0f);
  gpu->set_params(params.data());
  std::mt19937_64 rng(12);
  const int B = 4, T = 77;
  auto x = random_tokens(rng, B * T), y = random_tokens(rng, B * T);
  for (int i = 0; i < B * T; i += 11) y[i] = -1;
  const double full = gpu->forward_loss(Batch{x.data(), y.data(), B, T});
  const double cached = cached_teacher_forced_loss(*gpu, x.data(), y.data(), B, T, KVCacheDType::FP32);
  printf("fp32 %s: forward_loss %.7f, cached %.7f\n", GetParam().c_str(), full, cached);
  EXPECT_NEAR(cached, full, 1e-5 * full);
  auto bf = gpu_backend("bf16", GetParam(), 4);
  bf->set_params(params.data());
  const double b16 = cached_teacher_forced_loss(*bf, x.data(), y.data(), B, T, KVCacheDType::BF16);
  const double i8 = cached_teacher_forced_loss(*bf, x.data(), y.data(), B, T, KVCacheDType::INT8);
  const double f8 = cached_teacher_forced_loss(*bf, x.data(), y.data(), B, T, KVCacheDType::FP8_E4M3);
  printf("bf16 %s: cached loss bf16 %.5f int8 %.5f fp8 %.5f (fp32 forward %.5f)\n", GetParam().c_str(), b16, i8, f8,
         full);
  EXPECT_NEAR(b16, full, 0.02 * full);
  EXPECT_NEAR(i8, b16, 0.02);
  EXPECT_NEAR(f8, b16, 0.05);
}

TEST(GenerateGpuMemory, RefusesACacheLargerThanTheDevice) {
  SKIP_WITHOUT_GPU();
  auto gpu = gpu_backend("bf16", "naive");
  GeneratorOptions go;
  go.batch = 1 << 22, go.max_len = 96, go.cache = KVCacheDType::BF16;  // 2*2*2^22*2*96*64*2 B = 384 GiB
  std::string msg;
  try {
    gpu->make_generator(go);
  } catch (const attn::Error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("KV cache"), std::string::npos) << msg;
  EXPECT_NE(msg.find("384.00 GiB"), std::string::npos) << msg;
  EXPECT_NE(msg.find("free on the GPU"), std::string::npos) << msg;
}

// GeneratorOptions::fc_proj_splits below 0, or not cutting K evenly: one error naming the option.
TEST(GenerateGpuOptions, RefusesNegativeFcProjSplits) {
  SKIP_WITHOUT_GPU();
  auto gpu = gpu_backend("bf16", "naive");
  GeneratorOptions go;
  for (const int bad : {-1, 3}) {  // (3 does not cut K = 1024 into equal parts)
    go.batch = 12, go.max_len = 32, go.cache = KVCacheDType::BF16, go.fc_proj_splits = bad;
    const std::string msg = attn::testing::error_of([&] { gpu->make_generator(go); });
    EXPECT_NE(msg.find("fc_proj_splits"), std::string::npos) << bad << ": " << msg;
  }
}

// Prefix-LM (kernels/variants/prefix_lm.h): flash prefill with the prefix mask, then the decode
// kernel, against the float64 recompute; fixed prefixes and prefixes ending with a separator
// token (0), prompts of different lengths in one batch. A prompt shorter than its prefix would
// attend to its padding on the GPU: refused, one line.
std::vector<int32_t> no_zero(std::vector<int32_t> t) {
  for (auto& x : t) x = x == 0 ? 1 : x;
  return t;
}

TEST(PrefixLmGpu, CachedGenerationEqualsRecompute) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(11);
  AttentionOptions fixed, data;
  fixed.prefix_lm = data.prefix_lm = true;
  fixed.prefix_len = 5, data.prefix_token = 0;
  std::vector<std::vector<int32_t>> with_sep{no_zero(random_tokens(rng, 9)), no_zero(random_tokens(rng, 13)),
                                             no_zero(random_tokens(rng, 4))};
  with_sep[0][3] = 0, with_sep[1][11] = 0, with_sep[1][12] = 0, with_sep[2][0] = 0;  // prefixes of 4, 12 and 1
  for (const auto& [a, prompts] : {std::pair{fixed, std::vector{no_zero(random_tokens(rng, 7)), no_zero(random_tokens(rng, 13)),
                                                                 no_zero(random_tokens(rng, 5))}},
                                   std::pair{data, with_sep}}) {
    auto gpu = gpu_backend("fp32", "flash", 3, a);
    const auto params = params_for(gpu->layout(), 3, 4.0f);
    gpu->set_params(params.data());
    const double err = worst_vs_fp64(*gpu, params, KVCacheDType::FP32, false, 6, 4, a, prompts);
    printf("prefix-LM (%s): worst rms logits error vs fp64 %.3g\n", a.prefix_len ? "fixed 5" : "separator", err);
    EXPECT_LT(err, 1e-5);
  }
}

TEST(PrefixLmGpu, RefusesAPrefixPastAPaddedPrompt) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(13);
  AttentionOptions a;
  a.prefix_lm = true, a.prefix_len = 8;
  auto gpu = gpu_backend("fp32", "flash", 3, a);
  const auto params = params_for(gpu->layout(), 3, 1.0f);
  gpu->set_params(params.data());
  try {
    worst_vs_fp64(*gpu, params, KVCacheDType::FP32, false, 1, 5, a, {random_tokens(rng, 3), random_tokens(rng, 13)});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("padding"), std::string::npos) << e.what();
  }
}

}  // namespace
