// Safetensors files and checkpoints: round trips, atomicity, and the errors for bad files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <cstring>
#include <random>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/text_file.h"
#include "train/checkpoint.h"
#include "train/schedule.h"
#include "test_support.h"

using namespace attn;
namespace fs = std::filesystem;

namespace {

GPTConfig tiny_config() {
  GPTConfig g;
  g.vocab_size = 37, g.padded_vocab_size = 64, g.block_size = 16, g.n_layer = 2, g.n_head = 4, g.n_kv_head = 2,
  g.n_embd = 24;
  return g;
}

std::vector<float> random_buffer(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}


}  // namespace

TEST(Safetensors, RoundTripAndHeaderLayout) {
  const attn::testing::TempDir tmp("st");
  const fs::path& dir = tmp.path;
  const auto a = random_buffer(12, 1), b = random_buffer(5, 2);
  write_safetensors((dir / "t.safetensors").string(), {{"a", {3, 4}, a.data()}, {"b", {5}, b.data()}}, {{"k", "v"}});
  const SafetensorsFile f = read_safetensors((dir / "t.safetensors").string());
  EXPECT_EQ(f.tensors.at("a").shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(f.tensors.at("a").data, a);
  EXPECT_EQ(f.tensors.at("b").data, b);
  EXPECT_EQ(f.metadata.at("k"), "v");
  // The header length is a multiple of 8 and the data follows it directly.
  std::ifstream in(dir / "t.safetensors", std::ios::binary);
  uint64_t hlen = 0;
  in.read(reinterpret_cast<char*>(&hlen), 8);
  EXPECT_EQ(hlen % 8, 0u);
  EXPECT_EQ(fs::file_size(dir / "t.safetensors"), 8 + hlen + 4 * (12 + 5));
}

TEST(Safetensors, TruncatedAndCorruptFilesAreErrors) {
  const attn::testing::TempDir tmp("stbad");
  const fs::path& dir = tmp.path;
  const auto a = random_buffer(100, 3);
  const std::string path = (dir / "t.safetensors").string();
  write_safetensors(path, {{"a", {100}, a.data()}});
  fs::resize_file(path, fs::file_size(path) - 10);
  try {
    read_safetensors(path);
    FAIL() << "truncated file accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  std::ofstream(path, std::ios::trunc) << "garbage that is not a safetensors file";
  EXPECT_THROW(read_safetensors(path), Error);
}

TEST(Checkpoint, RoundTripKeepsEverything) {
  const ParamLayout layout(tiny_config());
  const attn::testing::TempDir tmp("ck");
  const fs::path& dir = tmp.path;
  const auto p = random_buffer(layout.total(), 4), m = random_buffer(layout.total(), 5),
             v = random_buffer(layout.total(), 6);
  TrainState st;
  st.step = 42, st.tokens_seen = 4242, st.best_val_loss = 1.5, st.last_val_loss = 1.6;
  std::ofstream(dir / "tok.json") << "{}";
  const std::string ck =
      save_checkpoint(dir.string(), layout, p.data(), m.data(), v.data(), st, "[model]\n", (dir / "tok.json").string(), 2);
  EXPECT_EQ(resolve_checkpoint(dir.string()), ck);
  const CheckpointData d = load_checkpoint(ck, layout);
  // Padding between tensors is not stored: compare tensor by tensor.
  for (const auto& t : layout.tensors())
    for (size_t i = 0; i < t.numel; ++i) {
      ASSERT_EQ(d.params[t.offset + i], p[t.offset + i]) << t.name;
      ASSERT_EQ(d.m[t.offset + i], m[t.offset + i]) << t.name;
      ASSERT_EQ(d.v[t.offset + i], v[t.offset + i]) << t.name;
    }
  EXPECT_EQ(d.state.step, 42);
  EXPECT_EQ(d.state.tokens_seen, 4242);
  EXPECT_DOUBLE_EQ(d.state.best_val_loss, 1.5);
  EXPECT_EQ(d.config_toml, "[model]\n");
  EXPECT_TRUE(fs::exists(d.tokenizer_path));
}

// The precision's own state (fp8 scales and amax histories, Backend::precision_state) is saved
// bit for bit, checksummed like the other files, and absent when the run has none.
TEST(Checkpoint, PrecisionStateRoundTripsExactly) {
  const ParamLayout layout(tiny_config());
  const attn::testing::TempDir tmp("ckprec");
  const fs::path& dir = tmp.path;
  const auto p = random_buffer(layout.total(), 11);
  std::vector<float> state = random_buffer(3 + 24 * 19, 12);
  state[5] = 1e-30f, state[6] = 3.0e38f, state[7] = 0.0f, state[8] = -0.0f;  // extremes survive too
  TrainState st;
  st.step = 7;
  const std::string ck = save_checkpoint(dir.string(), layout, p.data(), p.data(), p.data(), st, "", "", 2, state);
  EXPECT_TRUE(fs::exists(fs::path(ck) / "precision.safetensors"));
  const CheckpointData d = load_checkpoint(ck, layout);
  ASSERT_EQ(d.precision_state.size(), state.size());
  for (size_t i = 0; i < state.size(); ++i)
    ASSERT_EQ(std::memcmp(&d.precision_state[i], &state[i], sizeof(float)), 0) << i;
  // A flipped byte is caught by the checksum.
  {
    std::fstream f(fs::path(ck) / "precision.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x7f');
  }
  EXPECT_THROW(load_checkpoint(ck, layout), Error);
  // No state: no file, an empty vector.
  st.step = 8;
  const std::string plain = save_checkpoint(dir.string(), layout, p.data(), p.data(), p.data(), st, "", "", 2);
  EXPECT_FALSE(fs::exists(fs::path(plain) / "precision.safetensors"));
  EXPECT_TRUE(load_checkpoint(plain, layout).precision_state.empty());
}

TEST(Checkpoint, KeepsNewestAndSurvivesTornWrite) {
  const ParamLayout layout(tiny_config());
  const attn::testing::TempDir tmp("ckkeep");
  const fs::path& dir = tmp.path;
  const auto p = random_buffer(layout.total(), 7);
  TrainState st;
  for (int s : {10, 20, 30}) {
    st.step = s;
    save_checkpoint(dir.string(), layout, p.data(), p.data(), p.data(), st, "", "", 2);
  }
  EXPECT_FALSE(fs::exists(dir / "checkpoints" / "step_000010"));
  EXPECT_TRUE(fs::exists(dir / "checkpoints" / "step_000020"));
  // A crash mid-save leaves a .tmp directory behind: the latest good checkpoint is still used.
  fs::create_directories(dir / "checkpoints" / "step_000040.tmp");
  std::ofstream(dir / "checkpoints" / "step_000040.tmp" / "model.safetensors") << "torn";
  EXPECT_EQ(load_checkpoint(resolve_checkpoint(dir.string()), layout).state.step, 30);
}

TEST(Checkpoint, ShapeMismatchNamesTensor) {
  const ParamLayout layout(tiny_config());
  const attn::testing::TempDir tmp("ckshape");
  const fs::path& dir = tmp.path;
  const auto p = random_buffer(layout.total(), 8);
  const std::string ck = save_checkpoint(dir.string(), layout, p.data(), nullptr, nullptr, TrainState{}, "", "", 1);
  GPTConfig other = tiny_config();
  other.n_embd = 32;
  try {
    load_checkpoint(ck, ParamLayout(other));
    FAIL() << "shape mismatch accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("wte"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[64, 24]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[64, 32]"), std::string::npos) << msg;
  }
  EXPECT_THROW(resolve_checkpoint((dir / "nothing").string()), Error);
}

// A full disk (ENOSPC, /dev/full) or a file-size limit (EFBIG) is named as such by every writer.
TEST(Checkpoint, DiskFullWritesSayDiskFull) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  const std::string want = "writing '/dev/full' failed (disk full or file-size limit: No space left on device)";
  EXPECT_EQ(attn::testing::error_of([] { write_text_file("/dev/full", std::string(100000, 'x')); }), want);
  const std::vector<float> data(1000, 1.0f);
  EXPECT_EQ(attn::testing::error_of([&] {
              write_safetensors("/dev/full", {{"w", {1000}, data.data()}}, {});
            }),
            want);
}

TEST(Schedule, WarmupCosineAndFloor) {
  const LrSchedule s{1e-3, 1e-4, 10, 110, true};
  EXPECT_NEAR(s(0), 1e-3 / 11, 1e-12);
  EXPECT_NEAR(s(10), 1e-3, 1e-12);
  EXPECT_NEAR(s(60), 1e-4 + 0.5 * (1e-3 - 1e-4), 1e-12);
  EXPECT_NEAR(s(110), 1e-4, 1e-12);
  EXPECT_NEAR(s(500), 1e-4, 1e-12);
  for (int i = 11; i < 110; ++i) EXPECT_LT(s(i), s(i - 1));
}
