// Distributed groundwork that needs no GPU: launcher variables, the TCP rendezvous
// (ranks as threads on 127.0.0.1), gradient buckets and ZeRO-1 shards, the config keys.
#include <gtest/gtest.h>

#include "rank_threads.h"
#include "test_support.h"

#include <chrono>
#include <algorithm>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "core/device.h"
#include "core/error.h"
#include "distributed/buckets.h"
#include "distributed/comm.h"
#include "distributed/devices.h"
#include "distributed/launch_env.h"
#include "distributed/rendezvous.h"

using namespace attn;

namespace {

using attn::testing::error_of;

}  // namespace

// ---- launcher variables -------------------------------------------------------

TEST(LaunchEnv, NothingSetIsOneProcess) {
  const DistEnv d = detect_dist_env({});
  EXPECT_EQ(d.rank, 0);
  EXPECT_EQ(d.world_size, 1);
  EXPECT_EQ(d.local_rank, 0);
  EXPECT_EQ(d.master_addr, "127.0.0.1");
  EXPECT_EQ(d.master_port, 29500);
  EXPECT_EQ(d.source, "none");
}

TEST(LaunchEnv, Torchrun) {
  const DistEnv d = detect_dist_env({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"},
                                     {"MASTER_ADDR", "node07"}, {"MASTER_PORT", "1234"}});
  EXPECT_EQ(d.rank, 5);
  EXPECT_EQ(d.world_size, 8);
  EXPECT_EQ(d.local_rank, 1);
  EXPECT_EQ(d.master_addr, "node07");
  EXPECT_EQ(d.master_port, 1234);
  EXPECT_EQ(d.source, "torchrun");
}

TEST(LaunchEnv, SlurmAndOpenMpi) {
  DistEnv d = detect_dist_env({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "3"}});
  EXPECT_EQ(d.source, "slurm");
  EXPECT_EQ(d.rank, 3);
  EXPECT_EQ(d.world_size, 4);
  EXPECT_EQ(d.local_rank, 3);
  d = detect_dist_env({{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "16"},
                       {"OMPI_COMM_WORLD_LOCAL_RANK", "2"}, {"SLURM_PROCID", "9"}, {"SLURM_NTASKS", "10"}});
  EXPECT_EQ(d.source, "openmpi");  // mpirun inside an allocation: its own variables win
  EXPECT_EQ(d.rank, 2);
  EXPECT_EQ(d.world_size, 16);
  // torchrun inside a Slurm allocation: torchrun's per-process variables win.
  d = detect_dist_env({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}});
  EXPECT_EQ(d.source, "torchrun");
  EXPECT_EQ(d.rank, 1);
  EXPECT_EQ(d.local_rank, 1);  // no LOCAL_RANK: the rank
}

TEST(LaunchEnv, InconsistentValuesNameTheVariable) {
  EXPECT_NE(error_of([] { detect_dist_env({{"RANK", "4"}, {"WORLD_SIZE", "4"}}); }).find("RANK=4 is out of range"),
            std::string::npos);
  EXPECT_NE(error_of([] { detect_dist_env({{"RANK", "x"}, {"WORLD_SIZE", "4"}}); }).find("RANK='x' is not an integer"),
            std::string::npos);
  EXPECT_NE(error_of([] { detect_dist_env({{"RANK", "0"}, {"WORLD_SIZE", "2 "}}); }).find("WORLD_SIZE"),
            std::string::npos);
  EXPECT_NE(error_of([] { detect_dist_env({{"RANK", "0"}, {"WORLD_SIZE", "0"}}); }).find("WORLD_SIZE=0"),
            std::string::npos);
  EXPECT_NE(error_of([] { detect_dist_env({{"RANK", "1"}}); }).find("WORLD_SIZE"), std::string::npos);
  EXPECT_NE(error_of([] { detect_dist_env({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "-1"}}); })
                .find("SLURM_LOCALID=-1"),
            std::string::npos);
  EXPECT_NE(error_of([] { detect_dist_env({{"OMPI_COMM_WORLD_RANK", "7"}, {"OMPI_COMM_WORLD_SIZE", "3"}}); })
                .find("OMPI_COMM_WORLD_RANK=7"),
            std::string::npos);
  EXPECT_NE(error_of([] { detect_dist_env({{"MASTER_PORT", "70000"}}); }).find("MASTER_PORT=70000"), std::string::npos);
  EXPECT_NE(error_of([] { detect_dist_env({{"MASTER_PORT", "abc"}}); }).find("MASTER_PORT"), std::string::npos);
}

// ---- rendezvous -----------------------------------------------------------------

namespace {

DistEnv local_env(int rank, int world, int port) {
  DistEnv e;
  e.rank = rank, e.world_size = world, e.master_port = port;
  return e;
}

// Runs `world` ranks as threads: rank 0 listens on an ephemeral port, the others start
// first (so they exercise the retry) and connect. Returns each rank's error ("" = none).
std::vector<std::string> run_ranks(int world, double timeout_s,
                                   const std::function<void(Rendezvous&)>& body) {
  return attn::testing::run_rank_threads(
      world, timeout_s, [&](Rendezvous& rv, int) { body(rv); }, std::chrono::milliseconds(50));
}

}  // namespace

TEST(Rendezvous, BlobArrivesAtEveryRank) {
  for (int world : {1, 2, 4, 8}) {
    Blob id(128);
    for (int i = 0; i < 128; ++i) id[i] = static_cast<uint8_t>(i * 7 + world);
    std::vector<Blob> got(world);
    std::vector<std::vector<Blob>> gathered(world);
    const auto errors = run_ranks(world, 10, [&](Rendezvous& rv) {
      got[rv.rank()] = rv.broadcast(rv.rank() == 0 ? id : Blob{});
      const std::string mine = "config-hash-of-rank-" + std::to_string(rv.rank());
      gathered[rv.rank()] = rv.all_gather(Blob(mine.begin(), mine.end()));
      rv.barrier();
      got[rv.rank()] = rv.broadcast(rv.rank() == 0 ? id : Blob{}) == id ? got[rv.rank()] : Blob{};
    });
    for (int r = 0; r < world; ++r) {
      EXPECT_EQ(errors[r], "") << "world " << world << " rank " << r;
      EXPECT_EQ(got[r], id) << "world " << world << " rank " << r;
      ASSERT_EQ(gathered[r].size(), size_t(world));
      for (int q = 0; q < world; ++q) {
        const std::string want = "config-hash-of-rank-" + std::to_string(q);
        EXPECT_EQ(gathered[r][q], Blob(want.begin(), want.end())) << "world " << world << " rank " << r;
      }
    }
  }
}

TEST(Rendezvous, SameValueOnAllRanks) {
  auto errors = run_ranks(4, 10, [](Rendezvous& rv) { require_same_on_all_ranks(rv, "config hash", "abc123"); });
  for (const auto& e : errors) EXPECT_EQ(e, "");
  errors = run_ranks(3, 10, [](Rendezvous& rv) {
    require_same_on_all_ranks(rv, "config hash", rv.rank() == 2 ? "fff" : "abc123");
  });
  for (const auto& e : errors) EXPECT_EQ(e, "config hash differs between ranks: rank 0 has 'abc123', rank 2 has 'fff'");
}

TEST(Rendezvous, UnreachableRankZeroTimesOut) {
  int port = 0;
  {
    Rendezvous probe(local_env(0, 2, 0), 1);  // find a free port, then free it: nobody listens there
    port = probe.port();
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::string err = error_of([&] {
    Rendezvous rv(local_env(1, 2, port), 1.0);
    rv.connect();
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(err.find("rendezvous: could not reach 127.0.0.1:" + std::to_string(port) + " within 1 s (is rank 0 running?)"),
            std::string::npos)
      << err;
  EXPECT_GE(s, 0.9);
  EXPECT_LT(s, 3.0);
}

TEST(Rendezvous, RankZeroNamesMissingRanks) {
  const int world = 4;
  Rendezvous rv0(local_env(0, world, 0), 1.0);
  const int port = rv0.port();
  std::thread t([&] {  // only rank 2 shows up
    Rendezvous rv(local_env(2, world, port), 1.0);
    try {
      rv.connect();
      rv.barrier();
    } catch (const Error&) {
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  const std::string err = error_of([&] { rv0.connect(); });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t.join();
  EXPECT_NE(err.find("rank(s) 1, 3 of world size 4"), std::string::npos) << err;
  EXPECT_LT(s, 3.0);
}

TEST(Rendezvous, DuplicateRankAndOtherWorldSizeAreRefused) {
  const int world = 3;
  Rendezvous rv0(local_env(0, world, 0), 1.5);
  const int port = rv0.port();
  std::string err_dup, err_range, err_ok;
  std::thread a([&] {
    err_ok = error_of([&] {
      Rendezvous rv(local_env(1, world, port), 1.5);
      rv.connect();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      Rendezvous dup(local_env(1, world, port), 1.5);  // a second process claiming rank 1
      err_dup = error_of([&] { dup.connect(); });
      DistEnv bad = local_env(1, world, port);
      bad.world_size = 2;  // disagrees on the world size
      Rendezvous other(bad, 1.5);
      err_range = error_of([&] { other.connect(); });
    });
  });
  const std::string err0 = error_of([&] { rv0.connect(); });
  a.join();
  EXPECT_NE(err_dup.find("refused: rank 1 joined twice"), std::string::npos) << err_dup;
  EXPECT_NE(err_range.find("refused: rank 1 says world size 2, rank 0 has 3"), std::string::npos) << err_range;
  EXPECT_NE(err0.find("rank(s) 2 of world size 3"), std::string::npos) << err0;
  EXPECT_NE(err0.find("joined twice"), std::string::npos) << err0;
}

// ---- gradient buckets and ZeRO-1 shards ------------------------------------------

namespace {

GPTConfig bucket_model(int n_layer = 4, int C = 64) {
  GPTConfig c;
  c.vocab_size = 1000, c.padded_vocab_size = 1024, c.block_size = 128;
  c.n_layer = n_layer, c.n_head = 4, c.n_kv_head = 2, c.n_embd = C;
  return c;
}

}  // namespace

TEST(GradBuckets, CoverTheBufferOnceInBackwardOrder) {
  const ParamLayout layout(bucket_model());
  const size_t layer_bytes = (layout.layer_span(0).second - layout.layer_span(0).first) * sizeof(float);
  for (size_t bytes : {size_t(4), size_t(1000), layer_bytes / 3, layer_bytes, 2 * layer_bytes, size_t(25) << 20}) {
    const auto buckets = plan_grad_buckets(layout, bytes);
    ASSERT_FALSE(buckets.empty());
    // Contiguous from the end of the buffer down to 0, no gap, no overlap.
    EXPECT_EQ(buckets.front().end, layout.total()) << bytes;
    EXPECT_EQ(buckets.back().begin, 0u) << bytes;
    std::vector<int> seen(layout.tensors().size(), 0);
    for (size_t k = 0; k < buckets.size(); ++k) {
      const GradBucket& b = buckets[k];
      EXPECT_LT(b.begin, b.end);
      if (k + 1 < buckets.size()) EXPECT_EQ(buckets[k + 1].end, b.begin) << bytes;
      // The size bound holds unless the bucket is one oversized tensor.
      if (b.tensors.size() > 1) EXPECT_LE(b.size() * sizeof(float), bytes) << bytes;
      // Ready in backward order: stages never increase from one bucket to the next.
      if (k > 0) EXPECT_LE(b.ready_after, buckets[k - 1].ready_after);
      int min_stage = 1 << 30;
      for (int i : b.tensors) {
        ++seen[i];
        const ParamTensor& t = layout.get(i);
        EXPECT_GE(t.offset, b.begin);
        EXPECT_LE(t.offset + t.numel, b.end);
        min_stage = std::min(min_stage, grad_ready_stage(layout, i));
      }
      EXPECT_EQ(b.ready_after, min_stage);
    }
    for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 1) << layout.get(int(i)).name;
  }
}

TEST(GradBuckets, StagesFollowBackward) {
  const ParamLayout layout(bucket_model(3));
  EXPECT_EQ(grad_ready_stage(layout, layout.lnf_w()), 3);
  EXPECT_EQ(grad_ready_stage(layout, layout.layer(2).fc_w), 2);
  EXPECT_EQ(grad_ready_stage(layout, layout.layer(0).ln1_w), 0);
  EXPECT_EQ(grad_ready_stage(layout, layout.wpe()), -1);
  EXPECT_EQ(grad_ready_stage(layout, layout.wte()), -1);
  // One float per bucket: every tensor is its own bucket, ln_f first, wte last.
  const auto buckets = plan_grad_buckets(layout, 4);
  EXPECT_EQ(buckets.size(), layout.tensors().size());
  EXPECT_EQ(buckets.front().tensors, std::vector<int>{layout.lnf_b()});
  EXPECT_EQ(buckets.back().tensors, std::vector<int>{layout.wte()});
  // Huge buckets: everything in one, ready at the end of backward.
  const auto one = plan_grad_buckets(layout, size_t(1) << 40);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].ready_after, -1);
  EXPECT_NE(error_of([&] { plan_grad_buckets(layout, 0); }).find("at least one float"), std::string::npos);
}

TEST(ZeroShards, PartitionThePaddedBuffer) {
  const ParamLayout layout(bucket_model());
  for (size_t total : {size_t(1), size_t(63), size_t(64), size_t(1000), layout.total()}) {
    for (int world = 1; world <= 8; ++world) {
      const ZeroShards z = plan_zero_shards(total, world);
      EXPECT_GE(z.padded_total, total);
      EXPECT_LT(z.padded_total - total, ParamLayout::kAlign * world);
      EXPECT_EQ(z.shard_size % ParamLayout::kAlign, 0u);
      EXPECT_EQ(z.begin(0), 0u);
      for (int r = 0; r + 1 < world; ++r) EXPECT_EQ(z.end(r), z.begin(r + 1));
      EXPECT_EQ(z.end(world - 1), z.padded_total);
    }
  }
  EXPECT_NE(error_of([] { plan_zero_shards(10, 0); }).find("world size"), std::string::npos);
}

// ---- config keys and the device check --------------------------------------------

TEST(DistributedConfig, DefaultsValidationAndDeviceCheck) {
  Config c = load_config("");
  EXPECT_EQ(c.distributed.nproc, 1);
  EXPECT_EQ(c.distributed.bucket_mb, 25);
  EXPECT_EQ(c.distributed.zero, 0);
  EXPECT_EQ(c.distributed.timeout_s, 60);
  c = load_config("", {"--distributed.nproc=4", "--distributed.zero=1", "--distributed.bucket_mb=50",
                       "--distributed.timeout_s=5"});
  EXPECT_EQ(c.distributed.nproc, 4);
  EXPECT_EQ(c.distributed.zero, 1);
  EXPECT_EQ(c.distributed.bucket_mb, 50);
  EXPECT_EQ(c.distributed.timeout_s, 5);
  EXPECT_NE(to_toml(c).find("[distributed]"), std::string::npos);
  for (const char* bad : {"--distributed.nproc=0", "--distributed.zero=2", "--distributed.bucket_mb=0",
                          "--distributed.timeout_s=0"}) {
    const std::string key = std::string(bad).substr(2, std::string(bad).find('=') - 2);
    EXPECT_NE(error_of([&] { load_config("", {bad}); }).find(key), std::string::npos) << bad;
  }
  EXPECT_NE(error_of([] { load_config("", {"--distributed.nprocs=2"}); }).find("distributed.nproc"),
            std::string::npos);

  DistributedSection d;
  check_distributed_request(d, "cuda", 0);  // one process: nothing to check
  d.nproc = 2;
  EXPECT_EQ(error_of([&] { check_distributed_request(d, "cuda", 0); }),
            "distributed.nproc = 2 with device.backend = \"cuda\" needs 2 CUDA devices; this machine has 0");
  EXPECT_EQ(error_of([&] { check_distributed_request(d, "cuda", 1); }),
            "distributed.nproc = 2 with device.backend = \"cuda\" needs 2 CUDA devices; this machine has 1");
  EXPECT_EQ(error_of([&] { check_distributed_request(d, "auto", 1); }),
            "distributed.nproc = 2 with device.backend = \"cuda\" needs 2 CUDA devices; this machine has 1");
  check_distributed_request(d, "cuda", 8);
  check_distributed_request(d, "cpu", 0);   // the CPU backend runs ranks over TCP
  check_distributed_request(d, "auto", 0);  // auto without a GPU is the CPU
}

// device.backend = "auto" is resolved in one place (core/device.h), by the visible CUDA devices.
TEST(Devices, AutoIsCudaExactlyWhenADeviceIsVisible) {
  EXPECT_EQ(resolve_device("auto", 0), "cpu");
  EXPECT_EQ(resolve_device("auto", 1), "cuda");
  EXPECT_EQ(resolve_device("auto", 8), "cuda");
  EXPECT_EQ(resolve_device("cpu", 8), "cpu");
  EXPECT_EQ(resolve_device("cuda", 0), "cuda");  // refused later, by make_backend, naming the key
  EXPECT_EQ(resolve_device("auto"), cuda_device_count() > 0 ? "cuda" : "cpu");
}

TEST(LocalCommunicator, IsTheIdentity) {
  LocalCommunicator c;
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.world_size(), 1);
  std::vector<float> a = {1, 2, 3}, b(3, 0);
  c.all_reduce_mean(a.data(), a.size(), nullptr);
  EXPECT_EQ(a, (std::vector<float>{1, 2, 3}));
  c.reduce_scatter_mean(a.data(), b.data(), 3, nullptr);
  EXPECT_EQ(b, a);
  std::fill(b.begin(), b.end(), 0.f);
  c.all_gather(a.data(), b.data(), 3, nullptr);
  EXPECT_EQ(b, a);
  c.barrier(nullptr);
  if (!nccl_available()) {
    Rendezvous rv(DistEnv{}, 1);
    EXPECT_NE(error_of([&] { make_nccl_communicator(rv, 0); }).find("built without"), std::string::npos);
  }
}
