// GPT-2's tokenizer against GPT-2's own algorithm (tests/gpt2_reference.py: OpenAI's
// encoder.py with the `regex` module) on many scripts and awkward texts, plus exact round
// trips, the three vocabulary file forms, special tokens, Unicode classes and errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/gpt2_tokenizer.h"
#include "data/pretokenizer.h"
#include "data/tokenizer.h"
#include "test_support.h"

namespace attn {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::string vocab_dir() { return testing::shared_data("data/gpt2"); }

#define REQUIRE_GPT2_VOCAB()                                                                                  \
  if (vocab_dir().empty()) GTEST_SKIP() << "GPT-2 vocabulary not found (../shared/data/gpt2 or $ATTN_SHARED_DIR)"

const Gpt2Tokenizer& gpt2() {
  static const Gpt2Tokenizer tok = load_gpt2_tokenizer(vocab_dir());
  return tok;
}

void write_bytes(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// Ids from tests/gpt2_reference.py; empty optional-like flag when python3/regex is missing.
bool reference_ids(const std::string& text, std::vector<int32_t>& ids, std::string& why) {
  TempDir dir("gpt2ref");
  write_bytes(dir.file("in.txt"), text);
  const std::string cmd = fmt::format("/usr/bin/python3 {}/tests/gpt2_reference.py {} {} {} > {} 2>&1", ATTN_SOURCE_DIR,
                                      vocab_dir(), dir.file("in.txt"), dir.file("out.txt"), dir.file("log.txt"));
  const int rc = std::system(cmd.c_str());
  std::ifstream log(dir.file("log.txt"));
  why.assign(std::istreambuf_iterator<char>(log), {});
  if (rc != 0) return false;
  std::ifstream in(dir.file("out.txt"));
  ids.clear();
  for (int32_t id; in >> id;) ids.push_back(id);
  return true;
}

// Texts where a byte-level approximation of the regex goes wrong, and GPT-2's edge cases.
std::vector<std::string> awkward_texts() {
  return {
      "Hello world! It's a test, isn't it? They're here; we'll see. I'd say you've 'm got it.",
      "Don'T SHOUT'S 'S 'll ''s x's !'s 's",  // contractions are lower case only
      "Привет, мир! Съешь же ещё этих мягких французских булок.",
      "日本語のテキスト、中文文本。한국어 텍스트！",
      "مرحبا بالعالم، هذا اختبار. ١٢٣٤٥",
      "emoji 🙂🙃 👩‍👩‍👧 flags 🇫🇷🇩🇪 and ❤️ keycaps 1️⃣",
      "combining: e\u0301 a\u0308 n\u0303 Z\u0351\u0354 \u0915\u093f",
      "spaces:\u00a0NBSP,\u2003em,\u3000ideographic,\u202fnarrow,\u2009thin,\u200bzero-width,\u205f.",
      "full-width digits １２３ and letters ＡＢＣ, superscripts ² ³, fractions ½ ⅓, roman Ⅻ",
      "dashes — – quotes “” ‘’ «» ellipsis … bullets • ·",
      "runs    of   spaces\n\n\n\nand\t\ttabs \n \n  \r\n end   ",
      "   leading spaces and trailing newline\n",
      "\n",
      " ",
      "  ",
      "a\u0085b\u2028c\u2029d\x1c e\x1f",  // NEL, line/paragraph separators; \x1c..\x1f are not \s
      "numbers 3.14159 1,000,000 0x1F 2024-06-01 12:30",
      "code: for (int i = 0; i < n; ++i) { x[i] += y[i] * 2; } // done",
      "mixed<|endoftext|>documents<|endoftext|> more <|endoftext|>",
      "<|endoftext|>",
      "<|endoftext",
      "Ελληνικά κείμενα, עברית, हिन्दी, ไทย, ქართული",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝟙𝟚𝟛 and private use \ue000 and noncharacter \ufdd0",
  };
}

// Our ids equal the reference's and decode back to the text; false (with a skip or a
// failure recorded) when the reference cannot run.
bool expect_reference_ids(const std::string& text, bool& skip) {
  std::vector<int32_t> want;
  std::string why;
  if (!reference_ids(text, want, why)) {
    skip = why.find("SKIPPED") != std::string::npos;
    if (!skip) ADD_FAILURE() << "gpt2_reference.py failed: " << why;
    return false;
  }
  const std::vector<int32_t> got = gpt2().encode(text);
  EXPECT_EQ(got, want) << "text: " << text;
  EXPECT_EQ(gpt2().decode(got), text);
  return true;
}

TEST(Gpt2Tokenizer, MatchesGpt2ReferenceOnAwkwardTexts) {
  REQUIRE_GPT2_VOCAB();
  std::string joined;
  for (const auto& t : awkward_texts()) joined += t + "\n";
  for (const std::string& text : [&] {
         auto all = awkward_texts();
         all.push_back(joined);
         return all;
       }()) {
    bool skip = false;
    if (!expect_reference_ids(text, skip)) {
      if (skip) GTEST_SKIP() << "python3 regex missing";
      return;
    }
  }
}

// Known ids (tiktoken's gpt2 encoding) so that the reference itself is pinned.
TEST(Gpt2Tokenizer, KnownIds) {
  REQUIRE_GPT2_VOCAB();
  EXPECT_EQ(gpt2().encode("Hello world"), (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(gpt2().encode(" Hello world!"), (std::vector<int32_t>{18435, 995, 0}));
  EXPECT_EQ(gpt2().encode("<|endoftext|>"), (std::vector<int32_t>{50256}));
  EXPECT_EQ(gpt2().vocab_size(), 50257);
  EXPECT_EQ(gpt2().eot_id(), 50256);
  std::vector<int32_t> ordinary;
  gpt2().encode_ordinary("<|endoftext|>", ordinary);
  EXPECT_GT(ordinary.size(), 1u);  // encode_ordinary: plain text
  EXPECT_EQ(gpt2().decode(ordinary), "<|endoftext|>");
}

// Random strings over an alphabet of awkward code points and invalid bytes: the same ids
// as GPT-2's algorithm on the text decoded with surrogateescape, and exact round trips.
TEST(Gpt2Tokenizer, MatchesReferenceOnRandomStringsAndBytes) {
  REQUIRE_GPT2_VOCAB();
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(fmt::format("seed {}", seed));
  std::mt19937_64 rng(seed);
  const std::vector<std::string> pieces = {
      "a", "Z", "é", "ß", "Ж", "日", "ー", "ا", "🙂", "\u0301", "1", "٣", "１", "½", " ", "  ", "\n", "\t", "\r\n",
      "\u00a0", "\u3000", "\u2028", "\u0085", "'", "'s", "'ll", "!", "—", "“", "<|endoftext|>", "\x80", "\xff",
      "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf", "\x00", "\x1c", "word", " word", "don't"};
  std::string text;
  for (int n = 0; n < 4000; ++n) text += pieces[rng() % pieces.size()];
  std::string random_bytes(3000, '\0');
  for (char& c : random_bytes) c = static_cast<char>(rng() % 256);
  for (const std::string& t : {text, random_bytes}) {
    bool skip = false;
    if (!expect_reference_ids(t, skip)) {
      if (skip) GTEST_SKIP() << "python3 regex missing";
      return;
    }
  }
}

TEST(Gpt2Tokenizer, TinyShakespeareMatchesReference) {
  REQUIRE_GPT2_VOCAB();
  const std::string path = testing::shared_data("data/tinyshakespeare/input.txt");
  if (path.empty()) GTEST_SKIP() << "data/tinyshakespeare/input.txt not found";
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  std::vector<int32_t> want;
  std::string why;
  if (!reference_ids(text, want, why)) GTEST_SKIP() << why;
  const std::vector<int32_t> got = gpt2().encode(text);
  EXPECT_EQ(got.size(), 338025u);  // nanoGPT's data/shakespeare/prepare.py: 301966 train + 36059 val
  EXPECT_EQ(got, want);
  EXPECT_EQ(gpt2().decode(got), text);
}

TEST(Gpt2Tokenizer, UnicodeClasses) {
  EXPECT_EQ(gpt2_char_class(U'a'), CharClass::Letter);
  EXPECT_EQ(gpt2_char_class(U'Ж'), CharClass::Letter);
  EXPECT_EQ(gpt2_char_class(U'ー'), CharClass::Letter);  // Lm
  EXPECT_EQ(gpt2_char_class(0x0301), CharClass::Other);  // combining acute: Mn
  EXPECT_EQ(gpt2_char_class(U'１'), CharClass::Number);
  EXPECT_EQ(gpt2_char_class(U'½'), CharClass::Number);   // No
  EXPECT_EQ(gpt2_char_class(U'Ⅻ'), CharClass::Number);   // Nl
  EXPECT_EQ(gpt2_char_class(0x00A0), CharClass::Space);
  EXPECT_EQ(gpt2_char_class(0x3000), CharClass::Space);
  EXPECT_EQ(gpt2_char_class(0x0085), CharClass::Space);
  EXPECT_EQ(gpt2_char_class(0x2028), CharClass::Space);
  EXPECT_EQ(gpt2_char_class(0x200B), CharClass::Other);  // zero-width space is not White_Space
  EXPECT_EQ(gpt2_char_class(0x1C), CharClass::Other);
  EXPECT_EQ(gpt2_char_class(U'—'), CharClass::Other);
  EXPECT_EQ(gpt2_char_class(0xDC80), CharClass::Other);  // an escaped invalid byte
}

TEST(Gpt2Tokenizer, PiecesPartitionTheInput) {
  const std::string text = "It's  \u00a0 １２ words—“quoted”\n\n x";
  std::vector<std::string> words;
  for_each_gpt2_word(text, [&](std::string_view w) { words.emplace_back(w); });
  const std::vector<std::string> want = {"It", "'s", "  \u00a0", " １２", " words", "—“", "quoted", "”", "\n\n",
                                         " x"};
  EXPECT_EQ(words, want);
}

// The same tokenizer from encoder.json + vocab.bpe, from HF's tokenizer.json and from our
// saved file gives the same ids.
TEST(Gpt2Tokenizer, FileFormsAgreeAndSaveLoadRoundTrips) {
  REQUIRE_GPT2_VOCAB();
  TempDir dir("gpt2files");
  const std::string text = awkward_texts()[0] + awkward_texts()[5] + "<|endoftext|>" + awkward_texts()[3];
  const std::vector<int32_t> want = gpt2().encode(text);

  gpt2().save(dir.file("ours.json"));
  const auto ours = load_tokenizer(dir.file("ours.json"));
  EXPECT_EQ(ours->type(), "gpt2");
  EXPECT_EQ(ours->encode(text), want);

  // An HF tokenizer.json as transformers writes it for gpt2 (merges as "a b" strings).
  std::ifstream enc(fs::path(vocab_dir()) / "encoder.json");
  nlohmann::json vocab = nlohmann::json::parse(enc);
  std::ifstream bpe(fs::path(vocab_dir()) / "vocab.bpe");
  nlohmann::json merges = nlohmann::json::array();
  std::string line;
  std::getline(bpe, line);  // #version
  while (std::getline(bpe, line))
    if (!line.empty()) merges.push_back(line);
  nlohmann::json hf = {
      {"version", "1.0"},
      {"added_tokens", {{{"id", 50256}, {"content", "<|endoftext|>"}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
  write_bytes(dir.file("tokenizer.json"), hf.dump());
  EXPECT_EQ(load_tokenizer(dir.file("tokenizer.json"))->encode(text), want);
  EXPECT_EQ(load_gpt2_tokenizer(dir.path.string()).encode(text), want);  // a folder with tokenizer.json

  // Newer transformers write merges as [a, b] pairs.
  for (auto& m : hf["model"]["merges"]) {
    const std::string s = m.get<std::string>();
    m = nlohmann::json::array({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  write_bytes(dir.file("pairs.json"), hf.dump());
  EXPECT_EQ(load_tokenizer(dir.file("pairs.json"))->encode(text), want);

  hf["pre_tokenizer"]["add_prefix_space"] = true;
  write_bytes(dir.file("prefix.json"), hf.dump());
  EXPECT_NE(testing::error_of([&] { load_tokenizer(dir.file("prefix.json")); }).find("add_prefix_space"),
            std::string::npos);
}

TEST(Gpt2Tokenizer, BadFilesAreErrorsNamingThem) {
  TempDir dir("gpt2bad");
  write_bytes(dir.file("encoder.json"), R"({"a": 0, "b": 1})");
  write_bytes(dir.file("vocab.bpe"), "#version: 0.2\na b\n");
  std::string err = testing::error_of([&] { load_gpt2_tokenizer(dir.path.string()); });
  EXPECT_NE(err.find("no token for byte"), std::string::npos) << err;
  EXPECT_NE(err.find("encoder.json"), std::string::npos) << err;
  write_bytes(dir.file("encoder.json"), "{not json");
  err = testing::error_of([&] { load_gpt2_tokenizer(dir.path.string()); });
  EXPECT_NE(err.find("not valid JSON"), std::string::npos) << err;
  fs::remove(dir.file("encoder.json"));
  err = testing::error_of([&] { load_gpt2_tokenizer(dir.path.string()); });
  EXPECT_NE(err.find("neither"), std::string::npos) << err;
  if (!vocab_dir().empty()) {
    const std::vector<int32_t> bad = {50257};
    err = testing::error_of([&] { gpt2().decode(bad); });
    EXPECT_NE(err.find("out of range"), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace attn
