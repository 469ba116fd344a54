// Streaming prepare: the safe cuts of parallel encoding, .jsonl / .gz / .zst inputs, the
// document-level validation split, and shards of a streamed run equal to those of a small
// in-memory run on a prefix of the same inputs.
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "data/bpe_tokenizer.h"
#include "data/char_tokenizer.h"
#include "data/gpt2_tokenizer.h"
#include "data/parallel_encode.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "test_support.h"

namespace attn {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::string random_document(std::mt19937_64& rng, int words) {
  static const char* pieces[] = {"the", "Cat", "sat", " on", "a", "mat", "—", "café", "日本語", "1234", "don't", "  ",
                                 "\n", "\n\n", "\t", "!", "'s", "\u00a0", "🙂", "x", "end.\nNext"};
  std::string s;
  for (int i = 0; i < words; ++i) {
    s += pieces[rng() % std::size(pieces)];
    if (rng() % 3) s += ' ';
  }
  return s;
}

std::vector<int32_t> read_shards(const std::vector<std::string>& paths) {
  std::vector<int32_t> all;
  for (const auto& p : paths) {
    const Shard s(p);
    const size_t old = all.size();
    all.resize(old + static_cast<size_t>(s.size()));
    s.copy(0, s.size(), all.data() + old);
  }
  return all;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_TRUE(f);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}

void write_zst(const std::string& path, const std::string& bytes) {
  std::string out(ZSTD_compressBound(bytes.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), 3);
  ASSERT_FALSE(ZSTD_isError(n));
  std::ofstream(path, std::ios::binary) << out.substr(0, n);
}

// Encoding the two sides of a safe cut separately gives the ids of the whole text, for
// every tokenizer (the claim parallel encoding rests on).
TEST(ParallelEncode, SafeCutsDoNotChangeTheIds) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(fmt::format("seed {}", seed));
  std::mt19937_64 rng(seed);
  std::vector<std::string> corpus;
  for (int i = 0; i < 20; ++i) corpus.push_back(random_document(rng, 300));
  const std::vector<std::string_view> views(corpus.begin(), corpus.end());
  std::vector<std::unique_ptr<Tokenizer>> toks;
  toks.push_back(std::make_unique<BpeTokenizer>(BpeTokenizer::train(views, 400)));
  toks.push_back(std::make_unique<CharTokenizer>(CharTokenizer::train(views)));
  const std::string vocab = testing::shared_data("data/gpt2");
  if (!vocab.empty()) toks.push_back(std::make_unique<Gpt2Tokenizer>(load_gpt2_tokenizer(vocab)));
  for (const auto& tok : toks) {
    for (const std::string& text : corpus) {
      const std::vector<int32_t> whole = tok->encode(text);
      int cuts = 0;
      for (size_t from = 0; from < text.size(); from += 1 + rng() % 64) {
        const size_t cut = next_safe_cut(text, from);
        if (cut >= text.size()) break;
        std::vector<int32_t> joined = tok->encode(std::string_view(text).substr(0, cut));
        const std::vector<int32_t> rest = tok->encode(std::string_view(text).substr(cut));
        joined.insert(joined.end(), rest.begin(), rest.end());
        ASSERT_EQ(joined, whole) << tok->type() << " cut at " << cut;
        ++cuts;
      }
      EXPECT_GT(cuts, 0);
    }
    // Texts long enough to be cut, on 3 threads, equal one encode() each.
    std::string big;
    while (big.size() < 3 * kEncodeChunkBytes) big += corpus[rng() % corpus.size()];
    // The tail starts on a character (a cut inside "—" or "🙂" is not text a tokenizer must take).
    size_t tail_start = 1000;
    while ((static_cast<unsigned char>(big[tail_start]) & 0xC0) == 0x80) ++tail_start;
    const std::string tail = big.substr(tail_start);
    const std::vector<std::string_view> texts = {big, corpus[0], tail};
    const auto ids = encode_in_parallel(*tok, texts, 3);
    for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(ids[i], tok->encode(texts[i])) << tok->type() << " text " << i;
  }
}

struct Corpus {
  std::vector<std::string> docs;
  std::string jsonl(size_t first, size_t last) const {
    std::string s;
    for (size_t i = first; i < last; ++i) s += nlohmann::json({{"id", i}, {"body", docs[i]}}).dump() + "\n";
    return s;
  }
};

Corpus make_corpus(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Corpus c;
  for (int i = 0; i < n; ++i) c.docs.push_back(random_document(rng, 20 + static_cast<int>(rng() % 200)));
  return c;
}

PrepareOptions options(const std::string& input, const std::string& out) {
  PrepareOptions p;
  p.inputs = {input};
  p.out_dir = out;
  p.tokenizer = "char";
  p.jsonl_key = "body";
  p.val_fraction = 0.2;
  p.shard_tokens = 5000;
  p.threads = 3;
  return p;
}

// Streamed in small batches, the full corpus's shards start with exactly the shards of an
// in-memory run (one batch) on its first half; the splits hold whole documents chosen by hash.
TEST(PrepareStream, ShardsEqualAnInMemoryRunOnAPrefix) {
  const Corpus c = make_corpus(600, std::random_device{}());
  TempDir dir("prepstream");
  std::ofstream(dir.file("all.jsonl"), std::ios::binary) << c.jsonl(0, c.docs.size());
  std::ofstream(dir.file("half.jsonl"), std::ios::binary) << c.jsonl(0, c.docs.size() / 2);
  // Both runs use the tokenizer of the full corpus (a char vocabulary depends on the text).
  PrepareOptions full = options(dir.file("all.jsonl"), dir.file("full"));
  full.batch_bytes = 4096;  // many batches
  const DatasetInfo a = prepare_dataset(full, nullptr);
  PrepareOptions half = options(dir.file("half.jsonl"), dir.file("half"));
  half.tokenizer_path = a.tokenizer_path;
  const DatasetInfo b = prepare_dataset(half, nullptr);

  for (const auto& [split_a, split_b] : {std::pair{a.train_shards, b.train_shards}, std::pair{a.val_shards, b.val_shards}}) {
    ASSERT_GE(split_b.size(), 2u);
    for (size_t k = 0; k + 1 < split_b.size(); ++k)  // every full shard of the prefix run
      EXPECT_EQ(file_bytes(split_a[k]), file_bytes(split_b[k])) << split_b[k];
    const auto ta = read_shards(split_a), tb = read_shards(split_b);
    ASSERT_LE(tb.size(), ta.size());
    EXPECT_TRUE(std::equal(tb.begin(), tb.end(), ta.begin()));
  }

  // The val split is the documents the hash chose, whole, joined in order (char: no eot).
  const auto tok = load_tokenizer(a.tokenizer_path);
  int val_docs = 0;
  const std::string val_decoded = tok->decode(read_shards(a.val_shards));
  const std::string train_decoded = tok->decode(read_shards(a.train_shards));
  EXPECT_EQ(val_decoded.size() + train_decoded.size(), [&] {
    size_t n = 0;
    for (const auto& d : c.docs) n += d.size();
    return n;
  }());
  for (const auto& d : c.docs) val_docs += val_decoded.find(d) != std::string::npos;
  EXPECT_GT(val_docs, 60);  // ~20% of 600
  EXPECT_LT(val_docs, 190);
}

// .jsonl, .jsonl.gz and .jsonl.zst give the same dataset; plain text files too.
TEST(PrepareStream, CompressedInputsEqualPlain) {
  const Corpus c = make_corpus(200, std::random_device{}());
  TempDir dir("prepzip");
  const std::string text = c.jsonl(0, c.docs.size());
  std::ofstream(dir.file("d.jsonl"), std::ios::binary) << text;
  write_gz(dir.file("d.jsonl.gz"), text);
  write_zst(dir.file("d.jsonl.zst"), text);
  std::vector<std::string> shards;
  for (const char* name : {"d.jsonl", "d.jsonl.gz", "d.jsonl.zst"}) {
    const DatasetInfo info = prepare_dataset(options(dir.file(name), dir.file(std::string("out_") + name)), nullptr);
    std::string all;
    for (const auto& s : info.train_shards) all += file_bytes(s);
    for (const auto& s : info.val_shards) all += file_bytes(s);
    shards.push_back(all);
  }
  EXPECT_EQ(shards[0], shards[1]);
  EXPECT_EQ(shards[0], shards[2]);

  // A plain file compressed reads as the same single document.
  std::ofstream(dir.file("plain.txt"), std::ios::binary) << c.docs[0] + c.docs[1];
  write_gz(dir.file("plain.txt.gz"), c.docs[0] + c.docs[1]);
  const auto p1 = prepare_dataset(options(dir.file("plain.txt"), dir.file("p1")), nullptr);
  const auto p2 = prepare_dataset(options(dir.file("plain.txt.gz"), dir.file("p2")), nullptr);
  EXPECT_EQ(read_shards(p1.train_shards), read_shards(p2.train_shards));
  EXPECT_EQ(read_shards(p1.val_shards), read_shards(p2.val_shards));
}

TEST(PrepareStream, BadInputsAreErrorsAndLeaveNoDataset) {
  TempDir dir("prepbad");
  std::ofstream(dir.file("bad.jsonl")) << "{\"body\": \"fine\"}\n{not json}\n";
  std::string err = testing::error_of([&] { prepare_dataset(options(dir.file("bad.jsonl"), dir.file("o")), nullptr); });
  EXPECT_NE(err.find("bad.jsonl line 2"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir.file("o/meta.json")));
  std::ofstream(dir.file("key.jsonl")) << "{\"text\": \"no body\"}\n";
  err = testing::error_of([&] { prepare_dataset(options(dir.file("key.jsonl"), dir.file("o")), nullptr); });
  EXPECT_NE(err.find("no string field \"body\""), std::string::npos) << err;
  std::ofstream(dir.file("bad.txt.gz"), std::ios::binary) << "\x1f\x8b\x08\x00garbage that is not deflate";
  err = testing::error_of([&] { prepare_dataset(options(dir.file("bad.txt.gz"), dir.file("o")), nullptr); });
  EXPECT_NE(err.find("bad.txt.gz"), std::string::npos) << err;
  std::ofstream(dir.file("bad.txt.zst"), std::ios::binary) << "not zstd at all";
  err = testing::error_of([&] { prepare_dataset(options(dir.file("bad.txt.zst"), dir.file("o")), nullptr); });
  EXPECT_NE(err.find("zstd"), std::string::npos) << err;
  PrepareOptions few = options(dir.file("key.jsonl"), dir.file("o"));
  few.jsonl_key = "text";
  few.val_split = "documents";
  err = testing::error_of([&] { prepare_dataset(few, nullptr); });
  EXPECT_NE(err.find("too few"), std::string::npos) << err;
  EXPECT_TRUE(fs::is_empty(dir.file("o")) || !fs::exists(dir.file("o/train_000.bin")));
}

// GPT-2 tokens from prepare: the same ids as encode() of the documents joined by <|endoftext|>.
TEST(PrepareStream, Gpt2TokensOfADocumentSplit) {
  const std::string vocab = testing::shared_data("data/gpt2");
  if (vocab.empty()) GTEST_SKIP() << "GPT-2 vocabulary not found (../shared/data/gpt2)";
  const Corpus c = make_corpus(100, std::random_device{}());
  TempDir dir("prepgpt2");
  std::ofstream(dir.file("d.jsonl"), std::ios::binary) << c.jsonl(0, c.docs.size());
  PrepareOptions p = options(dir.file("d.jsonl"), dir.file("o"));
  p.tokenizer = "gpt2";
  p.gpt2_vocab = vocab;
  p.val_fraction = 0.3;
  const DatasetInfo info = prepare_dataset(p, nullptr);
  EXPECT_EQ(info.vocab_size, 50257);
  const Gpt2Tokenizer tok = load_gpt2_tokenizer(vocab);
  const auto train_ids = read_shards(info.train_shards), val_ids = read_shards(info.val_shards);
  const std::string train_decoded = tok.decode(train_ids), val_decoded = tok.decode(val_ids);
  std::vector<int32_t> want_train, want_val;
  for (const auto& d : c.docs) {
    const bool in_val = val_decoded.find(d) != std::string::npos && train_decoded.find(d) == std::string::npos;
    auto& want = in_val ? want_val : want_train;
    if (!want.empty()) want.push_back(50256);
    const auto ids = tok.encode(d);
    want.insert(want.end(), ids.begin(), ids.end());
  }
  EXPECT_EQ(train_ids, want_train);
  EXPECT_EQ(val_ids, want_val);
}

}  // namespace
}  // namespace attn
