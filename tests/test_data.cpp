// Tests of the data layer's files and batches: token shards (round trip and every
// kind of corruption), the DataLoader (determinism, shifted targets, rank
// disjointness, windows across shards) and prepare_dataset end to end.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "core/error.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "test_support.h"

namespace attn {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

void write_bytes(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Expects `f` to throw attn::Error whose message contains every fragment.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> fragments) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    for (const auto& frag : fragments)
      EXPECT_NE(std::string(e.what()).find(frag), std::string::npos) << "'" << frag << "' not in: " << e.what();
  }
}

std::vector<int32_t> iota_tokens(int64_t n, int32_t first = 0) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

// ---- shards ----------------------------------------------------------------------
TEST(Shard, RoundTripUint16) {
  TempDir dir;
  const std::vector<int32_t> tokens = {0, 1, 64, 7, 11, 3};
  write_shard(dir.file("s.bin"), tokens, 65);
  EXPECT_FALSE(fs::exists(dir.file("s.bin.tmp")));
  EXPECT_EQ(fs::file_size(dir.file("s.bin")), 64u + 2 * tokens.size());
  const Shard s(dir.file("s.bin"));
  EXPECT_EQ(s.size(), 6);
  EXPECT_EQ(s.vocab_size(), 65);
  for (size_t i = 0; i < tokens.size(); ++i) EXPECT_EQ(s.token(i), tokens[i]);
  std::vector<int32_t> out(3);
  s.copy(2, 3, out.data());
  EXPECT_EQ(out, (std::vector<int32_t>{64, 7, 11}));
  EXPECT_THROW(s.copy(4, 3, out.data()), Error);
  EXPECT_THROW(s.token(6), Error);
}

TEST(Shard, RoundTripUint32AndEmpty) {
  TempDir dir;
  const std::vector<int32_t> tokens = {0, 65535, 65536, 69999, 12};
  write_shard(dir.file("big.bin"), tokens, 70000);
  EXPECT_EQ(fs::file_size(dir.file("big.bin")), 64u + 4 * tokens.size());
  const Shard s(dir.file("big.bin"));
  std::vector<int32_t> out(tokens.size());
  s.copy(0, s.size(), out.data());
  EXPECT_EQ(out, tokens);
  write_shard(dir.file("empty.bin"), {}, 10);
  EXPECT_EQ(Shard(dir.file("empty.bin")).size(), 0);
  expect_error([&] { write_shard(dir.file("bad.bin"), std::vector<int32_t>{3, 10}, 10); }, {"bad.bin", "token 10"});
}

TEST(Shard, MovedShardKeepsItsMapping) {
  TempDir dir;
  write_shard(dir.file("s.bin"), iota_tokens(100), 100);
  Shard a(dir.file("s.bin"));
  Shard b(std::move(a));
  EXPECT_EQ(b.token(99), 99);
  std::vector<Shard> many;
  for (int i = 0; i < 20; ++i) many.emplace_back(dir.file("s.bin"));  // reallocations move shards
  EXPECT_EQ(many.front().token(42), 42);
}

class ShardCorruption : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("victim_000.bin");
    write_shard(path_, iota_tokens(1000, 0), 65536);
    bytes_ = read_bytes(path_);
  }
  void rewrite(const std::string& bytes) { write_bytes(path_, bytes); }
  TempDir dir_;
  std::string path_, bytes_;
};

TEST_F(ShardCorruption, Truncated) {
  rewrite(bytes_.substr(0, bytes_.size() - 10));
  expect_error([&] { Shard s(path_); }, {path_, "truncated (expected 2064 bytes, found 2054)"});
  rewrite(bytes_.substr(0, 20));
  expect_error([&] { Shard s(path_); }, {path_, "truncated"});
}

TEST_F(ShardCorruption, TrailingBytes) {
  rewrite(bytes_ + "xx");
  expect_error([&] { Shard s(path_); }, {path_, "trailing"});
}

TEST_F(ShardCorruption, BadMagic) {
  std::string b = bytes_;
  b[0] = 'X';
  rewrite(b);
  expect_error([&] { Shard s(path_); }, {path_, "bad magic"});
}

TEST_F(ShardCorruption, BadVersionAndDtype) {
  std::string b = bytes_;
  b[8] = 2;
  rewrite(b);
  expect_error([&] { Shard s(path_); }, {path_, "version 2"});
  b = bytes_;
  b[12] = 7;
  rewrite(b);
  expect_error([&] { Shard s(path_); }, {path_, "dtype 7"});
}

TEST_F(ShardCorruption, CorruptChecksum) {
  std::string b = bytes_;
  b[64 + 2 * 500] ^= 0x01;  // flip one bit of token 500
  rewrite(b);
  expect_error([&] { Shard s(path_); }, {path_, "checksum mismatch"});
}

TEST_F(ShardCorruption, TokenNotBelowVocab) {
  // Same token bytes (the checksum still matches) but a header vocab of 900.
  std::string b = bytes_;
  const uint32_t vocab = 900;
  std::memcpy(&b[24], &vocab, 4);
  rewrite(b);
  expect_error([&] { Shard s(path_); }, {path_, "token 900 at position 900 is >= vocab size 900"});
}

TEST_F(ShardCorruption, MissingFile) {
  expect_error([&] { Shard s(dir_.file("nope.bin")); }, {dir_.file("nope.bin")});
}

// ---- loader ------------------------------------------------------------------------
// A stream whose token at position p is p (vocab 65536 > length), over several shards
// of uneven sizes, so a token's value tells where it came from.
class Loader : public ::testing::Test {
 protected:
  static constexpr int kVocab = 65536;
  void SetUp() override {
    int64_t pos = 0;
    int index = 0;
    for (int64_t n : {3000, 17, 0, 5000, 1983}) {
      paths_.push_back(dir_.file(shard_file_name("train", index++)));
      write_shard(paths_.back(), iota_tokens(n, static_cast<int32_t>(pos)), kVocab);
      pos += n;
    }
    total_ = pos;
  }
  TempDir dir_;
  std::vector<std::string> paths_;
  int64_t total_ = 0;
};

TEST_F(Loader, TargetsAreInputsShiftedAndWindowsAreContiguous) {
  const DataLoader loader(paths_, kVocab);
  EXPECT_EQ(loader.num_tokens(), total_);
  const int B = 16, T = 64;
  std::vector<int32_t> x(B * T), y(B * T);
  for (int step = 0; step < 50; ++step) {
    loader.batch(1234, step, 0, B, T, x.data(), y.data());
    for (int b = 0; b < B; ++b) {
      const int32_t start = x[b * T];
      ASSERT_GE(start, 0);
      ASSERT_LE(start + T, total_ - 1);
      for (int t = 0; t < T; ++t) {
        ASSERT_EQ(x[b * T + t], start + t);  // consecutive stream positions, across shards too
        ASSERT_EQ(y[b * T + t], start + t + 1);
      }
    }
  }
  // A window across every shard boundary (the 17-token and the empty shard too).
  const int Tbig = static_cast<int>(total_) - 1;  // a single possible window: the whole stream
  std::vector<int32_t> xb(Tbig), yb(Tbig);
  loader.batch(5, 0, 0, 1, Tbig, xb.data(), yb.data());
  EXPECT_EQ(xb, iota_tokens(Tbig, 0));
  EXPECT_EQ(yb, iota_tokens(Tbig, 1));
}

TEST_F(Loader, SameArgumentsGiveTheSameBatch) {
  const DataLoader a(paths_, kVocab), b(paths_, kVocab);
  const int B = 8, T = 32;
  std::vector<int32_t> x1(B * T), y1(B * T), x2(B * T), y2(B * T);
  a.batch(42, 7, 1, B, T, x1.data(), y1.data());
  b.batch(42, 7, 1, B, T, x2.data(), y2.data());
  EXPECT_EQ(x1, x2);
  EXPECT_EQ(y1, y2);
  a.batch(42, 8, 1, B, T, x2.data(), y2.data());
  EXPECT_NE(x1, x2) << "a different step must give a different batch";
  a.batch(42, 7, 2, B, T, x2.data(), y2.data());
  EXPECT_NE(x1, x2) << "a different micro step must give a different batch";
  a.batch(43, 7, 1, B, T, x2.data(), y2.data());
  EXPECT_NE(x1, x2) << "a different seed must give a different batch";
  // Rows differ from each other.
  std::set<int32_t> starts;
  for (int r = 0; r < B; ++r) starts.insert(x1[r * T]);
  EXPECT_GT(starts.size(), 1u);
}

TEST_F(Loader, RanksReadDisjointHalves) {
  const DataLoader r0(paths_, kVocab, 0, 2), r1(paths_, kVocab, 1, 2);
  const int64_t half = total_ / 2;
  EXPECT_EQ(r0.num_tokens(), half);
  EXPECT_EQ(r1.num_tokens(), half);
  const int B = 8, T = 100;
  std::vector<int32_t> x(B * T), y(B * T);
  int32_t min0 = INT32_MAX, max0 = 0, min1 = INT32_MAX, max1 = 0;
  for (int step = 0; step < 300; ++step) {
    r0.batch(9, step, 0, B, T, x.data(), y.data());
    for (int i = 0; i < B * T; ++i) {
      min0 = std::min({min0, x[i], y[i]});
      max0 = std::max({max0, x[i], y[i]});
    }
    r1.batch(9, step, 0, B, T, x.data(), y.data());
    for (int i = 0; i < B * T; ++i) {
      min1 = std::min({min1, x[i], y[i]});
      max1 = std::max({max1, x[i], y[i]});
    }
  }
  EXPECT_GE(min0, 0);
  EXPECT_LT(max0, half);
  EXPECT_GE(min1, half);
  EXPECT_LT(max1, 2 * half);
  // Both parts are actually covered end to end (windows reach the edges).
  EXPECT_LT(min0, 50);
  EXPECT_GT(max0, half - 50);
  EXPECT_LT(min1, half + 50);
  EXPECT_GT(max1, 2 * half - 50);
}

TEST_F(Loader, ErrorsNameTheSplitAndSizes) {
  const DataLoader loader(paths_, kVocab, 3, 4);  // 10000 / 4 = 2500 tokens per rank
  std::vector<int32_t> x(2600), y(2600);
  expect_error([&] { loader.batch(0, 0, 0, 1, 2500, x.data(), y.data()); },
               {"train split", "2500 tokens", "2501"});
  loader.batch(0, 0, 0, 1, 2499, x.data(), y.data());  // exactly one window fits
  EXPECT_EQ(x[0], 3 * 2500);
  expect_error([&] { DataLoader bad(paths_, 100); }, {paths_[0], "vocab size 65536"});
  expect_error([&] { DataLoader bad(paths_, kVocab, 2, 2); }, {"rank 2"});
  expect_error([&] { DataLoader bad({dir_.file("missing_000.bin")}, kVocab); }, {"missing_000.bin"});
}

// ---- prepare and dataset info ----------------------------------------------------
std::vector<int32_t> read_split(const std::vector<std::string>& shards) {
  std::vector<int32_t> all;
  for (const auto& path : shards) {
    const Shard s(path);
    const size_t old = all.size();
    all.resize(old + s.size());
    s.copy(0, s.size(), all.data() + old);
  }
  return all;
}

TEST(Prepare, FolderEndToEnd) {
  TempDir in, out;
  const std::string a = "First document. It has words, words and more words!\n";
  const std::string b = "Second document: café, 日本語, numbers 12345.\n";
  const std::string c = "Third one <|endoftext|> with a fake end-of-text marker.\n";
  write_bytes(in.file("a.txt"), a);
  write_bytes(in.file("sub/b.txt"), b);
  write_bytes(in.file("sub/deeper/c.md"), c);
  write_bytes(in.file("index.dat"), std::string("\0\0\0\x02 binary index", 17));
  write_bytes(in.file("empty.txt"), "");
  fs::create_symlink(in.file("a.txt"), in.file("z_link_to_a.txt"));  // same file: taken once
  std::vector<std::string> log;
  PrepareOptions opt;
  opt.inputs = {in.path.string()};
  opt.out_dir = out.file("ds");
  opt.vocab_size = 300;
  opt.val_fraction = 0.25;
  opt.shard_tokens = 20;  // several shards per split
  const DatasetInfo info = prepare_dataset(opt, [&](const std::string& line) { log.push_back(line); });

  bool logged_binary = false;
  for (const auto& line : log) logged_binary |= line.find("index.dat") != std::string::npos;
  EXPECT_TRUE(logged_binary) << "the skipped binary file must be logged";
  EXPECT_EQ(info.vocab_size, 300);
  EXPECT_EQ(info.eot_id, 299);
  EXPECT_GT(info.train_shards.size(), 1u);
  EXPECT_EQ(fs::path(info.train_shards[0]).filename(), "train_000.bin");
  EXPECT_EQ(fs::path(info.val_shards[0]).filename(), "val_000.bin");

  // Documents in sorted path order, joined by eot; the split is at int(n * 0.75).
  const auto tok = load_tokenizer(info.tokenizer_path);
  std::vector<int32_t> stream = read_split(info.train_shards);
  EXPECT_EQ(static_cast<int64_t>(stream.size()), info.train_tokens);
  const std::vector<int32_t> val = read_split(info.val_shards);
  EXPECT_EQ(static_cast<int64_t>(val.size()), info.val_tokens);
  const int64_t n = info.train_tokens + info.val_tokens;
  EXPECT_EQ(info.train_tokens, static_cast<int64_t>(n * 0.75));
  stream.insert(stream.end(), val.begin(), val.end());
  EXPECT_EQ(std::count(stream.begin(), stream.end(), 299), 2);
  EXPECT_EQ(tok->decode(stream), a + "<|endoftext|>" + b + "<|endoftext|>" + c);

  // meta.json round trip, and the loader reads the prepared splits.
  const DatasetInfo again = load_dataset_info(opt.out_dir);
  EXPECT_EQ(again.train_shards, info.train_shards);
  EXPECT_EQ(again.val_tokens, info.val_tokens);
  const DataLoader loader(info.val_shards, info.vocab_size);
  EXPECT_EQ(loader.num_tokens(), info.val_tokens);

  // Preparing again with fewer shards removes the stale ones; reusing the tokenizer works.
  opt.shard_tokens = 1'000'000;
  opt.tokenizer_path = info.tokenizer_path;
  const DatasetInfo redo = prepare_dataset(opt, nullptr);
  EXPECT_EQ(redo.train_shards.size(), 1u);
  EXPECT_FALSE(fs::exists(out.file("ds/train_001.bin")));
  EXPECT_EQ(redo.train_tokens, info.train_tokens);
}

TEST(Prepare, SingleFileCharMatchesNanoGptSplit) {
  TempDir in, out;
  std::string text;
  for (int i = 0; i < 100; ++i) text += "To be, or not to be: that is the question.\n";
  write_bytes(in.file("input.txt"), text);
  PrepareOptions opt;
  opt.inputs = {in.file("input.txt")};
  opt.out_dir = out.path.string();
  opt.tokenizer = "char";
  const DatasetInfo info = prepare_dataset(opt, nullptr);
  EXPECT_EQ(info.eot_id, -1);
  EXPECT_EQ(info.train_tokens + info.val_tokens, static_cast<int64_t>(text.size()));
  EXPECT_EQ(info.train_tokens, static_cast<int64_t>(text.size() * 0.9));
  auto stream = read_split(info.train_shards);
  const auto val = read_split(info.val_shards);
  stream.insert(stream.end(), val.begin(), val.end());
  EXPECT_EQ(load_tokenizer(info.tokenizer_path)->decode(stream), text);
}

TEST(Prepare, TinyShakespeareCharLikeNanoGpt) {
  const std::string path = "/work/shared/data/tinyshakespeare/input.txt";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not found";
  TempDir out;
  PrepareOptions opt;
  opt.inputs = {path};
  opt.out_dir = out.path.string();
  opt.tokenizer = "char";
  const DatasetInfo info = prepare_dataset(opt, nullptr);
  EXPECT_EQ(info.vocab_size, 65);
  EXPECT_EQ(info.train_tokens, 1003854);
  EXPECT_EQ(info.val_tokens, 111540);
}

TEST(Prepare, FortunesBpe) {
  const std::string path = "/usr/share/games/fortunes";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not found (apt-get install fortunes)";
  TempDir out;
  PrepareOptions opt;
  opt.inputs = {path};
  opt.out_dir = out.path.string();
  opt.vocab_size = 1024;
  int skipped = 0;
  const DatasetInfo info =
      prepare_dataset(opt, [&](const std::string& line) { skipped += line.rfind("skip ", 0) == 0; });
  EXPECT_GT(skipped, 0) << "the .dat index files must be skipped";
  EXPECT_EQ(info.vocab_size, 1024);
  EXPECT_GT(info.train_tokens, 100000);
  EXPECT_GT(info.val_tokens, 10000);
}

TEST(Prepare, BadInputsAreErrors) {
  TempDir in, out;
  write_bytes(in.file("bin/x.dat"), std::string("\0\x01\x02", 3));
  PrepareOptions opt;
  opt.out_dir = out.path.string();
  opt.inputs = {in.file("bin")};
  expect_error([&] { prepare_dataset(opt, nullptr); }, {"no text found in", in.file("bin")});
  opt.inputs = {in.file("does_not_exist")};
  expect_error([&] { prepare_dataset(opt, nullptr); }, {in.file("does_not_exist")});
  write_bytes(in.file("t.txt"), "some text for the split");
  opt.inputs = {in.file("t.txt")};
  opt.val_fraction = 0.0;
  expect_error([&] { prepare_dataset(opt, nullptr); }, {"val_fraction"});
  opt.val_fraction = 0.1;
  opt.tokenizer = "wordpiece";
  expect_error([&] { prepare_dataset(opt, nullptr); }, {"wordpiece", "(expected bpe, char or gpt2)"});
  opt.tokenizer = "char";
  opt.val_split = "head";
  expect_error([&] { prepare_dataset(opt, nullptr); }, {"head", "(expected auto, documents or tail)"});
  opt.val_split = "auto";
  write_bytes(in.file("tiny.txt"), "abc");
  opt.inputs = {in.file("tiny.txt")};
  expect_error([&] { prepare_dataset(opt, nullptr); }, {"too few"});
}

TEST(Prepare, DatasetInfoErrorsSuggestPrepare) {
  TempDir dir;
  expect_error([&] { load_dataset_info(dir.file("nothing")); }, {dir.file("nothing"), "attnlab prepare"});
  expect_error([&] { load_dataset_info(dir.path.string()); }, {"meta.json", "attnlab prepare"});
  write_bytes(dir.file("meta.json"), "{ not json");
  expect_error([&] { load_dataset_info(dir.path.string()); }, {"meta.json", "attnlab prepare"});
}

}  // namespace
}  // namespace attn
