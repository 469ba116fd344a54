// Greedy decoding on the device (kern::logits_argmax, Generator::decode_greedy), the
// inference-only CUDA backend (BackendOptions::inference_only), and that the cache precision
// reaches the teacher-forced loss of a trained model (issue 9, acceptance 4). Suites are named
// Generate* so that --gtest_filter='Generate*' (scripts/gpu_check.sh generate) selects them.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda_matmul.h"
#include "backend/generator.h"
#include "core/error.h"
#include "kernels/decode_attention.h"
#include "kernels/gemv.h"
#include "kernels/generation.h"
#include "test_util.h"
#include "train/generate.h"

namespace {

using namespace attn;

// The logits pass (kern::logits_argmax) against std::max_element (first index among equal
// maxima) on rows with planted ties, a row of -inf, a row whose maximum is the last column, at
// V = 37 (fewer than one block's chunk) and V = 50257 (GPT-2's vocabulary, 25 blocks a row),
// from fp32 and from bf16 logits with padded rows (Vp > V, the padding larger than any logit);
// the fp32 copy is exact, and a second call gives the same ids (the scratch is zero again).
template <typename T>
void check_logits_argmax() {
  for (int V : {37, 50257}) {
    const int B = 7, Vp = V + 11;
    std::mt19937_64 rng(V);
    std::normal_distribution<double> n(0.0, 3.0);
    tu::Vec x(static_cast<size_t>(B) * Vp, 1e30);  // the padding columns: never counted
    auto row = [&](int b) { return x.data() + static_cast<size_t>(b) * Vp; };
    for (int b = 0; b < B; ++b)
      for (int v = 0; v < V; ++v) row(b)[v] = tu::from_t<T>(tu::to_t<T>(n(rng)));  // representable in T
    // row 1: the maximum twice, the later copy in a lower thread's stride (tie goes to the first)
    row(1)[V - 2] = 100.0f, row(1)[5] = 100.0f;
    // row 2: the maximum in every column: index 0
    std::fill(row(2), row(2) + V, 7.0f);
    // row 3: all -inf: index 0 (std::max_element's answer)
    std::fill(row(3), row(3) + V, -std::numeric_limits<float>::infinity());
    // row 4: the maximum in the last column
    row(4)[V - 1] = 1000.0f;
    // row 5: ties between two warps of a block, and across blocks
    row(5)[V / 2] = 55.0f, row(5)[V / 3] = 55.0f, row(5)[V - 1] = 55.0f;
    const tu::DevBuf<T> dx(x);
    tu::DevBuf<int32_t> dnext(B);
    tu::DevBuf<float> dout(static_cast<size_t>(B) * V);
    tu::DevBuf<unsigned char> scratch(kern::argmax_scratch_bytes(B));
    CUDA_CHECK(cudaMemset(scratch.get(), 0, kern::argmax_scratch_bytes(B)));
    auto* sc = reinterpret_cast<unsigned long long*>(scratch.get());
    for (int call = 0; call < 2; ++call) {
      CUDA_CHECK(cudaMemset(dnext.get(), 0xFF, B * sizeof(int32_t)));
      kern::logits_argmax(dnext.get(), call == 0 ? dout.get() : nullptr, dx.get(), B, V, Vp, sc, nullptr);
      CUDA_CHECK(cudaDeviceSynchronize());
      std::vector<int32_t> got(B);
      CUDA_CHECK(cudaMemcpy(got.data(), dnext.get(), B * sizeof(int32_t), cudaMemcpyDeviceToHost));
      for (int b = 0; b < B; ++b)
        EXPECT_EQ(got[b], std::max_element(row(b), row(b) + V) - row(b)) << "V " << V << " row " << b << " call " << call;
    }
    const tu::Vec out = dout.download();
    for (int b = 0; b < B; ++b)
      for (int v = 0; v < V; ++v) ASSERT_EQ(out[static_cast<size_t>(b) * V + v], row(b)[v]) << "V " << V << " row " << b << " v " << v;
  }
}

TEST(GenerateGreedy, LogitsArgmaxMatchesMaxElementFp32) {
  SKIP_WITHOUT_GPU();
  check_logits_argmax<float>();
}

TEST(GenerateGreedy, LogitsArgmaxMatchesMaxElementBf16) {
  SKIP_WITHOUT_GPU();
  check_logits_argmax<__nv_bfloat16>();
}

GPTConfig small_cfg(int n_kv_head = 2) {
  GPTConfig c;
  c.vocab_size = 101, c.padded_vocab_size = 128, c.block_size = 96;
  c.n_layer = 2, c.n_head = 4, c.n_kv_head = n_kv_head, c.n_embd = 256;
  return c;
}

std::unique_ptr<Backend> backend(const std::string& precision, bool inference_only, int max_batch = 4,
                                 int max_seq = 96, int n_kv_head = 2) {
  BackendOptions o;
  o.device = "cuda", o.precision = precision, o.max_batch = max_batch, o.max_seq = max_seq;
  o.attention.impl = "flash";
  o.inference_only = inference_only;
  o.matmul_autotune = false;  // bitwise comparisons between two backends: the same algorithms
  return make_backend(small_cfg(n_kv_head), o);
}

std::vector<float> spread_params(const ParamLayout& layout, uint64_t seed) {
  std::vector<float> p(layout.total());
  init_gpt2_params(layout, seed, p.data());
  for (float& x : p)
    if (x != 0.0f && x != 1.0f) x *= 6.0f;  // clear margins between the logits
  return p;
}

// decode_greedy returns exactly the argmax of what decode returns, step after step (launched
// step, the captured step, replays), with prompts of different lengths and max_prompt below
// max_len; the ids it returns are fed back as the next tokens. B = 3 takes the GEMV step, B =
// kGemvMaxRows + 2 the cuBLASLt one (kern::logits_argmax).
TEST(GenerateGreedy, DecodeGreedyEqualsArgmaxOfDecode) {
  SKIP_WITHOUT_GPU();
  for (const int B : {3, kern::kGemvMaxRows + 2})
  for (KVCacheDType dt : {KVCacheDType::BF16, KVCacheDType::INT8}) {
    auto gpu = backend("bf16", false);
    const auto params = spread_params(gpu->layout(), 21);
    gpu->set_params(params.data());
    const int T = 11, V = 101, steps = 45;
    std::mt19937_64 rng(22);
    std::vector<int32_t> prompts(B * T);
    for (auto& t : prompts) t = static_cast<int32_t>(rng() % V);
    std::vector<int> lengths{11, 1, 6};
    while (static_cast<int>(lengths.size()) < B) lengths.push_back(1 + static_cast<int>(rng() % T));
    GeneratorOptions go;
    go.batch = B, go.max_len = T + steps + 1, go.max_prompt = T, go.cache = dt;
    auto host_side = gpu->make_generator(go), device_side = gpu->make_generator(go);
    std::vector<float> logits(B * V), logits2(B * V);
    host_side->prefill(prompts.data(), lengths.data(), T, logits.data());
    device_side->prefill(prompts.data(), lengths.data(), T, logits2.data());
    std::vector<int32_t> a(B), d(B);
    for (int b = 0; b < B; ++b)
      a[b] = d[b] = static_cast<int32_t>(std::max_element(&logits[b * V], &logits[b * V] + V) - &logits[b * V]);
    int distinct = 0;
    for (int s = 0; s < steps; ++s) {
      host_side->decode(a.data(), logits.data());
      device_side->decode_greedy(d.data(), d.data());
      for (int b = 0; b < B; ++b) {
        const int32_t want = static_cast<int32_t>(std::max_element(&logits[b * V], &logits[b * V] + V) - &logits[b * V]);
        ASSERT_EQ(d[b], want) << kv_cache_dtype_name(dt) << " B " << B << " step " << s << " sequence " << b;
        distinct += want != a[b];
        a[b] = want;
      }
    }
    EXPECT_EQ(device_side->length(1), 1 + steps);
    EXPECT_GT(distinct, 3) << "the greedy tokens never change: a weak test";
    // a prompt longer than max_prompt is refused with the option's name
    std::string msg;
    try {
      auto g = gpu->make_generator(go);
      std::vector<int32_t> longer(B * (T + 1), 1);
      const std::vector<int> full(B, T + 1);
      g->prefill(longer.data(), full.data(), T + 1, logits.data());
    } catch (const attn::Error& e) {
      msg = e.what();
    }
    EXPECT_NE(msg.find("max_prompt"), std::string::npos) << msg;
  }
}

// Runs of greedy steps on the device (decode_greedy_steps: each step fed the argmax the step
// before left on the device, ids read back once a run) give, row by row, the argmax of what
// decode returns fed the same ids on a second generator: runs of 1, 2, 16 and 7 steps, prompts
// of different lengths (the run's ids sit at different cache positions per sequence), the GEMV
// step (B = 3) and the cuBLASLt one, the graph replayed and (B = 3) launched kernel by kernel.
// A run longer than the room left is refused and runs nothing.
TEST(GenerateGreedy, DecodeGreedyStepsEqualsArgmaxOfDecode) {
  SKIP_WITHOUT_GPU();
  struct Case {
    int B;
    bool graph;
  };
  for (const Case k : {Case{3, true}, Case{3, false}, Case{kern::kGemvMaxRows + 2, true}}) {
    SCOPED_TRACE(::testing::Message() << "B " << k.B << (k.graph ? " graph" : " launched"));
    auto gpu = backend("bf16", false);
    const auto params = spread_params(gpu->layout(), 23);
    gpu->set_params(params.data());
    const int B = k.B, T = 9, V = 101;
    std::mt19937_64 rng(24);
    std::vector<int32_t> prompts(B * T);
    for (auto& t : prompts) t = static_cast<int32_t>(rng() % V);
    std::vector<int> lengths{9, 1, 4};
    while (static_cast<int>(lengths.size()) < B) lengths.push_back(1 + static_cast<int>(rng() % T));
    GeneratorOptions go;
    go.batch = B, go.max_len = T + 27, go.max_prompt = T, go.cache = KVCacheDType::BF16, go.cuda_graph = k.graph;
    auto host_side = gpu->make_generator(go), runs = gpu->make_generator(go);
    std::vector<float> logits(B * V);
    host_side->prefill(prompts.data(), lengths.data(), T, logits.data());
    runs->prefill(prompts.data(), lengths.data(), T, logits.data());
    std::vector<int32_t> a(B);
    auto argmax = [&](int b) { return static_cast<int32_t>(std::max_element(&logits[b * V], &logits[b * V] + V) - &logits[b * V]); };
    for (int b = 0; b < B; ++b) a[b] = argmax(b);
    std::vector<int32_t> r = a;
    int distinct = 0;
    for (const int steps : {1, 2, 16, 7}) {
      std::vector<int32_t> out(static_cast<size_t>(B) * steps);
      runs->decode_greedy_steps(r.data(), steps, out.data());
      for (int s = 0; s < steps; ++s) {
        host_side->decode(a.data(), logits.data());
        for (int b = 0; b < B; ++b) {
          const int32_t want = argmax(b);
          ASSERT_EQ(out[static_cast<size_t>(s) * B + b], want) << "run of " << steps << ", step " << s << ", sequence " << b;
          distinct += want != a[b];
          a[b] = want;
        }
      }
      r.assign(out.end() - B, out.end());
    }
    EXPECT_GT(distinct, 3) << "the greedy ids never change: a weak test";
    EXPECT_EQ(runs->length(1), 1 + 26);
    std::string msg;
    try {
      std::vector<int32_t> out(static_cast<size_t>(B) * 10);
      runs->decode_greedy_steps(r.data(), 10, out.data());
    } catch (const attn::Error& e) {
      msg = e.what();
    }
    EXPECT_NE(msg.find("greedy run of 10 steps does not fit: sequence 0 has 1 of"), std::string::npos) << msg;
    EXPECT_EQ(runs->length(0), 9 + 26);
  }
}

// Prefill in several passes (GeneratorOptions::prefill_rows: 1 and 2 sequences per pass, the
// last pass shorter) equals one pass: prefill logits and the decode steps after it read the
// cache rows each pass wrote (an offset error in the cache or its 8-bit scales would show).
TEST(GenerateGreedy, PrefillInPassesEqualsOnePass) {
  SKIP_WITHOUT_GPU();
  auto gpu = backend("fp32", false, 5);
  const auto params = spread_params(gpu->layout(), 41);
  gpu->set_params(params.data());
  const int B = 5, T = 13, V = 101, steps = 10;
  std::mt19937_64 rng(42);
  std::vector<int32_t> prompts(B * T);
  for (auto& t : prompts) t = static_cast<int32_t>(rng() % V);
  const std::vector<int> lengths{13, 2, 9, 13, 1};
  std::vector<std::vector<int32_t>> steps_tokens(steps, std::vector<int32_t>(B));
  for (auto& st : steps_tokens)
    for (auto& t : st) t = static_cast<int32_t>(rng() % V);
  for (auto [dt, tol] : {std::pair{KVCacheDType::FP32, 1e-5}, std::pair{KVCacheDType::INT8, 3e-3}}) {
    std::vector<std::vector<float>> runs;  // per prefill_rows: prefill logits, then each step's
    for (int rows : {0, 13, 30}) {
      GeneratorOptions go;
      go.batch = B, go.max_len = T + steps, go.max_prompt = T, go.prefill_rows = rows, go.cache = dt;
      auto gen = gpu->make_generator(go);
      std::vector<float> all(B * V), logits(B * V);
      gen->prefill(prompts.data(), lengths.data(), T, all.data());
      for (const auto& st : steps_tokens) {
        gen->decode(st.data(), logits.data());
        all.insert(all.end(), logits.begin(), logits.end());
      }
      runs.push_back(all);
    }
    for (int r = 1; r < 3; ++r) {
      double e2 = 0, r2 = 0;
      for (size_t i = 0; i < runs[0].size(); ++i) {
        e2 += std::pow(static_cast<double>(runs[r][i]) - runs[0][i], 2);
        r2 += std::pow(static_cast<double>(runs[0][i]), 2);
      }
      const double rel = std::sqrt(e2 / r2);
      printf("%s cache, prefill in passes (%s) vs one pass: rms rel diff %.3g (tol %.g)\n", kv_cache_dtype_name(dt),
             r == 1 ? "1 sequence each" : "2 sequences each", rel, tol);
      EXPECT_LE(rel, tol) << kv_cache_dtype_name(dt) << " run " << r;
    }
  }
}

// A prompt length's second prefill replays the graph captured after its first
// (GeneratorOptions::prefill_graph): with other prompts and other lengths (the uploads are in the
// graph), its logits and the greedy steps after it equal, bit for bit, those of a generator that
// launches every prefill kernel by kernel; bf16 GEMV path (B = 3) and cuBLASLt (B = 10), two
// passes at B = 10.
TEST(GenerateGreedy, PrefillReplayedEqualsLaunched) {
  SKIP_WITHOUT_GPU();
  auto gpu = backend("bf16", false);
  const auto params = spread_params(gpu->layout(), 61);
  gpu->set_params(params.data());
  const int T = 11, V = 101;
  for (const int B : {3, kern::kGemvMaxRows + 2}) {
    SCOPED_TRACE(::testing::Message() << "B " << B);
    std::mt19937_64 rng(62 + B);
    auto prompts = [&] {
      std::vector<int32_t> p(B * T);
      for (auto& t : p) t = static_cast<int32_t>(rng() % V);
      return p;
    };
    auto lengths = [&] {
      std::vector<int> l(B);
      for (auto& x : l) x = 1 + static_cast<int>(rng() % T);
      return l;
    };
    const std::vector<int32_t> first = prompts(), second = prompts();
    const std::vector<int> first_len = lengths(), second_len = lengths();
    GeneratorOptions go;
    go.batch = B, go.max_len = T + 12, go.max_prompt = T, go.cache = KVCacheDType::BF16;
    go.prefill_rows = B > 3 ? 6 * T : 0;  // B = 10: passes of 6 and 4 sequences
    auto replayed = gpu->make_generator(go);
    go.prefill_graph = false;
    auto launched = gpu->make_generator(go);
    std::vector<float> want(B * V), got(B * V);
    replayed->prefill(first.data(), first_len.data(), T, got.data());  // launched, then captured
    replayed->prefill(second.data(), second_len.data(), T, got.data());  // the graph
    launched->prefill(first.data(), first_len.data(), T, want.data());
    launched->prefill(second.data(), second_len.data(), T, want.data());
    ASSERT_EQ(got, want) << "prefill logits";
    auto argmax = [&](const std::vector<float>& l, int b) {
      return static_cast<int32_t>(std::max_element(&l[b * V], &l[b * V] + V) - &l[b * V]);
    };
    std::vector<int32_t> next(B);
    for (int b = 0; b < B; ++b) next[b] = argmax(want, b);
    std::vector<int32_t> a(static_cast<size_t>(B) * 10), c(static_cast<size_t>(B) * 10);
    replayed->decode_greedy_steps(next.data(), 10, a.data());
    launched->decode_greedy_steps(next.data(), 10, c.data());
    EXPECT_EQ(a, c) << "greedy steps after the prefill";
    for (int b = 0; b < B; ++b) EXPECT_EQ(replayed->length(b), second_len[b] + 10);
  }
}

// GeneratorOptions::gemv_carveout_from_batch changes how the SMs split L1 and shared memory,
// never a value: the prefill logits, the decode logits and 12 greedy steps (graph replay) with
// every GEMV of the step launched at the short-cache attention's carveout equal, bit for bit,
// those with none (B = 2, GEMV path). The model is MHA, so that the short-cache kernel runs (on
// the suite's GQA model it never does, and no GEMV would take its carveout). The carveout is the
// short kernel's: a percentage for a short bf16 cache, -1 where the split kernels run.
TEST(GenerateGreedy, GemvCarveoutChangesNoValue) {
  SKIP_WITHOUT_GPU();
  attn::DecodeAttentionParams p;
  p.shape = {2, 4, 25, 64, KVCacheDType::BF16};
  p.H = 4;
  p.act_bf16 = true;
  const int short_carveout = attn::decode_attention_carveout(p);
  EXPECT_GT(short_carveout, 0);
  EXPECT_LE(short_carveout, 100);
  p.shape.max_len = 40000;  // K and V past one block's shared memory: the split kernels
  EXPECT_EQ(attn::decode_attention_carveout(p), -1);

  auto gpu = backend("bf16", false, 4, 96, /*n_kv_head=*/4);
  const auto params = spread_params(gpu->layout(), 81);
  gpu->set_params(params.data());
  const int B = 2, T = 9, V = 101;
  std::mt19937_64 rng(82);
  std::vector<int32_t> prompt(B * T);
  for (auto& t : prompt) t = static_cast<int32_t>(rng() % V);
  const std::vector<int> lengths{T, 5};
  GeneratorOptions go;
  go.batch = B, go.max_len = T + 16, go.max_prompt = T, go.cache = KVCacheDType::BF16;
  struct Out {
    std::vector<float> prefill, decode;
    std::vector<int32_t> steps;
  };
  auto run = [&](int from_batch) {
    go.gemv_carveout_from_batch = from_batch;
    auto gen = gpu->make_generator(go);
    Out o{std::vector<float>(B * V), std::vector<float>(B * V), std::vector<int32_t>(B * 12)};
    gen->prefill(prompt.data(), lengths.data(), T, o.prefill.data());
    const std::vector<int32_t> next{5, 2};
    gen->decode(next.data(), o.decode.data());
    gen->decode_greedy_steps(next.data(), 12, o.steps.data());
    return o;
  };
  const Out none = run(kern::kGemvMaxRows + 1), all = run(1);
  EXPECT_EQ(all.prefill, none.prefill);
  EXPECT_EQ(all.decode, none.decode);
  EXPECT_EQ(all.steps, none.steps);
}

// An inference-only bf16 backend holds only the bf16 weights: its memory is the training
// backend's less gradients, moments and the fp32 master; its weights are the training
// backend's bf16 copy (same rounding), so cached logits are bitwise equal; training calls are
// refused by name.
TEST(GenerateGreedy, InferenceOnlyBackendMatchesTrainingBackend) {
  SKIP_WITHOUT_GPU();
  auto full = backend("bf16", false, 1, 1), lean = backend("bf16", true, 1, 1);
  const auto params = spread_params(full->layout(), 23);
  full->set_params(params.data());
  lean->set_params(params.data());
  const size_t n = full->layout().total();
  std::vector<float> back(n);
  lean->get_params(back.data());
  size_t mismatched = 0;
  for (size_t i = 0; i < n; ++i) mismatched += back[i] != __bfloat162float(__float2bfloat16_rn(params[i]));
  EXPECT_EQ(mismatched, 0u);
  const double full_gib = full->memory().total_peak / 1073741824.0, lean_gib = lean->memory().total_peak / 1073741824.0;
  printf("inference-only peak %.4f GiB vs training backend %.4f GiB (%zu parameters)\n", lean_gib, full_gib, n);
  // full: fp32 master + grads + m + v (16 B) + bf16 (2 B) per parameter; lean: 2 B; and the
  // inference-only cuBLASLt workspace is smaller
  const double ws = static_cast<double>(CudaMatmul::kWorkspaceBytes - CudaMatmul::kInferenceWorkspaceBytes);
  EXPECT_LE(static_cast<double>(full->memory().total_peak - lean->memory().total_peak), 17.0 * n + ws);
  EXPECT_GE(static_cast<double>(full->memory().total_peak - lean->memory().total_peak), 15.9 * n + ws);
  GeneratorOptions go;
  go.batch = 2, go.max_len = 40, go.cache = KVCacheDType::BF16;
  auto gf = full->make_generator(go), gl = lean->make_generator(go);
  std::vector<int32_t> tok{3, 9, 27, 81, 42, 17, 5, 60};
  const std::vector<int> lengths{4, 3};
  std::vector<float> lf(2 * 101), ll(2 * 101);
  gf->prefill(tok.data(), lengths.data(), 4, lf.data());
  gl->prefill(tok.data(), lengths.data(), 4, ll.data());
  EXPECT_EQ(lf, ll);
  for (int s = 0; s < 10; ++s) {
    const std::vector<int32_t> next{static_cast<int32_t>(s * 7 % 101), static_cast<int32_t>(s * 13 % 101)};
    gf->decode(next.data(), lf.data());
    gl->decode(next.data(), ll.data());
    ASSERT_EQ(lf, ll) << "step " << s;
  }
  std::string msg;
  try {
    lean->zero_grad();
  } catch (const attn::Error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("inference only"), std::string::npos) << msg;
}

// Acceptance 4 on a trained model: train a bf16 model on a learnable sequence rule until its
// loss is low, load its weights into an inference-only backend (what `eval --cached` does), and
// compute the teacher-forced cached loss with bf16, int8 and fp8 caches. The 8-bit caches must
// move the loss (a silent fallback to the bf16 cache would give the identical number) but by
// <= 0.01.
TEST(GenerateCacheDtype, EightBitCacheChangesATrainedModelsLossSlightly) {
  SKIP_WITHOUT_GPU();
  const int B = 4, T = 64, V = 101;
  auto trainer = backend("bf16", false, B, T);
  std::vector<float> p(trainer->layout().total());
  init_gpt2_params(trainer->layout(), 31, p.data());
  trainer->set_params(p.data());
  // t[i+1] = 7 t[i] mod 101, with a random token every 8 positions (so the loss cannot go to
  // zero and the cache's rounding shows in it)
  auto batch = [&](uint64_t seed, std::vector<int32_t>& x, std::vector<int32_t>& y) {
    std::mt19937_64 rng(seed);
    x.resize(B * T), y.resize(B * T);
    for (int b = 0; b < B; ++b) {
      int32_t cur = static_cast<int32_t>(rng() % V);
      for (int t = 0; t < T; ++t) {
        const int32_t nxt = t % 8 == 7 ? static_cast<int32_t>(rng() % V) : (cur * 7) % V;
        x[b * T + t] = cur, y[b * T + t] = nxt;
        cur = nxt;
      }
    }
  };
  std::vector<int32_t> x, y;
  AdamWConfig ac;
  float first = 0, last = 0;
  for (int step = 1; step <= 300; ++step) {
    batch(1000 + step, x, y);
    trainer->zero_grad();
    StepContext ctx;
    ctx.step = step;
    last = trainer->forward_backward(Batch{x.data(), y.data(), B, T}, 1.0f, ctx);
    if (step == 1) first = last;
    trainer->adamw_step(ac, 3e-3f, 1.0f, step);
  }
  printf("trained: loss %.4f -> %.4f\n", first, last);
  ASSERT_LT(last, 0.6 * first) << "the model did not train";
  std::vector<float> trained(trainer->layout().total());
  trainer->get_params(trained.data());
  auto eval = backend("bf16", true, B, T);
  eval->set_params(trained.data());
  batch(7, x, y);
  const double full = eval->forward_loss(Batch{x.data(), y.data(), B, T});
  const double b16 = cached_teacher_forced_loss(*eval, x.data(), y.data(), B, T, KVCacheDType::BF16);
  const double i8 = cached_teacher_forced_loss(*eval, x.data(), y.data(), B, T, KVCacheDType::INT8);
  const double f8 = cached_teacher_forced_loss(*eval, x.data(), y.data(), B, T, KVCacheDType::FP8_E4M3);
  printf("trained bf16 model: forward %.7f, cached bf16 %.7f int8 %.7f (%+.2e) fp8 %.7f (%+.2e)\n", full, b16, i8,
         i8 - b16, f8, f8 - b16);
  EXPECT_NEAR(b16, full, 0.02 * full + 0.01);
  EXPECT_NE(i8, b16) << "the int8 cache gave the bf16 loss bit for bit: is the cache dtype reaching the decode?";
  EXPECT_NE(f8, b16) << "the fp8 cache gave the bf16 loss bit for bit";
  EXPECT_LE(std::fabs(i8 - b16), 0.01);
  EXPECT_LE(std::fabs(f8 - b16), 0.01);
}

}  // namespace
