// The kernel trace (backend/kernel_trace.h) on the device: the decode step of a small model,
// replayed from its CUDA graph, traced with CUPTI. Every traced step holds exactly the graph's
// kernels and the two copies of decode_greedy (tokens up, ids down), and the summary accounts
// for the whole period.
#include <cmath>
#include <numeric>
#include <vector>

#include "backend/backend.h"
#include "backend/generator.h"
#include "backend/kernel_trace.h"
#include "core/error.h"
#include "test_util.h"

namespace {

using namespace attn;

std::unique_ptr<Backend> small_bf16_backend() {
  GPTConfig c;
  c.vocab_size = 101, c.padded_vocab_size = 128, c.block_size = 96;
  c.n_layer = 2, c.n_head = 4, c.n_kv_head = 2, c.n_embd = 256;
  BackendOptions o;
  o.device = "cuda", o.precision = "bf16", o.max_batch = 1, o.max_seq = 96, o.inference_only = true;
  o.attention.impl = "flash";
  auto be = make_backend(c, o);
  std::vector<float> p(be->layout().total());
  init_gpt2_params(be->layout(), 11, p.data());
  be->set_params(p.data());
  return be;
}

// Prefill of one 9-token prompt and `warm` greedy steps; returns the generator.
std::unique_ptr<Generator> warmed_generator(Backend& be, bool graph, int warm, int32_t& token) {
  GeneratorOptions go;
  go.batch = 1, go.max_len = 96, go.cache = KVCacheDType::BF16, go.cuda_graph = graph;
  auto gen = be.make_generator(go);
  std::vector<int32_t> prompt = {5, 17, 3, 99, 42, 7, 7, 1, 64};
  const int len = static_cast<int>(prompt.size());
  std::vector<float> logits(gen->vocab_size());
  gen->prefill(prompt.data(), &len, len, logits.data());
  token = 3;
  for (int s = 0; s < warm; ++s) gen->decode_greedy(&token, &token);
  return gen;
}

TEST(KernelTraceGpu, DecodeStepsSplitIntoTheGraphsKernelsAndTwoCopies) {
  SKIP_WITHOUT_GPU();
  auto be = small_bf16_backend();
  int32_t token = 0;
  auto gen = warmed_generator(*be, true, 2, token);
  const int kernels = gen->decode_step_kernels();
  ASSERT_GT(kernels, 0) << "the decode step should be captured after two steps";

  constexpr int kSteps = 6;
  auto trace = KernelTrace::start();
  std::vector<int32_t> traced_tokens;
  for (int s = 0; s < kSteps; ++s) {
    gen->decode_greedy(&token, &token);
    traced_tokens.push_back(token);
  }
  const std::vector<TraceRecord> records = trace->stop();
  ASSERT_EQ(records.size(), static_cast<size_t>(kSteps) * (kernels + 2));
  for (size_t i = 1; i < records.size(); ++i) EXPECT_LE(records[i - 1].start_ns, records[i].start_ns);
  for (const TraceRecord& r : records) {
    EXPECT_LE(r.start_ns, r.end_ns) << r.name;
    // a kernel's name is "<short name> [grid N, B B smem]"
    const size_t shape = r.name.find(" [grid ");
    if (r.kind == TraceRecord::Kind::Kernel) {
      ASSERT_NE(shape, std::string::npos) << "no launch shape in " << r.name;
      EXPECT_EQ(r.name.back(), ']') << r.name;
    }
    const std::string base = r.name.substr(0, shape);
    ASSERT_FALSE(base.empty()) << r.name;  // (back() below needs a character)
    // a parameter list would end the short name; '(' may stay inside template arguments, e.g. a
    // cast "decode_mma_kernel<(KVCacheDType)1, 64, 4>"
    EXPECT_NE(base.back(), ')') << "parameter list left in " << r.name;
  }
  EXPECT_EQ(records.front().name, "memcpy HtoD");  // the token goes up first
  EXPECT_EQ(records[kernels + 1].name, "memcpy DtoH");  // the ids come back last

  const StepTrace t = summarise_steps(records, kSteps);
  EXPECT_EQ(t.steps, kSteps - 1);
  EXPECT_EQ(t.kernels, kernels);
  EXPECT_EQ(t.copies, 2);
  EXPECT_GT(t.period_us, 0);
  EXPECT_GT(t.busy_span_us, 0);
  EXPECT_GE(t.host_us, 0);  // decode_greedy waits for its ids: steps do not overlap
  double accounted = t.host_us;
  for (const StepTraceRow& row : t.rows) accounted += row.critical_us + row.idle_before_us;
  EXPECT_NEAR(accounted, t.period_us, 1e-6 * t.period_us);
  printf("%s", format_step_trace(t).c_str());

  // The trace does not change what is computed: the same tokens from a fresh, untraced generator.
  int32_t again = 0;
  auto plain = warmed_generator(*be, true, 2, again);
  for (int s = 0; s < kSteps; ++s) {
    plain->decode_greedy(&again, &again);
    EXPECT_EQ(again, traced_tokens[s]) << "step " << s;
  }
}

// Launched kernel by kernel (no graph), the same kernels are recorded: the trace does not depend
// on graph replay.
TEST(KernelTraceGpu, LaunchedStepsAreTracedToo) {
  SKIP_WITHOUT_GPU();
  auto be = small_bf16_backend();
  int32_t token = 0;
  auto gen = warmed_generator(*be, false, 2, token);
  auto trace = KernelTrace::start();
  for (int s = 0; s < 3; ++s) gen->decode_greedy(&token, &token);
  const StepTrace t = summarise_steps(trace->stop(), 3);
  EXPECT_GT(t.kernels, 0);
  EXPECT_EQ(t.copies, 2);
}

TEST(KernelTraceGpu, RefusesASecondTraceAndAnEmptyOne) {
  SKIP_WITHOUT_GPU();
  auto trace = KernelTrace::start();
  EXPECT_THROW(KernelTrace::start(), Error);
  const std::vector<TraceRecord> none = trace->stop();
  EXPECT_TRUE(none.empty());
  EXPECT_THROW(summarise_steps(none, 2), Error);
  auto again = KernelTrace::start();  // the first one's stop released it
  again->stop();
}

}  // namespace
