// Cached generation on the CPU (backend/generator.h, backend/cpu_generator.*, train/generate.*):
// the cache must compute the same function as full recomputation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu_backend.h"
#include "backend/cpu_generator.h"
#include "backend/generator.h"
#include "core/kv_cache_dtype.h"
#include "core/rng.h"
#include "fd_check.h"
#include "model/gpt_cpu.h"
#include "test_support.h"
#include "train/generate.h"

using namespace attn;

namespace {

// Awkward sizes: GQA (6 heads over 2 kv heads), head dim 8, vocab 53 padded to 64.
GPTConfig gen_config() {
  GPTConfig g;
  g.vocab_size = 53, g.padded_vocab_size = 64, g.block_size = 48;
  g.n_layer = 2, g.n_head = 6, g.n_kv_head = 2, g.n_embd = 48;
  return g;
}

// GPT-2 init with the weights scaled up so that logits are far apart (greedy choices are
// then not decided by rounding noise; a wrong cache still changes them).
std::vector<float> spread_params(const ParamLayout& layout, uint64_t seed) {
  std::vector<float> p(layout.total());
  init_gpt2_params(layout, seed, p.data());
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.3f);
  for (float& x : p) x = x * 8.0f + (x != 0.0f && x != 1.0f ? n(rng) * 0.1f : 0.0f);
  return p;
}

// The test model on the CPU with spread_params(seed) as its weights.
std::unique_ptr<Backend> spread_cpu_model(uint64_t seed) {
  auto be = make_cpu_backend(gen_config(), BackendOptions{});
  const auto p = spread_params(be->layout(), seed);
  be->set_params(p.data());
  return be;
}

std::vector<int32_t> random_tokens(std::mt19937_64& rng, int n, int V) {
  std::uniform_int_distribution<int32_t> d(0, V - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = d(rng);
  return t;
}

}  // namespace

TEST(GenerateCpu, GreedyCachedEqualsRecomputeFp32) {
  const uint64_t seed = attn::testing::test_seed();
  SCOPED_TRACE(seed);
  auto be = spread_cpu_model(seed);
  std::mt19937_64 rng(seed);
  const auto prompt = random_tokens(rng, 7, 53);
  SamplingOptions opt;
  opt.temperature = 0;
  opt.max_new_tokens = 30;
  const auto full = generate(*be, prompt, 1, opt, nullptr);
  const auto cached = generate_cached(*be, {prompt}, opt, KVCacheDType::FP32, nullptr);
  ASSERT_EQ(cached.size(), 1u);
  EXPECT_EQ(cached[0], full[0]);
  EXPECT_EQ(cached[0].size(), 30u);
  // also with sampling (same keys, same logits -> same draws)
  opt.temperature = 1.0, opt.top_k = 10, opt.seed = seed;
  EXPECT_EQ(generate_cached(*be, {prompt}, opt, KVCacheDType::FP32, nullptr)[0], generate(*be, prompt, 1, opt, nullptr)[0]);
}

TEST(GenerateCpu, CachedLogitsEqualRecomputeFp64) {
  const uint64_t seed = attn::testing::test_seed();
  SCOPED_TRACE(seed);
  const GPTConfig g = gen_config();
  CpuGPT<double> model(g);
  const auto pf = spread_params(model.layout(), seed);
  std::copy(pf.begin(), pf.end(), model.params());
  std::mt19937_64 rng(seed + 1);
  const int B = 3, steps = 12;
  const std::vector<int> lengths{5, 1, 9};
  const int T = 9;
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int32_t> padded(B * T, 0);
  for (int b = 0; b < B; ++b) {
    seqs.push_back(random_tokens(rng, lengths[b], g.vocab_size));
    std::copy(seqs[b].begin(), seqs[b].end(), padded.begin() + b * T);
  }
  GeneratorOptions go;
  go.batch = B, go.max_len = T + steps;
  auto gen = make_cpu_generator(model, go);
  EXPECT_EQ(gen->cache_bytes(), kv_cache_bytes(g, B, T + steps, KVCacheDType::FP32) * 2);  // doubles
  std::vector<float> logits(B * g.vocab_size);
  gen->prefill(padded.data(), lengths.data(), T, logits.data());
  double worst = 0;
  for (int s = 0; s <= steps; ++s) {
    std::vector<int32_t> next(B);
    for (int b = 0; b < B; ++b) {
      std::vector<double> ref(g.vocab_size);
      model.last_logits(seqs[b].data(), 1, static_cast<int>(seqs[b].size()), ref.data());
      for (int v = 0; v < g.vocab_size; ++v) {
        const double got = logits[b * g.vocab_size + v];  // the generator returns float logits
        worst = std::max(worst, std::fabs(got - ref[v]) / (1.0 + std::fabs(ref[v])));
      }
      next[b] = random_tokens(rng, 1, g.vocab_size)[0];
      seqs[b].push_back(next[b]);
      EXPECT_EQ(gen->length(b), static_cast<int>(seqs[b].size()) - 1);
    }
    if (s < steps) gen->decode(next.data(), logits.data());
  }
  EXPECT_LT(worst, 1e-6) << "only the final float rounding of the logits may differ";
}

// Prefix-LM (bidirectional inside each prompt's prefix, causal after it): prefill with the
// prompt's mask, then decode, equals the float64 model over the whole sequence; fixed prefixes
// and prefixes ending with a separator token, prompts of different lengths in one batch.
TEST(GenerateCpu, PrefixLmCachedLogitsEqualRecomputeFp64) {
  const uint64_t seed = attn::testing::test_seed();
  SCOPED_TRACE(seed);
  for (int from_data = 0; from_data < 2; ++from_data) {
    const GPTConfig g = gen_config();
    AttentionOptions a;
    a.prefix_lm = true;
    if (from_data) a.prefix_token = 7; else a.prefix_len = 4;
    CpuGPT<double> model(g, a);
    const auto pf = spread_params(model.layout(), seed);
    std::copy(pf.begin(), pf.end(), model.params());
    std::mt19937_64 rng(seed + 2);
    const std::vector<int> lengths{5, 4, 9};
    const int B = 3, T = 9, steps = 6;
    std::vector<std::vector<int32_t>> seqs;
    std::vector<int32_t> padded(B * T, 0);
    for (int b = 0; b < B; ++b) {
      seqs.push_back(random_tokens(rng, lengths[b], g.vocab_size));
      for (auto& t : seqs[b]) t = t == 7 ? 8 : t;
      if (from_data) seqs[b][b + 1] = 7;  // prefixes of 2, 3 and 4 tokens
      std::copy(seqs[b].begin(), seqs[b].end(), padded.begin() + b * T);
    }
    GeneratorOptions go;
    go.batch = B, go.max_len = T + steps;
    auto gen = make_cpu_generator(model, go);
    std::vector<float> logits(B * g.vocab_size);
    gen->prefill(padded.data(), lengths.data(), T, logits.data());
    double worst = 0, moved = 0;
    CpuGPT<double> causal(g);
    std::copy(pf.begin(), pf.end(), causal.params());
    for (int s = 0; s <= steps; ++s) {
      std::vector<int32_t> next(B);
      for (int b = 0; b < B; ++b) {
        std::vector<double> ref(g.vocab_size), plain(g.vocab_size);
        model.last_logits(seqs[b].data(), 1, static_cast<int>(seqs[b].size()), ref.data());
        causal.last_logits(seqs[b].data(), 1, static_cast<int>(seqs[b].size()), plain.data());
        for (int v = 0; v < g.vocab_size; ++v) {
          worst = std::max(worst, std::fabs(logits[b * g.vocab_size + v] - ref[v]) / (1.0 + std::fabs(ref[v])));
          moved = std::max(moved, std::fabs(plain[v] - ref[v]));
        }
        next[b] = random_tokens(rng, 1, g.vocab_size)[0];
        seqs[b].push_back(next[b]);
      }
      if (s < steps) gen->decode(next.data(), logits.data());
    }
    EXPECT_LT(worst, 1e-6) << "from_data " << from_data;
    EXPECT_GT(moved, 1e-3) << "the prefix must change the logits (else this test cannot fail)";
  }
}

TEST(GenerateCpu, BatchedPromptsOfDifferentLengthsEqualEachAlone) {
  const uint64_t seed = attn::testing::test_seed();
  SCOPED_TRACE(seed);
  auto be = spread_cpu_model(seed);
  std::mt19937_64 rng(seed);
  const std::vector<std::vector<int32_t>> prompts{random_tokens(rng, 1, 53), random_tokens(rng, 11, 53),
                                                  random_tokens(rng, 4, 53)};
  SamplingOptions opt;
  opt.temperature = 0;
  opt.max_new_tokens = 20;
  const auto together = generate_cached(*be, prompts, opt, KVCacheDType::FP32, nullptr);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto alone = generate_cached(*be, {prompts[i]}, opt, KVCacheDType::FP32, nullptr);
    EXPECT_EQ(together[i], alone[0]) << "prompt " << i;
    EXPECT_EQ(together[i], generate(*be, prompts[i], 1, opt, nullptr)[0]) << "prompt " << i;
  }
}

TEST(GenerateCpu, StopsAtTheStopTokenAndGoesPastTheBlock) {
  auto be = spread_cpu_model(5);
  SamplingOptions opt;
  opt.temperature = 0;
  opt.max_new_tokens = 3 * 48;  // three blocks: the context slides (it used to end at the full cache)
  const std::vector<int32_t> prompt{1, 2, 3};
  const auto out = generate_cached(*be, {prompt}, opt, KVCacheDType::FP32, nullptr);
  EXPECT_EQ(out[0].size(), 3u * 48u);
  opt.stop_token = out[0][5];
  const auto stopped = generate_cached(*be, {prompt}, opt, KVCacheDType::FP32, nullptr);
  const auto first = std::find(out[0].begin(), out[0].end(), opt.stop_token) - out[0].begin();
  EXPECT_EQ(stopped[0], std::vector<int32_t>(out[0].begin(), out[0].begin() + first));
}

// Issue 19 acceptance 4: a batch mixing a prompt of 2 x block_size with short ones, 3 x
// block_size new tokens each: every sequence gets exactly what was asked, and the cached
// tokens equal full recomputation of each prompt alone (fp32 greedy), which crops the
// prompt to block_size - 1 tokens and feeds at most block_size.
TEST(GenerateCpu, PastBlockSizeBatchedCachedEqualsRecompute) {
  const uint64_t seed = attn::testing::test_seed();
  SCOPED_TRACE(seed);
  const GPTConfig g = gen_config();
  auto be = spread_cpu_model(seed);
  std::mt19937_64 rng(seed);
  const std::vector<std::vector<int32_t>> prompts{random_tokens(rng, 2 * g.block_size, 53), random_tokens(rng, 3, 53),
                                                  random_tokens(rng, g.block_size - 1, 53), random_tokens(rng, 1, 53)};
  SamplingOptions opt;
  opt.temperature = 0;
  opt.max_new_tokens = 3 * g.block_size;
  const auto cached = generate_cached(*be, prompts, opt, KVCacheDType::FP32, nullptr);
  ASSERT_EQ(cached.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(cached[i].size(), static_cast<size_t>(opt.max_new_tokens)) << "prompt " << i;
    EXPECT_EQ(cached[i], generate(*be, prompts[i], 1, opt, nullptr)[0]) << "prompt " << i;
  }
  EXPECT_EQ(crop_prompt(prompts[0], g.block_size).size(), static_cast<size_t>(g.block_size - 1));
  EXPECT_EQ(crop_prompt(prompts[1], g.block_size), prompts[1]);
}

// The default decode_greedy (CPU) is decode followed by std::max_element per row, ids fed back.
TEST(GenerateCpu, DecodeGreedyIsTheArgmaxOfDecode) {
  auto be = make_cpu_backend(gen_config(), BackendOptions{});
  std::vector<float> p(be->layout().total());
  init_gpt2_params(be->layout(), 77, p.data());
  for (float& x : p) x *= 5.0f;
  be->set_params(p.data());
  GeneratorOptions go;
  go.batch = 2, go.max_len = 30;
  auto plain = be->make_generator(go), greedy = be->make_generator(go);
  const std::vector<int32_t> prompts{5, 9, 11, 2, 0, 0};
  const std::vector<int> lengths{3, 1};
  const int V = gen_config().vocab_size;
  std::vector<float> logits(2 * V);
  plain->prefill(prompts.data(), lengths.data(), 3, logits.data());
  greedy->prefill(prompts.data(), lengths.data(), 3, logits.data());
  EXPECT_EQ(greedy->vocab_size(), V);
  std::vector<int32_t> a{1, 2}, g{1, 2};
  for (int s = 0; s < 20; ++s) {
    plain->decode(a.data(), logits.data());
    greedy->decode_greedy(g.data(), g.data());
    for (int b = 0; b < 2; ++b) {
      a[b] = static_cast<int32_t>(std::max_element(&logits[b * V], &logits[b * V] + V) - &logits[b * V]);
      ASSERT_EQ(g[b], a[b]) << "step " << s << " sequence " << b;
    }
  }
}

// A run of greedy steps (decode_greedy_steps, the default: decode_greedy step by step) gives,
// row by row, what decode_greedy gives fed its own ids, for runs of 1, 4 and 9 steps with
// prompts of different lengths; a run longer than some sequence's room is refused by name and
// leaves the generator where it was.
TEST(GenerateCpu, DecodeGreedyStepsEqualsOneStepAtATime) {
  auto be = spread_cpu_model(31);
  GeneratorOptions go;
  go.batch = 2, go.max_len = 20;
  auto stepwise = be->make_generator(go), runs = be->make_generator(go);
  const std::vector<int32_t> prompts{5, 9, 11, 2, 0, 0};
  const std::vector<int> lengths{3, 1};
  std::vector<float> logits(2 * gen_config().vocab_size);
  stepwise->prefill(prompts.data(), lengths.data(), 3, logits.data());
  runs->prefill(prompts.data(), lengths.data(), 3, logits.data());
  std::vector<int32_t> a{1, 2}, r{1, 2};
  int distinct = 0;
  for (const int steps : {1, 4, 9}) {
    std::vector<int32_t> out(2 * steps);
    runs->decode_greedy_steps(r.data(), steps, out.data());
    for (int s = 0; s < steps; ++s) {
      const std::vector<int32_t> before = a;
      stepwise->decode_greedy(a.data(), a.data());
      distinct += a != before;
      for (int b = 0; b < 2; ++b) ASSERT_EQ(out[2 * s + b], a[b]) << "run of " << steps << ", step " << s << ", sequence " << b;
    }
    r = {out.end() - 2, out.end()};
  }
  EXPECT_GT(distinct, 3) << "the greedy ids never change: a weak test";
  EXPECT_EQ(runs->length(0), 3 + 14);
  std::vector<int32_t> out(2 * 4);
  const std::string msg = attn::testing::error_of([&] { runs->decode_greedy_steps(r.data(), 4, out.data()); });
  EXPECT_NE(msg.find("greedy run of 4 steps does not fit: sequence 0 has 3 of"), std::string::npos) << msg;
  EXPECT_NE(attn::testing::error_of([&] { runs->decode_greedy_steps(r.data(), 0, out.data()); }).find("at least one step"), std::string::npos);
  EXPECT_EQ(runs->length(0), 3 + 14);
}

// sample_token against the definition it had before its keys and partial selection: every id
// sorted by (logit descending, id ascending), the first top_k kept, exp((l - max) / T) summed in
// that order, the top_p prefix, then the first id whose running sum passes u * sum. Rows with
// planted ties (within and across the top-k boundary), -0 beside +0, -inf and one huge logit;
// top_k 0, 1, 7, 200, V and above V; top_p 1, 0.9, 0.3; two temperatures. The same token on
// every draw.
TEST(GenerateCpu, SampleTokenEqualsTheFullSortDefinition) {
  auto reference = [](const std::vector<float>& l, const SamplingOptions& opt, uint64_t key, uint64_t index) {
    const int V = static_cast<int>(l.size());
    std::vector<int32_t> ids(V);
    for (int v = 0; v < V; ++v) ids[v] = v;
    std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
    int keep = opt.top_k > 0 ? std::min(opt.top_k, V) : V;
    std::vector<double> p(keep);
    double sum = 0;
    for (int i = 0; i < keep; ++i) sum += p[i] = std::exp((l[ids[i]] - static_cast<double>(l[ids[0]])) / opt.temperature);
    if (opt.top_p < 1.0) {
      double acc = 0;
      int n = 0;
      while (n < keep && acc < opt.top_p * sum) acc += p[n++];
      keep = std::max(n, 1), sum = acc;
    }
    const double u = random_uniform(key, index) * sum;
    double acc = 0;
    for (int i = 0; i < keep; ++i)
      if (u < (acc += p[i])) return ids[i];
    return ids[keep - 1];
  };
  std::mt19937_64 rng(attn::testing::test_seed());
  std::normal_distribution<float> n(0.0f, 2.0f);
  const int V = 523;
  int draws = 0, distinct_tokens = 0;
  for (int row = 0; row < 12; ++row) {
    std::vector<float> l(V);
    for (float& x : l) x = std::round(n(rng) * 4.0f) / 4.0f;  // coarse: many exact ties
    l[3] = -0.0f, l[4] = 0.0f, l[5] = -std::numeric_limits<float>::infinity();
    if (row % 3 == 0) l[V - 1] = 40.0f;  // one candidate all but certain
    for (int top_k : {0, 1, 7, 200, V, V + 5})
      for (double top_p : {1.0, 0.9, 0.3})
        for (double temperature : {0.7, 1.6}) {
          SamplingOptions opt;
          opt.temperature = temperature, opt.top_k = top_k, opt.top_p = top_p;
          std::vector<bool> seen(V, false);
          for (uint64_t i = 0; i < 6; ++i) {
            const int32_t got = sample_token(l.data(), V, opt, 0xA11CE + row, i);
            ASSERT_EQ(got, reference(l, opt, 0xA11CE + row, i))
                << "row " << row << " top_k " << top_k << " top_p " << top_p << " T " << temperature << " draw " << i;
            distinct_tokens += !seen[got];
            seen[got] = true;
            ++draws;
          }
        }
  }
  EXPECT_GT(distinct_tokens, draws / 4) << "the draws hardly vary: a weak test";
}

TEST(GenerateCpu, TeacherForcedCachedLossEqualsForwardLoss) {
  const uint64_t seed = attn::testing::test_seed();
  SCOPED_TRACE(seed);
  auto be = make_cpu_backend(gen_config(), BackendOptions{});
  std::vector<float> p(be->layout().total());
  init_gpt2_params(be->layout(), seed, p.data());
  be->set_params(p.data());
  std::mt19937_64 rng(seed);
  const int B = 3, T = 29;
  auto inputs = random_tokens(rng, B * T, 53), targets = random_tokens(rng, B * T, 53);
  targets[4] = -1;
  const double ref = be->forward_loss(Batch{inputs.data(), targets.data(), B, T});
  const double fp32 = cached_teacher_forced_loss(*be, inputs.data(), targets.data(), B, T, KVCacheDType::FP32);
  EXPECT_NEAR(fp32, ref, 2e-5 * std::fabs(ref));
  // an 8-bit cache changes the loss, but only a little
  const double int8 = cached_teacher_forced_loss(*be, inputs.data(), targets.data(), B, T, KVCacheDType::INT8);
  EXPECT_NE(int8, fp32);
  EXPECT_NEAR(int8, ref, 0.01);
}

TEST(GenerateCpu, KVCacheSizeFormula) {
  GPTConfig g;  // GPT-2 124M
  g.vocab_size = 50257, g.padded_vocab_size = 50304, g.block_size = 1024;
  g.n_layer = 12, g.n_head = 12, g.n_kv_head = 12, g.n_embd = 768;
  // 2 (K, V) x 12 layers x 12 heads x 1024 positions x 64 dims
  EXPECT_EQ(kv_cache_bytes(g, 1, 1024, KVCacheDType::BF16), 2ull * 12 * 12 * 1024 * 64 * 2);
  EXPECT_EQ(kv_cache_bytes(g, 32, 640, KVCacheDType::FP32), 2ull * 12 * 32 * 12 * 640 * 64 * 4);
  EXPECT_EQ(kv_cache_bytes(g, 1, 1024, KVCacheDType::INT8), 2ull * 12 * 12 * 1024 * (64 + 4));
  EXPECT_EQ(kv_cache_bytes(g, 1, 1024, KVCacheDType::FP8_E4M3), 2ull * 12 * 12 * 1024 * (64 + 4));
  g.n_kv_head = 3;  // GQA: a quarter
  EXPECT_EQ(kv_cache_bytes(g, 1, 1024, KVCacheDType::BF16), 2ull * 12 * 3 * 1024 * 64 * 2);
}

// One definition of the cache precisions (core/kv_cache_dtype.h) for the kernel, the
// generators and --kv-cache: every name round-trips, sizes match the stored types.
TEST(GenerateCpu, KVCacheDTypeNamesAndSizes) {
  const std::pair<KVCacheDType, size_t> all[] = {
      {KVCacheDType::FP32, 4}, {KVCacheDType::BF16, 2}, {KVCacheDType::FP8_E4M3, 1}, {KVCacheDType::INT8, 1}};
  for (const auto& [t, bytes] : all) {
    EXPECT_EQ(kv_cache_dtype_from_name(kv_cache_dtype_name(t)), t);
    EXPECT_EQ(kv_cache_element_bytes(t), bytes) << kv_cache_dtype_name(t);
    EXPECT_EQ(kv_cache_is_scaled(t), bytes == 1) << kv_cache_dtype_name(t);
  }
  EXPECT_EQ(kv_cache_dtype_from_name("fp8"), KVCacheDType::FP8_E4M3);
  const std::string e = attn::testing::error_of([] { kv_cache_dtype_from_name("fp16"); });
  EXPECT_NE(e.find("--kv-cache"), std::string::npos) << e;
  EXPECT_NE(e.find("fp16"), std::string::npos) << e;
}

TEST(GenerateCpu, RefusesACacheTooLarge) {
  GPTConfig g = gen_config();
  g.block_size = 1 << 16;
  auto be = make_cpu_backend(g, BackendOptions{});
  GeneratorOptions go;
  go.batch = 1 << 20, go.max_len = 1 << 16;  // 2 x 2 layers x 2^20 x 2 x 2^16 x 8 x 4 bytes: 16 TiB
  const std::string msg = attn::testing::error_of([&] { be->make_generator(go); });
  EXPECT_NE(msg.find("KV cache"), std::string::npos) << msg;
  EXPECT_NE(msg.find("16384.00 GiB"), std::string::npos) << msg;
  EXPECT_NE(msg.find("free on the host"), std::string::npos) << msg;
  go.batch = 1, go.max_len = (1 << 16) + 1;
  EXPECT_NE(attn::testing::error_of([&] { be->make_generator(go); }).find("block_size"), std::string::npos);
}

TEST(GenerateCpu, CacheRoundingMatchesTheStoredFormats) {
  // fp8 e4m3 with amax 448 -> scale 1: 1.0625 is a tie between 1 and 1.125 (even: 1),
  // 300 lies between 288 and 320 (step 32), 2^-9 is the smallest subnormal.
  std::vector<double> x{448.0, 1.0625, 300.0, std::ldexp(1.0, -9), -3.3};
  round_like_kv_cache(x.data(), 5, KVCacheDType::FP8_E4M3);
  EXPECT_EQ(x, (std::vector<double>{448.0, 1.0, 288.0, std::ldexp(1.0, -9), -3.25}));
  // int8: scale = 127 / 127 = 1 -> rounding to integers
  std::vector<double> y{127.0, 0.4, -2.6, 10.5};
  round_like_kv_cache(y.data(), 4, KVCacheDType::INT8);
  EXPECT_EQ(y, (std::vector<double>{127.0, 0.0, -3.0, 10.0}));
  std::vector<float> z{1.0f + 1.0f / 256, 3.0f};  // bf16 keeps 8 mantissa bits: 1 + 2^-8 is a tie -> 1
  round_like_kv_cache(z.data(), 2, KVCacheDType::BF16);
  EXPECT_EQ(z, (std::vector<float>{1.0f, 3.0f}));
}
