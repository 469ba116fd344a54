// Tests of the data layer's tokenizers: the GPT-2-like pre-tokenizer, byte-level BPE
// (training against a brute-force reference, exact round trips on arbitrary bytes,
// save/load) and the character-level tokenizer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "core/error.h"
#include "data/bpe_tokenizer.h"
#include "data/char_tokenizer.h"
#include "data/pretokenizer.h"
#include "data/tokenizer.h"
#include "test_support.h"

namespace attn {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Fresh randomness every run; the seed is printed on failure.
uint64_t fresh_seed() { return std::random_device{}() * 0x100000001ull ^ std::random_device{}(); }

std::string random_bytes(std::mt19937_64& rng, size_t max_len) {
  std::string s(rng() % (max_len + 1), '\0');
  for (char& c : s) {
    switch (rng() % 6) {
      case 0: c = '\0'; break;
      case 1: c = static_cast<char>(0xFF); break;
      case 2: c = static_cast<char>(0x80 + rng() % 64); break;  // stray continuation bytes
      case 3: c = " \n\t'"[rng() % 4]; break;
      default: c = static_cast<char>(rng() % 256);
    }
  }
  return s;
}

std::string english_like_corpus() {
  const char* words[] = {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "it's", "they're",
                         "Hello", "world", "café", "naïve", "日本語", "テキスト", "🙂", "1234", "3.14", "!!",
                         "don't", "we'll", "  ", "\n", "\n\n", "tokenizer", "tokenization", "token"};
  std::mt19937_64 rng(7);
  std::string text;
  for (int i = 0; i < 20000; ++i) {
    text += words[rng() % std::size(words)];
    text += (rng() % 10 == 0) ? "\n" : " ";
  }
  return text;
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  for_each_word(text, [&](std::string_view w) { words.emplace_back(w); });
  return words;
}

// Brute-force BPE trainer: recounts every pair before each merge. Same tie-break
// as BpeTokenizer::train (highest count, then smallest (left, right) pair).
std::vector<std::pair<int32_t, int32_t>> reference_bpe_merges(const std::string& text, int num_merges) {
  std::map<std::string, int64_t> freq;
  for (const auto& w : split_words(text)) ++freq[w];
  std::vector<std::pair<std::vector<int32_t>, int64_t>> words;
  for (const auto& [w, c] : freq) words.push_back({std::vector<int32_t>(w.begin(), w.end()), c});
  for (auto& [s, c] : words)
    for (auto& x : s) x &= 0xFF;
  std::vector<std::pair<int32_t, int32_t>> merges;
  while (static_cast<int>(merges.size()) < num_merges) {
    std::map<std::pair<int32_t, int32_t>, int64_t> counts;
    for (const auto& [s, c] : words)
      for (size_t i = 0; i + 1 < s.size(); ++i) counts[{s[i], s[i + 1]}] += c;
    if (counts.empty()) break;
    auto best = counts.begin();
    for (auto it = counts.begin(); it != counts.end(); ++it)
      if (it->second > best->second) best = it;  // map order: the smallest pair wins ties
    const int32_t merged = 256 + static_cast<int32_t>(merges.size());
    merges.push_back(best->first);
    for (auto& [s, c] : words) {
      std::vector<int32_t> out;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == best->first.first && s[i + 1] == best->first.second) {
          out.push_back(merged);
          ++i;
        } else {
          out.push_back(s[i]);
        }
      }
      s = std::move(out);
    }
  }
  return merges;
}

// ---- pre-tokenizer -----------------------------------------------------------------
TEST(TokenizerPretokenize, SplitsLikeGpt2) {
  EXPECT_EQ(split_words("Hello world's  end\n"),
            (std::vector<std::string>{"Hello", " world", "'s", " ", " end", "\n"}));
  EXPECT_EQ(split_words("I'll pay $100.50, ok?\n\n  Yes"),
            (std::vector<std::string>{"I", "'ll", " pay", " $", "100", ".", "50", ",", " ok", "?", "\n\n ", " Yes"}));
  EXPECT_EQ(split_words("caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC"),
            (std::vector<std::string>{"caf\xC3\xA9", " \xE6\x97\xA5\xE6\x9C\xAC"}));
  EXPECT_EQ(split_words("a\n b"), (std::vector<std::string>{"a", "\n", " b"}));
  EXPECT_EQ(split_words("x   "), (std::vector<std::string>{"x", "   "}));
}

TEST(TokenizerPretokenize, PartitionsRandomBytes) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 500; ++i) {
    const std::string s = random_bytes(rng, 200);
    std::string joined;
    for (const auto& w : split_words(s)) {
      ASSERT_FALSE(w.empty());
      joined += w;
    }
    ASSERT_EQ(joined, s);
  }
}

// ---- BPE ---------------------------------------------------------------------------------
class TokenizerBpe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    corpus_ = new std::string(english_like_corpus());
    tok_ = new BpeTokenizer(BpeTokenizer::train({*corpus_}, 400));
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete corpus_;
  }
  static std::string* corpus_;
  static BpeTokenizer* tok_;
};
std::string* TokenizerBpe::corpus_ = nullptr;
BpeTokenizer* TokenizerBpe::tok_ = nullptr;

TEST_F(TokenizerBpe, TrainGivesRequestedVocabSize) {
  EXPECT_EQ(tok_->type(), "bpe");
  EXPECT_EQ(tok_->vocab_size(), 400);
  EXPECT_EQ(tok_->eot_id(), 399);
  EXPECT_EQ(tok_->merges().size(), 400u - 257u);
  EXPECT_EQ(tok_->decode(std::vector<int32_t>{tok_->eot_id()}), "<|endoftext|>");
}

TEST_F(TokenizerBpe, TrainMatchesBruteForceReference) {
  // Small corpus with many ties and overlapping pairs ("aaaa", "abab").
  const std::string text = english_like_corpus().substr(0, 6000) + " aaaa aaa abab ababab aa a b ba bab";
  const auto fast = BpeTokenizer::train({text}, 257 + 120).merges();
  const auto slow = reference_bpe_merges(text, 120);
  ASSERT_EQ(fast.size(), slow.size());
  for (size_t k = 0; k < fast.size(); ++k) ASSERT_EQ(fast[k], slow[k]) << "merge " << k;
}

TEST_F(TokenizerBpe, TrainMatchesBruteForceOnRepetitiveRandomText) {
  // Words over a 3-letter alphabet: runs like "aaaa" and "abcabc" stress the
  // incremental pair-count updates (overlapping and adjacent merges).
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::string text;
  for (int i = 0; i < 4000; ++i) {
    const int len = 1 + static_cast<int>(rng() % 14);
    const int period = 1 + static_cast<int>(rng() % 3);
    std::string unit;
    for (int k = 0; k < period; ++k) unit += "abc"[rng() % 3];
    text += ' ';
    for (int k = 0; k < len; ++k) text += (rng() % 8 == 0) ? "abc"[rng() % 3] : unit[k % period];
  }
  const auto fast = BpeTokenizer::train({text}, 257 + 200).merges();
  const auto slow = reference_bpe_merges(text, 200);
  ASSERT_EQ(fast.size(), slow.size());
  for (size_t k = 0; k < fast.size(); ++k) ASSERT_EQ(fast[k], slow[k]) << "merge " << k;
}

TEST_F(TokenizerBpe, TrainStopsWhenNothingIsLeftToMerge) {
  const auto tok = BpeTokenizer::train({"ab ab"}, 1000);
  EXPECT_EQ(tok.merges().size(), 2u);  // "ab", then " ab"
  EXPECT_EQ(tok.vocab_size(), 259);
  EXPECT_THROW(BpeTokenizer::train({"ab"}, 256), Error);
}

TEST_F(TokenizerBpe, RoundTripsRandomBytes) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 300; ++i) {
    const std::string s = random_bytes(rng, 300);
    const auto ids = tok_->encode(s);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok_->eot_id());
    ASSERT_EQ(tok_->decode(ids), s);
  }
  const std::string nul_and_ff("a\0b\xFF\xFE\xC3(\xED\xA0\x80\xF4\x90\x80\x80 \0\0", 17);
  EXPECT_EQ(tok_->decode(tok_->encode(nul_and_ff)), nul_and_ff);
}

TEST_F(TokenizerBpe, RoundTripsUtf8Text) {
  const std::string texts[] = {
      "Ça va? Über naïve café, señor. Ærøskøbing.",
      "日本語のテキストと中文文本，한국어 텍스트。",
      "emoji 🙂👍🏽👨‍👩‍👧 flags 🇫🇷 and math ∑∫√∞",
      *corpus_,
  };
  for (const auto& t : texts) EXPECT_EQ(tok_->decode(tok_->encode(t)), t);
}

TEST_F(TokenizerBpe, EncodeMatchesApplyingMergesInOrder) {
  // Reference encoder: each merge in rank order, left to right, within each word.
  const auto& merges = tok_->merges();
  auto reference_encode = [&](std::string_view text) {
    std::vector<int32_t> ids;
    for (const auto& word : split_words(text)) {
      std::vector<int32_t> s;
      for (unsigned char c : word) s.push_back(c);
      for (size_t k = 0; k < merges.size(); ++k) {
        std::vector<int32_t> out;
        for (size_t i = 0; i < s.size(); ++i) {
          if (i + 1 < s.size() && s[i] == merges[k].first && s[i + 1] == merges[k].second) {
            out.push_back(256 + static_cast<int32_t>(k));
            ++i;
          } else {
            out.push_back(s[i]);
          }
        }
        s = std::move(out);
      }
      ids.insert(ids.end(), s.begin(), s.end());
    }
    return ids;
  };
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const std::string sample = corpus_->substr(rng() % 50000, 3000);
  EXPECT_EQ(tok_->encode(sample), reference_encode(sample));
  EXPECT_EQ(tok_->encode(" aaaaaaa abababab tokenizationtokenization"),
            reference_encode(" aaaaaaa abababab tokenizationtokenization"));
  for (int i = 0; i < 50; ++i) {
    const std::string s = random_bytes(rng, 100);
    ASSERT_EQ(tok_->encode(s), reference_encode(s));
  }
}

TEST_F(TokenizerBpe, EndOfTextInInputIsOrdinaryBytes) {
  const auto ids = tok_->encode("a<|endoftext|>b");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok_->eot_id()), 0);
  EXPECT_EQ(tok_->decode(ids), "a<|endoftext|>b");
}

TEST_F(TokenizerBpe, MergeHeavyTextCompresses) {
  const std::string text = "the quick brown fox jumps over the lazy dog ";
  std::string repeated;
  for (int i = 0; i < 50; ++i) repeated += text;
  const auto ids = tok_->encode(repeated);
  EXPECT_LT(ids.size() * 3, repeated.size()) << ids.size() << " tokens for " << repeated.size() << " bytes";
  // Each frequent training word is a single token.
  EXPECT_EQ(tok_->encode(" quick").size(), 1u);
  // Encoding is cached per word; a second encode must give the same ids.
  EXPECT_EQ(tok_->encode(repeated), ids);
}

TEST_F(TokenizerBpe, LongWordEncodesAndRoundTrips) {
  std::string word;
  for (int i = 0; i < 100000; ++i) word += "tokenization"[i % 12];
  const auto ids = tok_->encode(word);
  EXPECT_LT(ids.size(), word.size() / 2);
  EXPECT_EQ(tok_->decode(ids), word);
}

TEST_F(TokenizerBpe, DecodeRejectsOutOfRangeIds) {
  EXPECT_THROW(tok_->decode(std::vector<int32_t>{tok_->vocab_size()}), Error);
  EXPECT_THROW(tok_->decode(std::vector<int32_t>{-1}), Error);
}

TEST_F(TokenizerBpe, SaveLoadGivesIdenticalEncodings) {
  TempDir dir;
  const std::string path = dir.file("tokenizer.json");
  tok_->save(path);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  const auto loaded = load_tokenizer(path);
  EXPECT_EQ(loaded->type(), "bpe");
  EXPECT_EQ(loaded->vocab_size(), tok_->vocab_size());
  EXPECT_EQ(loaded->eot_id(), tok_->eot_id());
  const std::string text = corpus_->substr(0, 20000) + std::string("\0\xFF\xC3", 3);
  EXPECT_EQ(loaded->encode(text), tok_->encode(text));
}

TEST(TokenizerLoad, BadFilesNameTheFile) {
  TempDir dir;
  auto expect_error_naming = [](const std::string& path, const std::string& fragment) {
    try {
      load_tokenizer(path);
      ADD_FAILURE() << "no error for " << path;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error_naming(dir.file("missing.json"), "does not exist");
  write_text(dir.file("corrupt.json"), "{\"type\": \"bpe\", \"vers");
  expect_error_naming(dir.file("corrupt.json"), "JSON");
  write_text(dir.file("unknown.json"), R"({"type": "wordpiece", "version": 1})");
  expect_error_naming(dir.file("unknown.json"), "wordpiece");
  write_text(dir.file("version.json"), R"({"type": "bpe", "version": 9, "merges": []})");
  expect_error_naming(dir.file("version.json"), "version 9");
  write_text(dir.file("bad_merge.json"), R"({"type": "bpe", "version": 1, "merges": [[1, 2], [300, 1]]})");
  expect_error_naming(dir.file("bad_merge.json"), "merge 1");
  write_text(dir.file("bad_char.json"), R"({"type": "char", "version": 1, "code_points": [98, 97]})");
  expect_error_naming(dir.file("bad_char.json"), "sorted");
}

// ---- char ----------------------------------------------------------------------------------
TEST(TokenizerChar, VocabIsSortedCodePoints) {
  const auto tok = CharTokenizer::train({"hello", "wörld 🙂"});
  EXPECT_EQ(tok.type(), "char");
  EXPECT_EQ(tok.eot_id(), -1);
  EXPECT_EQ(tok.code_points(),
            (std::vector<char32_t>{U' ', U'd', U'e', U'h', U'l', U'o', U'r', U'w', U'ö', U'🙂'}));
  EXPECT_EQ(tok.encode("hello"), (std::vector<int32_t>{3, 2, 4, 4, 5}));
}

TEST(TokenizerChar, RoundTripAndSaveLoad) {
  using namespace std::string_literals;
  const std::string text = "Ça va? 日本語 🙂 and bytes \xFF\xC3( \0 done"s;
  ASSERT_EQ(text.back(), 'e');
  const auto tok = CharTokenizer::train({text});
  const auto ids = tok.encode(text);
  EXPECT_EQ(tok.decode(ids), text);
  TempDir dir;
  tok.save(dir.file("tok.json"));
  const auto loaded = load_tokenizer(dir.file("tok.json"));
  EXPECT_EQ(loaded->type(), "char");
  EXPECT_EQ(loaded->encode(text), ids);
  EXPECT_THROW(tok.decode(std::vector<int32_t>{tok.vocab_size()}), Error);
}

TEST(TokenizerChar, RoundTripsRandomBytes) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::vector<std::string> docs;
  for (int i = 0; i < 200; ++i) docs.push_back(random_bytes(rng, 200));
  const auto tok = CharTokenizer::train(std::vector<std::string_view>(docs.begin(), docs.end()));
  for (const auto& d : docs) ASSERT_EQ(tok.decode(tok.encode(d)), d);
}

TEST(TokenizerChar, UnknownCharacterIsAnError) {
  const auto tok = CharTokenizer::train({"abc"});
  try {
    tok.encode("ab\xC3\xA9");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("U+00E9"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("offset 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tok.encode("\xFF"), Error);
}

TEST(TokenizerChar, TinyShakespeareHas65Characters) {
  const std::string path = "/work/shared/data/tinyshakespeare/input.txt";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not found";
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto tok = CharTokenizer::train({text});
  EXPECT_EQ(tok.vocab_size(), 65);
  EXPECT_EQ(tok.encode("\n")[0], 0);  // nanoGPT: stoi['\n'] == 0, stoi[' '] == 1
  EXPECT_EQ(tok.encode(" ")[0], 1);
  EXPECT_EQ(tok.decode(tok.encode(text)), text);
}

}  // namespace
}  // namespace attn
