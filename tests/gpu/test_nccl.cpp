// The NCCL communicator on real GPUs: ranks are threads of this process, one per device,
// bootstrapped through the TCP rendezvous like separate processes would be. Needs
// NCCL and a GPU (world 1) or two or more GPUs (world = device count); skips otherwise.
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backend/cuda_backend.h"
#include "core/cuda_check.h"
#include "distributed/comm.h"
#include "distributed/rendezvous.h"
#include "tests/rank_threads.h"

using namespace attn;

namespace {

// Runs body(comm) on `world` ranks (rank r on device r); returns each rank's error.
std::vector<std::string> run_nccl_ranks(int world, const std::function<void(Communicator&)>& body) {
  return attn::testing::run_rank_threads(world, 30, [&](Rendezvous& rv, int r) {
    auto comm = make_nccl_communicator(rv, r);
    body(*comm);
  });
}

}  // namespace

TEST(Nccl, CollectivesAverageAndGather) {
  if (!nccl_available()) GTEST_SKIP() << "built without NCCL";
  const int devices = cuda_device_count();
  if (devices == 0) GTEST_SKIP() << "no CUDA device";
  const int world = devices;
  ::setenv("NCCL_NVLS_ENABLE", "0", 0);  // before the rank threads: setenv is not thread-safe
  const size_t count = 1000;  // per rank
  std::vector<std::vector<float>> reduced(world), scattered(world), gathered(world);
  std::vector<std::array<double, 2>> sums(world);
  const auto errors = run_nccl_ranks(world, [&](Communicator& c) {
    const int r = c.rank();
    ASSERT_EQ(c.world_size(), world);
    std::vector<float> h(count * world);
    for (size_t i = 0; i < h.size(); ++i) h[i] = float(r + 1) * float(i % 97);
    float *d = nullptr, *g = nullptr;
    CUDA_CHECK(cudaMalloc(&d, h.size() * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&g, h.size() * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice));
    c.all_reduce_mean(d, h.size(), nullptr);
    reduced[r].resize(h.size());
    CUDA_CHECK(cudaMemcpy(reduced[r].data(), d, h.size() * sizeof(float), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice));
    c.reduce_scatter_mean(d, g, count, nullptr);
    scattered[r].resize(count);
    CUDA_CHECK(cudaMemcpy(scattered[r].data(), g, count * sizeof(float), cudaMemcpyDeviceToHost));
    c.all_gather(g, d, count, nullptr);
    double* s = nullptr;  // float64 sum: 1e-17 would vanish next to 1 in float
    const double mine[2] = {1.0 + r, 1e-17 * (r + 1)};
    CUDA_CHECK(cudaMalloc(&s, sizeof mine));
    CUDA_CHECK(cudaMemcpy(s, mine, sizeof mine, cudaMemcpyHostToDevice));
    c.all_reduce_sum(s, 2, nullptr);
    CUDA_CHECK(cudaMemcpy(sums[r].data(), s, sizeof mine, cudaMemcpyDeviceToHost));
    cudaFree(s);
    c.barrier(nullptr);
    gathered[r].resize(h.size());
    CUDA_CHECK(cudaMemcpy(gathered[r].data(), d, h.size() * sizeof(float), cudaMemcpyDeviceToHost));
    cudaFree(d), cudaFree(g);
  });
  const float mean_factor = float(world + 1) / 2;  // mean of (r + 1) over ranks
  for (int r = 0; r < world; ++r) {
    ASSERT_EQ(errors[r], "") << "rank " << r;
    EXPECT_DOUBLE_EQ(sums[r][0], world * (world + 1) / 2.0) << "all_reduce_sum rank " << r;
    EXPECT_DOUBLE_EQ(sums[r][1], 1e-17 * world * (world + 1) / 2.0) << "all_reduce_sum rank " << r;
    for (size_t i = 0; i < count * world; ++i) {
      const float want = mean_factor * float(i % 97);
      ASSERT_NEAR(reduced[r][i], want, 1e-4f * want + 1e-6f) << "all_reduce rank " << r << " i " << i;
      ASSERT_NEAR(gathered[r][i], want, 1e-4f * want + 1e-6f) << "all_gather rank " << r << " i " << i;
    }
    for (size_t i = 0; i < count; ++i) {
      const float want = mean_factor * float((r * count + i) % 97);
      ASSERT_NEAR(scattered[r][i], want, 1e-4f * want + 1e-6f) << "reduce_scatter rank " << r << " i " << i;
    }
  }
}
