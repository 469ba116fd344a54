// Data-parallel CUDA backend on 2+ GPUs (ranks = threads, one device each, NCCL through the
// TCP rendezvous): W ranks, each on its own micro-batch, must give the gradient, global norm
// and AdamW step of one process accumulating the W micro-batches (the CPU backend here),
// with bucketed all-reduce overlapped with backward (small buckets: many of them) and ZeRO-1.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu_backend.h"
#include "backend/cuda_backend.h"
#include "core/cuda_check.h"
#include "distributed/buckets.h"
#include "distributed/comm.h"
#include "distributed/rendezvous.h"
#include "model/param_layout.h"
#include "tests/rank_threads.h"

using namespace attn;

namespace {

GPTConfig ddp_model() {
  GPTConfig c;
  c.vocab_size = 101, c.padded_vocab_size = 128, c.block_size = 80;
  c.n_layer = 3, c.n_head = 4, c.n_kv_head = 4, c.n_embd = 72;
  return c;
}
constexpr int kB = 3, kT = 77;

struct Micro {
  std::vector<int32_t> x, y;
};
Micro micro_batch(int index) {
  std::mt19937_64 g(1000 + index);
  Micro m;
  m.x.resize(kB * kT), m.y.resize(kB * kT);
  for (auto& v : m.x) v = static_cast<int32_t>(g() % 101);
  for (auto& v : m.y) v = static_cast<int32_t>(g() % 101);
  return m;
}

double rel_diff(const std::vector<float>& a, const std::vector<float>& b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]), den += double(b[i]) * b[i];
  return std::sqrt(num / std::max(den, 1e-300));
}

struct RankOut {
  std::vector<float> grads, params;
  float norm = 0;
  std::string error;
};

}  // namespace

TEST(DataParallelCuda, RanksMatchOneProcessAccumulating) {
  if (!nccl_available()) GTEST_SKIP() << "built without NCCL";
  const int world = cuda_device_count();
  if (world < 2) GTEST_SKIP() << "needs 2 CUDA devices, this machine has " << world;
  ::setenv("NCCL_NVLS_ENABLE", "0", 0);
  const GPTConfig cfg = ddp_model();
  const ParamLayout layout(cfg);
  std::vector<float> init(layout.total());
  init_gpt2_params(layout, 7, init.data());
  const AdamWConfig adamw{};
  const float lr = 1e-4f;

  // One process, W micro-batches accumulated (fp32 CPU backend): the reference.
  BackendOptions co;
  co.device = "cpu", co.max_batch = kB, co.max_seq = kT, co.threads = 8;
  auto ref = make_backend(cfg, co);
  ref->set_params(init.data());
  ref->zero_grad();
  for (int r = 0; r < world; ++r) {
    const Micro m = micro_batch(r);
    ref->forward_backward(Batch{m.x.data(), m.y.data(), kB, kT}, 1.0f / world, StepContext{1, 0, r, true});
  }
  std::vector<float> ref_grads(layout.total()), ref_params(layout.total());
  ref->get_grads(ref_grads.data());
  const float ref_norm = ref->grad_norm();
  ref->adamw_step(adamw, lr, 0.5f, 1);
  ref->get_params(ref_params.data());

  for (const bool zero1 : {false, true}) {
    std::vector<RankOut> out(world);
    const std::vector<std::string> errors = attn::testing::run_rank_threads(world, 30, [&](Rendezvous& rv, int r) {
      CUDA_CHECK(cudaSetDevice(r));
      auto comm = make_nccl_communicator(rv, r);
      BackendOptions o;
      o.device = "cuda", o.max_batch = kB, o.max_seq = kT;
      auto model = make_cuda_backend(cfg, o);
      model->enable_data_parallel(*comm, zero1, /*bucket_bytes=*/64 << 10);  // ~10 buckets
      model->set_params(init.data());
      model->zero_grad();
      const Micro m = micro_batch(r);
      StepContext ctx{1, 0, r, true};
      ctx.sync_grads = true;
      model->forward_backward(Batch{m.x.data(), m.y.data(), kB, kT}, 1.0f, ctx);
      out[r].grads.resize(layout.total());
      model->get_grads(out[r].grads.data());
      out[r].norm = model->grad_norm();
      model->adamw_step(adamw, lr, 0.5f, 1);
      out[r].params.resize(layout.total());
      model->get_params(out[r].params.data());
      std::vector<float> mm(layout.total()), vv(layout.total());
      model->get_optimizer_state(mm.data(), vv.data());  // collective with ZeRO-1
    });
    for (int r = 0; r < world; ++r) out[r].error = errors[r];
    for (int r = 0; r < world; ++r) {
      ASSERT_EQ(out[r].error, "") << "zero1 " << zero1 << " rank " << r;
      EXPECT_NEAR(out[r].norm, ref_norm, 1e-5 * ref_norm) << "zero1 " << zero1 << " rank " << r;
      const double dp = rel_diff(out[r].params, ref_params, layout.total());
      // AdamW's first step is lr * sign(g): a gradient within rounding of 0 may flip one element by 2 lr.
      EXPECT_LE(dp, 1e-4) << "params after AdamW, zero1 " << zero1 << " rank " << r;
      EXPECT_TRUE(out[r].params == out[0].params) << "ranks hold different parameters, zero1 " << zero1;
      if (zero1) {  // only this rank's shard of the averaged gradient is kept
        const ZeroShards sh = plan_zero_shards(layout.total(), world);
        const size_t b = sh.begin(r), e = std::min(sh.end(r), layout.total());
        std::vector<float> got(out[r].grads.begin() + b, out[r].grads.begin() + e),
            want(ref_grads.begin() + b, ref_grads.begin() + e);
        EXPECT_LE(rel_diff(got, want, got.size()), 1e-5) << "gradient shard, rank " << r;
      } else {
        const double dg = rel_diff(out[r].grads, ref_grads, layout.total());
        EXPECT_LE(dg, 1e-5) << "averaged gradient, rank " << r;
        std::printf("[ddp cuda] rank %d: grad rel diff %.3g, params %.3g, norm %.7g vs %.7g\n", r, dg, dp,
                    out[r].norm, ref_norm);
      }
    }
  }
}
