// The kernel trace's summary and names (backend/kernel_trace.h) on hand-made records, and
// `bench-generate --profile` refused where there is no CUDA device. The trace itself, on the
// device: tests/gpu/test_kernel_trace.cpp.
#include "backend/kernel_trace.h"

#include <gtest/gtest.h>

#include "cli_support.h"
#include "core/device.h"
#include "core/error.h"

namespace {

using attn::StepTrace;
using attn::TraceRecord;
using Kind = TraceRecord::Kind;

TEST(KernelTraceNames, DemangledShortenedToTheKernelAndItsTemplateArguments) {
  using attn::short_kernel_name;
  // g++'s manglings of void attn::kern::(anonymous namespace)::gemv_kernel<8, true>(float const*, float*, int),
  // attn::kern::plain_kernel(int*, unsigned long) and void attn::kern::flash_fwd<float>(attn::kern::Args)
  EXPECT_EQ(short_kernel_name("_ZN4attn4kern12_GLOBAL__N_111gemv_kernelILi8ELb1EEEvPKfPfi"), "gemv_kernel<8, true>");
  EXPECT_EQ(short_kernel_name("_ZN4attn4kern12plain_kernelEPim"), "plain_kernel");
  EXPECT_EQ(short_kernel_name("_ZN4attn4kern9flash_fwdIfEEvNS0_4ArgsE"), "flash_fwd<float>");
  // qualifiers inside template arguments go too; a C name stays as it is
  EXPECT_EQ(short_kernel_name("void attn::kern::fwd<attn::variants::Causal, (attn::Mode)1>(attn::kern::P)"),
            "fwd<Causal, (Mode)1>");
  EXPECT_EQ(short_kernel_name("vectorized_elementwise_kernel"), "vectorized_elementwise_kernel");
  EXPECT_EQ(short_kernel_name("_Znot_a_mangling"), "_Znot_a_mangling");
  EXPECT_EQ(short_kernel_name("void k<1, 2, 3, 4, 5>(int)", 10), "k<1, 2,...");
}

// Two steps of: an upload, kernel a, kernel b launched early (PDL: it starts while a runs), an
// idle gap, kernel a again, a download; then a third step, whose start closes the second period.
std::vector<TraceRecord> three_steps() {
  std::vector<TraceRecord> r;
  for (uint64_t base : {1000u, 2000u, 3000u}) {
    r.push_back({Kind::Memcpy, "memcpy HtoD", base + 0, base + 10});
    r.push_back({Kind::Kernel, "a", base + 12, base + 100});    // idle 2, critical 88
    r.push_back({Kind::Kernel, "b", base + 50, base + 160});    // idle 0, critical 60 (after a's end)
    r.push_back({Kind::Kernel, "a", base + 200, base + 260});   // idle 40, critical 60
    r.push_back({Kind::Memcpy, "memcpy DtoH", base + 265, base + 270});  // idle 5, critical 5
  }
  return r;
}

TEST(KernelTraceSummary, SplitsEachPeriodIntoCriticalIdleAndHostTime) {
  const StepTrace t = attn::summarise_steps(three_steps(), 3);
  EXPECT_EQ(t.steps, 2);
  EXPECT_EQ(t.kernels, 3);
  EXPECT_EQ(t.copies, 2);
  EXPECT_DOUBLE_EQ(t.period_us, 1.0);        // 1000 ns
  EXPECT_DOUBLE_EQ(t.busy_span_us, 0.270);   // 0 -> 270 ns
  EXPECT_DOUBLE_EQ(t.host_us, 0.730);
  ASSERT_EQ(t.rows.size(), 4u);  // by first appearance; a's two calls in one row
  EXPECT_EQ(t.rows[0].name, "memcpy HtoD");
  EXPECT_EQ(t.rows[1].name, "a");
  EXPECT_EQ(t.rows[1].calls, 2);
  EXPECT_NEAR(t.rows[1].own_us, 0.088 + 0.060, 1e-12);
  EXPECT_NEAR(t.rows[1].critical_us, 0.088 + 0.060, 1e-12);
  EXPECT_NEAR(t.rows[1].idle_before_us, 0.002 + 0.040, 1e-12);
  EXPECT_EQ(t.rows[2].name, "b");
  EXPECT_NEAR(t.rows[2].own_us, 0.110, 1e-12);
  EXPECT_NEAR(t.rows[2].critical_us, 0.060, 1e-12);  // only what it adds after a's end
  EXPECT_NEAR(t.rows[2].idle_before_us, 0.0, 1e-12);
  EXPECT_EQ(t.rows[3].kind, Kind::Memcpy);
  double sum = t.host_us;
  for (const auto& row : t.rows) sum += row.critical_us + row.idle_before_us;
  EXPECT_NEAR(sum, t.period_us, 1e-12);
  ASSERT_EQ(t.one_step.size(), 5u);  // relative to the step's first start
  EXPECT_EQ(t.one_step[2].start_ns, 50u);
  EXPECT_EQ(t.one_step[4].end_ns, 270u);

  const std::string table = attn::format_step_trace(t);
  EXPECT_NE(table.find("| 2 | a | 2 | 0.07 | 0.15 | 0.04 | 19.0% |"), std::string::npos) << table;
  EXPECT_NE(table.find("on the GPU: 3 kernels, 2 copies | 5 | | 0.22 | 0.05 | 27.0% |"), std::string::npos) << table;
  EXPECT_NE(table.find("on the host, between steps (graph launch, any sync) | | | | 0.73 | 73.0% |"), std::string::npos)
      << table;
}

TEST(KernelTraceSummary, RefusesRecordsThatAreNotRepeatedSteps) {
  auto r = three_steps();
  EXPECT_THROW(attn::summarise_steps(r, 1), attn::Error);  // one step has no period
  EXPECT_THROW(attn::summarise_steps({}, 2), attn::Error);
  r.pop_back();  // 14 records are not 3 steps
  EXPECT_THROW(attn::summarise_steps(r, 3), attn::Error);
  r = three_steps();
  r[7].name = "c";  // step 2's kernel a is another kernel
  try {
    attn::summarise_steps(r, 3);
    FAIL() << "accepted a step that differs";
  } catch (const attn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("step 1 differs from the first at record 2 (c against b)"), std::string::npos)
        << e.what();
  }
}

// CUPTI loads, and has every function a trace calls, without a device (a misspelt symbol would
// otherwise show only on a GPU). Skipped where CUPTI is not installed, or the build has no CUDA or
// no CUPTI headers.
TEST(KernelTraceCpu, CuptiLoadsWithEveryFunctionATraceCalls) {
  try {
    const std::string name = attn::KernelTrace::library();
    EXPECT_NE(name.find("libcupti"), std::string::npos) << name;
  } catch (const attn::Error& e) {
    const std::string what = e.what();
    if (what.find("cannot load CUPTI") != std::string::npos || what.find("built without CUDA") != std::string::npos ||
        what.find("built without CUPTI") != std::string::npos)
      GTEST_SKIP() << what;
    FAIL() << what;
  }
}

TEST(KernelTraceCpu, StartingATraceWithoutADeviceIsAnError) {
  if (attn::cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is visible (tests/gpu/test_kernel_trace.cpp)";
  EXPECT_THROW(attn::KernelTrace::start(), attn::Error);
}

class KernelTraceCli : public Cli {};

TEST_F(KernelTraceCli, BenchGenerateProfileNeedsTheCudaBackend) {
  std::ofstream(root / "tiny.toml") << "[model]\nn_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 64\n"
                                       "[device]\nbackend = \"cpu\"\nthreads = 1\n";
  const std::string cmd = "bench-generate -c " + (root / "tiny.toml").string() +
                          " --batches 1 --prompt-lens 8 --new-tokens 30 --vocab-size 64 --no-baseline";
  expect_error(run(cmd + " --profile"),
               "bench-generate --profile traces the CUDA decode step's kernels; device.backend is cpu here");
  const RunResult plain = run(cmd);
  EXPECT_EQ(plain.code, 0) << plain.err;
  EXPECT_NE(plain.out.find("weight-read limit at 3.35e+12 bytes/s"), std::string::npos) << plain.out;
}

}  // namespace
