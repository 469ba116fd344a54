// Backend::train_step captured in a CUDA graph (device.cuda_graph) against the same steps as
// separate calls (cuda_graph = false): the same losses, gradient norms, parameters and AdamW
// moments, bit for bit, over steps whose batches, dropout keys, learning rate, bias correction
// and clip factor all change (a value baked into the graph at capture would differ from the
// second replay on), with gradient accumulation, ignored targets, an evaluation between steps,
// and a change of shape (a new capture). fp8: rows a multiple of 16, so that every linear runs
// in fp8 (every linear keeping its input's fp8 transpose from forward to backward).
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda_backend.h"
#include "core/error.h"
#include "model/param_layout.h"
#include "test_util.h"

namespace {

struct GraphCase {
  std::string name, precision, impl;
  float dropout, attn_dropout;
  int n_embd, n_head, accum;
  bool document_mask;
  int seq = 61;  // the sequence length of the first steps (61: an awkward T)
};

attn::GPTConfig model_of(const GraphCase& c) {
  attn::GPTConfig g;
  g.vocab_size = 97;
  g.padded_vocab_size = 128;
  g.block_size = 64;
  g.n_layer = 2;
  g.n_head = c.n_head;
  g.n_kv_head = c.n_head;
  g.n_embd = c.n_embd;
  g.dropout = c.dropout;
  g.attn_dropout = c.attn_dropout;
  return g;
}

constexpr int kB = 2;  // max sizes 3 x 64 (the shape change below)

std::unique_ptr<attn::Backend> make(const GraphCase& c, bool graph) {
  attn::BackendOptions o;
  o.device = "cuda";
  o.precision = c.precision;
  o.attention.impl = c.impl;
  o.attention.deterministic = true;  // flash backward without atomics: the same bits every run
  o.matmul_autotune = false;         // two backends: each would time its own matmul algorithms
  o.attention.document_mask = c.document_mask;
  o.attention.eot_token = c.document_mask ? 3 : -1;
  o.max_batch = 3;
  o.max_seq = 64;
  o.cuda_graph = graph;
  return attn::make_cuda_backend(model_of(c), o);
}

// One step's micro-batches: fresh tokens (eot = 3 frequent, so documents are short), some
// targets ignored, and one micro-batch of step 3 with all targets ignored (loss scale 0).
struct StepData {
  std::vector<std::vector<int32_t>> x, y;
  attn::TrainStep plan;
};
StepData step_data(int step, int accum, int B, int T, int vocab) {
  StepData d;
  std::mt19937_64 g(1000 + step);
  d.x.resize(accum), d.y.resize(accum);
  for (int m = 0; m < accum; ++m) {
    d.x[m].resize(B * T), d.y[m].resize(B * T);
    for (auto& v : d.x[m]) v = static_cast<int32_t>(g() % 8 == 0 ? 3 : g() % vocab);
    for (auto& v : d.y[m]) v = static_cast<int32_t>(g() % vocab);
    for (int i = step % 7; i < B * T; i += 9) d.y[m][i] = -1;
    if (step == 3 && m == accum - 1) std::fill(d.y[m].begin(), d.y[m].end(), -1);
  }
  for (int m = 0; m < accum; ++m) {
    d.plan.micro_batches.push_back(attn::Batch{d.x[m].data(), d.y[m].data(), B, T});
    d.plan.contexts.push_back(attn::StepContext{77, step, m, true});
  }
  d.plan.grad_scale = 1.0f / accum;
  d.plan.adamw = attn::AdamWConfig{0.9f, 0.95f, 1e-8f, 0.1f};
  d.plan.lr = 1e-3f * static_cast<float>(1 + step);  // a schedule: every step its own lr
  d.plan.grad_clip = step % 2 == 0 ? 0.05 : 0.0;     // clipping on (factor < 1) and off
  d.plan.t = step + 1;
  return d;
}

std::vector<float> params_of(attn::Backend& be) {
  std::vector<float> p(be.layout().total());
  be.get_params(p.data());
  return p;
}

void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  size_t diff = 0, first = a.size();
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) diff += 1, first = std::min(first, i);
  EXPECT_EQ(diff, 0u) << what << ": " << diff << " of " << a.size() << " differ, first at " << first << " ("
                      << (first < a.size() ? a[first] : 0) << " vs " << (first < b.size() ? b[first] : 0) << ")";
}

class TrainStepGraph : public ::testing::TestWithParam<GraphCase> {};

TEST_P(TrainStepGraph, ReplaysMatchSeparateCallsBitExact) {
  SKIP_WITHOUT_GPU();
  const GraphCase c = GetParam();
  auto calls = make(c, false), graph = make(c, true);
  EXPECT_EQ(graph->train_step_mode(), "graph");
  EXPECT_EQ(calls->train_step_mode(), "calls (device.cuda_graph = false)");
  std::vector<float> init(calls->layout().total());
  attn::init_gpt2_params(calls->layout(), 5, init.data());
  calls->set_params(init.data());
  graph->set_params(init.data());
  const int vocab = model_of(c).vocab_size;
  // steps 0-5 at (kB, c.seq, accum): uncaptured, captured, replays; then (3, 64, 1): a new capture
  for (int step = 0; step < 9; ++step) {
    const bool reshaped = step >= 6;
    StepData d = step_data(step, reshaped ? 1 : c.accum, reshaped ? 3 : kB, reshaped ? 64 : c.seq, vocab);
    const attn::TrainStepResult a = calls->train_step(d.plan);
    const attn::TrainStepResult b = graph->train_step(d.plan);
    ASSERT_EQ(a.losses.size(), b.losses.size());
    for (size_t m = 0; m < a.losses.size(); ++m)
      EXPECT_EQ(std::memcmp(&a.losses[m], &b.losses[m], sizeof(float)), 0)
          << "step " << step << " micro " << m << ": loss " << a.losses[m] << " vs " << b.losses[m];
    EXPECT_EQ(std::memcmp(&a.norm, &b.norm, sizeof(float)), 0) << "step " << step << ": norm " << a.norm << " vs "
                                                              << b.norm;
    EXPECT_GT(a.norm, 0.0f);
    if (step == 4) {  // an evaluation between steps (its own buffers) must not disturb the graph
      const StepData e = step_data(100, 1, kB, c.seq, vocab);
      EXPECT_EQ(calls->forward_loss(e.plan.micro_batches[0]), graph->forward_loss(e.plan.micro_batches[0]));
    }
    expect_same_bits(params_of(*calls), params_of(*graph), c.name + " params after step " + std::to_string(step));
  }
  const size_t n = calls->layout().total();
  std::vector<float> ma(n), va(n), mb(n), vb(n);
  calls->get_optimizer_state(ma.data(), va.data());
  graph->get_optimizer_state(mb.data(), vb.data());
  expect_same_bits(ma, mb, c.name + " AdamW m");
  expect_same_bits(va, vb, c.name + " AdamW v");
  // the parameters moved: a step that did nothing would also be "equal"
  const std::vector<float> after = params_of(*graph);
  EXPECT_NE(std::memcmp(after.data(), init.data(), n * sizeof(float)), 0);
}

// A learning rate baked in at capture would show here: the same step replayed with lr 0
// must leave the parameters as they were (only AdamW's moments move).
TEST_P(TrainStepGraph, LearningRateComesFromTheHostEachReplay) {
  SKIP_WITHOUT_GPU();
  const GraphCase c = GetParam();
  auto graph = make(c, true);
  std::vector<float> init(graph->layout().total());
  attn::init_gpt2_params(graph->layout(), 6, init.data());
  graph->set_params(init.data());
  const int vocab = model_of(c).vocab_size;
  for (int step = 0; step < 3; ++step) graph->train_step(step_data(step, c.accum, kB, c.seq, vocab).plan);
  const std::vector<float> before = params_of(*graph);
  StepData d = step_data(3, c.accum, kB, c.seq, vocab);
  d.plan.lr = 0.0f;
  graph->train_step(d.plan);
  expect_same_bits(before, params_of(*graph), c.name + " params after a step with lr 0");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, TrainStepGraph,
    ::testing::Values(GraphCase{"naive_fp32_dropout_accum3", "fp32", "naive", 0.1f, 0.1f, 48, 4, 3, false},
                      GraphCase{"naive_bf16_dropout_accum2", "bf16", "naive", 0.1f, 0.1f, 48, 4, 2, false},
                      GraphCase{"flash_bf16_documents_dropout_accum2", "bf16", "flash", 0.1f, 0.1f, 128, 2, 2, true},
                      GraphCase{"flash_fp8_dropout_accum2", "fp8", "flash", 0.1f, 0.1f, 128, 2, 2, false, 64}),
    [](const ::testing::TestParamInfo<GraphCase>& i) { return i.param.name; });

TEST(TrainStepGraphModes, ProfilingRunsTheCallsAndShapesMustAgree) {
  SKIP_WITHOUT_GPU();
  const GraphCase c{"p", "bf16", "naive", 0.0f, 0.0f, 48, 4, 1, false};
  auto be = make(c, true);
  be->set_profiling(true);
  EXPECT_EQ(be->train_step_mode(), "calls (profiling: every call timed)");
  std::vector<float> init(be->layout().total());
  attn::init_gpt2_params(be->layout(), 7, init.data());
  be->set_params(init.data());
  StepData d = step_data(0, 1, kB, c.seq, model_of(c).vocab_size);
  const attn::TrainStepResult r = be->train_step(d.plan);
  EXPECT_GT(be->profile().total_ms(), 0.0);  // the calls were timed
  EXPECT_EQ(r.losses.size(), 1u);
  be->set_profiling(false);
  EXPECT_EQ(be->train_step_mode(), "graph");
  // micro-batches of different shapes in one step cannot share a capture
  StepData bad = step_data(1, 2, kB, c.seq, model_of(c).vocab_size);
  bad.plan.micro_batches[1].T = c.seq - 1;
  try {
    be->train_step(bad.plan);
    ADD_FAILURE() << "micro-batches of two shapes were accepted";
  } catch (const attn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("micro-batch 1"), std::string::npos) << e.what();
  }
}

}  // namespace
