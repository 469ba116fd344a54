// The run directory's pieces on their own (train/run_identity.*, train/run_lock.*,
// data/shard_guard.*, load_resume_config): what each one detects, and what it lets through.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "config/config.h"
#include "data/dataset.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "data/shard_guard.h"
#include "fd_check.h"
#include "test_support.h"
#include "train/run_identity.h"
#include "train/run_lock.h"

using namespace attn;
namespace fs = std::filesystem;

namespace {

DatasetInfo prepared(const attn::testing::TempDir& tmp, const std::string& name, const std::string& text) {
  fs::create_directories(tmp.path / (name + "_text"));
  std::ofstream(tmp.path / (name + "_text") / "a.txt") << text;
  PrepareOptions p;
  p.inputs = {(tmp.path / (name + "_text")).string()};
  p.out_dir = (tmp.path / name).string();
  p.tokenizer = "char";
  return prepare_dataset(p, [](const std::string&) {});
}

std::string random_text(uint64_t seed, int n) {
  std::mt19937_64 rng(seed);
  std::string s;
  for (int i = 0; i < n; ++i) s += "abcdefgh ij\n"[rng() % 12];
  return s;
}

}  // namespace

TEST(RunIdentity, SameDataIsSameAndEveryChangeIsNamed) {
  attn::testing::TempDir tmp("identity");
  const uint64_t seed = attn::testing::test_seed();
  SCOPED_TRACE(seed);
  const DatasetInfo data = prepared(tmp, "d", random_text(seed, 5000));
  const DataIdentity id = data_identity(data);
  EXPECT_EQ(identity_difference(id, identity_from_json(identity_json(id))), "");
  EXPECT_EQ(identity_difference(id, data_identity(load_dataset_info(data.dir))), "");
  // the same folder prepared again from other text (same alphabet): a shard differs
  fs::remove_all(data.dir);
  const DatasetInfo again = prepared(tmp, "d", random_text(seed + 1, 5000));
  const std::string diff = identity_difference(id, data_identity(again));
  EXPECT_NE(diff.find("train_000.bin"), std::string::npos) << diff;
  // another alphabet: the vocabulary
  fs::remove_all(data.dir);
  const DatasetInfo other = prepared(tmp, "d", random_text(seed, 5000) + "XYZ");
  EXPECT_NE(identity_difference(id, data_identity(other)).find("vocab"), std::string::npos);
}

TEST(RunIdentity, ResumeCheckUsesTheRecordAndTheRunsTokenizer) {
  attn::testing::TempDir tmp("record");
  const DatasetInfo data = prepared(tmp, "d", random_text(3, 4000));
  const std::string run = (tmp.path / "run").string();
  fs::create_directories(run);
  const std::string tok = start_run_record(run, data);
  auto quiet = [](const std::string&) {};
  EXPECT_EQ(check_run_record(run, data, quiet), tok);
  ASSERT_TRUE(read_run_record(run).has_value());
  EXPECT_EQ(read_run_record(run)->tokenizer_hash, hash_hex(file_fnv1a64(data.tokenizer_path)));
  std::ofstream(tok) << "{}";  // the run's own tokenizer edited: refused
  EXPECT_NE(attn::testing::error_of([&] { check_run_record(run, data, quiet); }).find("changed since the run started"),
            std::string::npos);
}

TEST(RunLock, SecondHolderIsRefusedNamingThePid) {
  attn::testing::TempDir tmp("lock");
  std::string notes;
  auto note = [&](const std::string& s) { notes += s; };
  {
    RunLock first(tmp.path.string(), note);
    const std::string err = attn::testing::error_of([&] { RunLock second(tmp.path.string(), note); });
    EXPECT_NE(err.find("in use by another trainer (pid " + std::to_string(::getpid())), std::string::npos) << err;
  }
  RunLock again(tmp.path.string(), note);  // released at the end of a clean run: no stale note
  EXPECT_EQ(notes, "");
}

TEST(ShardWatch, ReplacedOrTruncatedShardIsNamed) {
  attn::testing::TempDir tmp("watch");
  const DatasetInfo data = prepared(tmp, "d", random_text(5, 4000));
  const std::string shard = data.train_shards[0];
  const ShardWatch watch(data.train_shards);
  EXPECT_NO_THROW(watch.check());
  {  // `prepare` writes a new file and renames it over the old one
    const Shard s(shard);
    std::vector<int32_t> tokens(static_cast<size_t>(s.size()));
    s.copy(0, s.size(), tokens.data());
    write_shard(shard, tokens, s.vocab_size());
  }
  EXPECT_NE(attn::testing::error_of([&] { watch.check(); }).find("shard " + shard + " changed while training"),
            std::string::npos);
  const ShardWatch watch2(data.train_shards);
  fs::resize_file(shard, 64);
  EXPECT_NE(attn::testing::error_of([&] { watch2.check(); }).find("changed while training"), std::string::npos);
}

TEST(ResumeConfig, OnlySafeKeysMayChange) {
  attn::testing::TempDir tmp("resume_cfg");
  const Config run = load_config("", {"--model.n_embd=64", "--data.dir=mydata", "--training.max_iters=10"});
  std::ofstream(tmp.file("config.toml")) << to_toml(run);
  const Config c = load_resume_config(tmp.file("config.toml"),
                                      {"--training.max_iters=20", "--device.threads=1", "--checkpoint.interval=5",
                                       "--data.dir=mydata", "--model.n_embd=64"});  // repeats are harmless
  EXPECT_EQ(c.training.max_iters, 20);
  EXPECT_EQ(c.model.n_embd, 64);
  EXPECT_EQ(c.data.dir, "mydata");
  for (const char* bad : {"--model.n_embd=32", "--data.dir=other", "--optimizer.lr=1e-2", "--training.seed=7"}) {
    const std::string err = attn::testing::error_of([&] { load_resume_config(tmp.file("config.toml"), {bad}); });
    EXPECT_NE(err.find(std::string(bad + 2, std::string(bad + 2).find('='))), std::string::npos) << err;
  }
  EXPECT_NE(attn::testing::error_of([&] { load_resume_config(tmp.file("none.toml"), {}); }).find("does not exist"),
            std::string::npos);
  EXPECT_TRUE(resume_may_override("training.max_iters"));
  EXPECT_FALSE(resume_may_override("model.block_size"));
}
