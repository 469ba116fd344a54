// Data-parallel training on the CPU backend, ranks as threads over the TCP communicator:
// W ranks with grad_accum A train the same model as 1 rank with grad_accum A * W (plain
// and ZeRO-1), checkpoints resume across rank counts, and failures are bounded and clear.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "config/config.h"
#include "data/prepare.h"
#include "distributed/rendezvous.h"
#include "distributed/tcp_comm.h"
#include "rank_threads.h"
#include "test_support.h"
#include "word_dataset.h"
#include "train/signals.h"
#include "train/trainer.h"

using namespace attn;
using attn::testing::error_of;
namespace fs = std::filesystem;

namespace {

// The word corpus in the same order every run.
fs::path make_dataset(const fs::path& root) { return attn::testing::make_word_dataset(root, 1234); }

Config ddp_config(const fs::path& data, const fs::path& out, std::vector<std::string> extra) {
  std::vector<std::string> ov = {"--model.n_layer=2", "--model.n_head=2", "--model.n_embd=32",
                                 "--model.block_size=16", "--training.batch_size=2", "--training.max_iters=6",
                                 "--training.eval_interval=3", "--training.eval_iters=4",
                                 "--training.log_interval=1", "--checkpoint.interval=0",
                                 "--schedule.warmup_iters=2", "--optimizer.lr=3e-3", "--optimizer.grad_clip=0.5",
                                 "--device.backend=cpu", "--device.threads=1", "--distributed.timeout_s=20",
                                 "--data.dir=\"" + data.string() + "\"", "--training.out_dir=\"" + out.string() + "\""};
  ov.insert(ov.end(), extra.begin(), extra.end());
  return load_config("", ov);
}

// A TCP port nobody listens on right now (the kernel's pick, released again).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

struct RankRun {
  TrainResult result;
  std::string error;
};

// Runs `world` ranks of run_training as threads; configs[r] is rank r's config.
std::vector<RankRun> run_ranks(const std::vector<Config>& configs, TrainOptions opts) {
  const int world = static_cast<int>(configs.size());
  const int port = free_port();
  std::vector<RankRun> runs(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      TrainOptions o = opts;
      DistEnv env;
      env.rank = r, env.world_size = world, env.local_rank = r, env.master_port = port, env.source = "test";
      o.dist_env = env;
      try {
        runs[r].result = run_training(configs[r], o);
      } catch (const std::exception& e) {
        runs[r].error = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return runs;
}

std::vector<RankRun> run_same(int world, const Config& cfg, TrainOptions opts) {
  return run_ranks(std::vector<Config>(world, cfg), opts);
}

// The training and validation losses of a run, in the order metrics.jsonl has them.
std::vector<double> logged_losses(const fs::path& out) {
  std::ifstream in(out / "metrics.jsonl");
  std::vector<double> all;
  std::string line;
  for (; std::getline(in, line);)
    for (const char* key : {"\"loss\":", "\"val_loss\":"}) {
      const size_t at = line.find(key);
      if (at != std::string::npos) all.push_back(std::stod(line.substr(at + std::strlen(key))));
    }
  return all;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

TrainOptions quiet() {
  TrainOptions o;
  o.quiet = true;
  return o;
}

}  // namespace

// The correctness criterion on the CPU: same global batch, same losses.
TEST(DataParallelTrainer, RanksMatchOneRankWithScaledAccumulation) {
  attn::testing::TempDir tmp("ddp_match");
  const fs::path data = make_dataset(tmp.path);
  for (const int world : {2, 4}) {
    const std::vector<std::string> model_extra = {"--model.dropout=0.1"};  // masks follow the global micro-step
    auto with = [&](std::vector<std::string> more) {
      more.insert(more.end(), model_extra.begin(), model_extra.end());
      return more;
    };
    const fs::path ref_dir = tmp.path / ("ref" + std::to_string(world));
    const Config ref = ddp_config(data, ref_dir, with({"--training.grad_accum=" + std::to_string(2 * world)}));
    const TrainResult r1 = run_training(ref, quiet());
    const std::vector<double> want = logged_losses(ref_dir);
    ASSERT_EQ(want.size(), 6u + 3u);  // 6 steps, evaluations at 0, 3, 6
    for (const int zero : {0, 1}) {
      const fs::path dir = tmp.path / ("w" + std::to_string(world) + "z" + std::to_string(zero));
      const Config cfg = ddp_config(data, dir, with({"--training.grad_accum=2", "--distributed.zero=" + std::to_string(zero)}));
      const auto runs = run_same(world, cfg, quiet());
      for (int r = 0; r < world; ++r) {
        ASSERT_EQ(runs[r].error, "") << "world " << world << " zero " << zero << " rank " << r;
        EXPECT_EQ(runs[r].result.step, 6);
        EXPECT_NEAR(runs[r].result.val_loss, r1.val_loss, 1e-5) << "rank " << r;
        EXPECT_EQ(runs[r].result.last_loss, runs[0].result.last_loss) << "ranks agree on the step's loss";
      }
      const double d = max_abs_diff(logged_losses(dir), want);
      EXPECT_LE(d, 1e-5) << "world " << world << " zero " << zero;
      std::printf("[ddp] world %d zero %d: max |dloss| vs 1 rank (accum %d) = %.3g\n", world, zero, 2 * world, d);
      EXPECT_TRUE(fs::exists(dir / "checkpoints" / "latest"));
    }
  }
}

// Checkpoints hold whole parameter and moment buffers: 2 ranks (ZeRO-1) -> 1 rank -> 4 ranks
// resumes onto the uninterrupted 1-rank curve.
TEST(DataParallelTrainer, CheckpointsResumeAcrossRankCounts) {
  attn::testing::TempDir tmp("ddp_resume");
  const fs::path data = make_dataset(tmp.path);
  const Config ref = ddp_config(data, tmp.path / "ref", {"--training.grad_accum=4", "--training.max_iters=9"});
  run_training(ref, quiet());
  const std::vector<double> want = logged_losses(tmp.path / "ref");

  const fs::path dir = tmp.path / "run";
  TrainOptions part = quiet();
  part.stop_after = 3;
  auto runs = run_same(2, ddp_config(data, dir, {"--training.grad_accum=2", "--training.max_iters=9",
                                                   "--distributed.zero=1"}), part);
  for (const auto& r : runs) ASSERT_EQ(r.error, "");
  TrainOptions resume = quiet();
  resume.resume = true;
  resume.stop_after = 3;
  run_training(ddp_config(data, dir, {"--training.grad_accum=4", "--training.max_iters=9"}), resume);
  resume.stop_after = -1;
  runs = run_same(4, ddp_config(data, dir, {"--training.grad_accum=1", "--training.max_iters=9", "--distributed.zero=1"}),
                  resume);
  for (const auto& r : runs) {
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.result.step, 9);
  }
  EXPECT_LE(max_abs_diff(logged_losses(dir), want), 1e-5);
}

TEST(DataParallelTrainer, UnreachableRendezvousFailsWithinTheTimeout) {
  attn::testing::TempDir tmp("ddp_unreachable");
  const fs::path data = make_dataset(tmp.path);
  const Config cfg = ddp_config(data, tmp.path / "run", {"--distributed.timeout_s=1"});
  TrainOptions o = quiet();
  DistEnv env;
  env.rank = 1, env.world_size = 2, env.master_port = free_port(), env.source = "test";
  o.dist_env = env;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string err = error_of([&] { run_training(cfg, o); });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(err.find("could not reach 127.0.0.1:" + std::to_string(env.master_port) + " within 1 s"), std::string::npos)
      << err;
  EXPECT_LT(s, 5.0);
}

TEST(DataParallelTrainer, RanksWithDifferentConfigsAreRefused) {
  attn::testing::TempDir tmp("ddp_mismatch");
  const fs::path data = make_dataset(tmp.path);
  const auto runs = run_ranks({ddp_config(data, tmp.path / "run", {}),
                               ddp_config(data, tmp.path / "run", {"--optimizer.lr=1e-3"})},
                              quiet());
  for (const auto& r : runs) EXPECT_NE(r.error.find("config"), std::string::npos) << r.error;
  EXPECT_NE(runs[0].error.find("differs between ranks"), std::string::npos) << runs[0].error;
}

// The CPU communicator's collectives, 2, 4 and 8 ranks (threads): exact means in rank order,
// scattered and gathered pieces in place, identical bits on every rank.
TEST(TcpCommunicator, CollectivesOnFourAndEightRanks) {
  for (const int world : {2, 4, 8}) {
    const size_t count = 37;  // per rank: an awkward size
    std::vector<std::vector<float>> reduced(world), scattered(world), gathered(world);
    std::vector<std::vector<double>> summed(world);
    const std::vector<std::string> errors = attn::testing::run_rank_threads(world, 10, [&](Rendezvous& rv, int r) {
      auto comm = make_tcp_communicator(rv);
      summed[r] = {1.0 / 3 + r, 1e-17 * (r + 1)};  // float64 kept: 1e-17 would vanish next to 1 in float
      comm->all_reduce_sum(summed[r].data(), 2, nullptr);
      std::vector<float> h(count * world);
      for (size_t i = 0; i < h.size(); ++i) h[i] = 0.25f * float(r + 1) * float(i % 13) - 3.0f;  // exact in float
      reduced[r] = h;
      comm->all_reduce_mean(reduced[r].data(), h.size(), nullptr);
      std::vector<float> inplace = h;
      comm->reduce_scatter_mean(inplace.data(), inplace.data() + r * count, count, nullptr);
      scattered[r].assign(inplace.begin() + r * count, inplace.begin() + (r + 1) * count);
      gathered[r].assign(count * world, 0.0f);
      for (size_t i = 0; i < count; ++i) gathered[r][r * count + i] = float(r * 1000 + i);
      comm->all_gather(gathered[r].data() + r * count, gathered[r].data(), count, nullptr);
      comm->barrier(nullptr);
    });
    for (int r = 0; r < world; ++r) {
      ASSERT_EQ(errors[r], "") << "world " << world << " rank " << r;
      for (size_t i = 0; i < count * world; ++i) {
        double sum = 0;
        for (int q = 0; q < world; ++q) sum += 0.25 * (q + 1) * double(i % 13) - 3.0;
        EXPECT_EQ(reduced[r][i], static_cast<float>(sum / world)) << "world " << world << " i " << i;
        EXPECT_EQ(gathered[r][i], float((i / count) * 1000 + i % count));
      }
      for (size_t i = 0; i < count; ++i) EXPECT_EQ(scattered[r][i], reduced[r][r * count + i]);
      EXPECT_TRUE(reduced[r] == reduced[0]);
      double s0 = 0, s1 = 0;
      for (int q = 0; q < world; ++q) s0 += 1.0 / 3 + q, s1 += 1e-17 * (q + 1);
      EXPECT_EQ(summed[r][0], s0) << "all_reduce_sum, world " << world;
      EXPECT_EQ(summed[r][1], s1) << "all_reduce_sum, world " << world;
    }
  }
}

// A run that diverges stops on every rank at the same step with the same message and saves
// nothing, also on steps where the ranks do not exchange their losses (log_interval 100: they
// go by the shared gradient norm there).
TEST(DataParallelTrainer, DivergingRunStopsEveryRankWithoutSaving) {
  attn::testing::TempDir tmp("ddp_nan");
  const fs::path data = make_dataset(tmp.path);
  for (const int world : {1, 2}) {
    const fs::path out = tmp.path / ("run" + std::to_string(world));
    const Config cfg = ddp_config(data, out, {"--optimizer.lr=1e30", "--optimizer.grad_clip=0",
                                              "--schedule.warmup_iters=0", "--training.log_interval=100",
                                              "--training.max_iters=30", "--training.eval_interval=0"});
    const auto runs = run_same(world, cfg, quiet());
    for (int r = 0; r < world; ++r) {
      EXPECT_NE(runs[r].error.find("stopping without saving"), std::string::npos) << "rank " << r << ": " << runs[r].error;
      EXPECT_EQ(runs[r].error, runs[0].error) << "rank " << r;
    }
    EXPECT_FALSE(fs::exists(out / "checkpoints")) << "world " << world;
  }
}

// A stop request (Ctrl-C) reaches the ranks at different steps; they agree on it at the next
// exchange (every 10 steps here: log_interval is 1000) and all stop there, saving one checkpoint.
TEST(DataParallelTrainer, StopRequestStopsEveryRankAtTheSameStep) {
  attn::testing::TempDir tmp("ddp_stop");
  const fs::path data = make_dataset(tmp.path);
  const fs::path out = tmp.path / "run";
  const Config cfg = ddp_config(data, out, {"--training.max_iters=20000", "--training.log_interval=1000",
                                            "--training.eval_interval=0"});
  clear_stop_request();
  std::thread stopper([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    request_stop();
  });
  const auto runs = run_same(2, cfg, quiet());
  stopper.join();
  clear_stop_request();
  for (const auto& r : runs) {
    ASSERT_EQ(r.error, "");
    EXPECT_TRUE(r.result.interrupted);
    EXPECT_EQ(r.result.step, runs[0].result.step);
  }
  EXPECT_LT(runs[0].result.step, 20000);
  EXPECT_EQ(runs[0].result.step % 10, 0) << "stopped between exchanges";
  EXPECT_TRUE(fs::exists(out / "checkpoints"));
}
