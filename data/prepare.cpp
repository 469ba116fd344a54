// prepare_dataset: input files -> tokenizer + train/val token shards + meta.json.
#include "data/prepare.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/bpe_tokenizer.h"
#include "data/char_tokenizer.h"
#include "data/file_io.h"
#include "data/shard.h"

namespace attn {

namespace fs = std::filesystem;

namespace {

constexpr size_t kBinarySniffBytes = 8192;

struct Document {
  std::string path;
  std::string text;
};

bool looks_binary(const std::string& bytes) {
  return std::memchr(bytes.data(), '\0', std::min(bytes.size(), kBinarySniffBytes)) != nullptr;
}

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& item : items) s += (s.empty() ? "" : ", ") + item;
  return s;
}

// Gathers the documents of all inputs, in a deterministic order.
class DocumentCollector {
 public:
  explicit DocumentCollector(const std::function<void(const std::string&)>& log) : log_(log) {}

  void add_input(const std::string& input) {
    std::error_code ec;
    const fs::file_status st = fs::status(input, ec);  // follows symlinks
    if (ec || !fs::exists(st)) fail("prepare: input {} does not exist", input);
    if (fs::is_directory(st)) {
      walk(input);
    } else if (fs::is_regular_file(st)) {
      std::string text = read_file_bytes(input, "input");
      ATTN_CHECK(!looks_binary(text), "prepare: input {} looks binary (a NUL byte in its first 8 KiB)", input);
      take(input, std::move(text));
    } else {
      fail("prepare: input {} is neither a regular file nor a directory", input);
    }
  }

  std::vector<Document>& documents() { return documents_; }

  void log_summary() const {
    if (skipped_binary_ || skipped_empty_ || skipped_duplicate_)
      say(fmt::format("skipped {} binary, {} empty and {} duplicate (second link to a file) files", skipped_binary_,
                      skipped_empty_, skipped_duplicate_));
  }

 private:
  void say(const std::string& line) const {
    if (log_) log_(line);
  }

  // Depth first, entries sorted by name, symlinks followed (each directory once).
  void walk(const fs::path& dir) {
    std::error_code ec;
    const fs::path canonical = fs::canonical(dir, ec);
    if (ec || !visited_dirs_.insert(canonical.string()).second) return;
    std::vector<fs::path> entries;
    for (const auto& entry : fs::directory_iterator(dir, ec)) entries.push_back(entry.path());
    if (ec) fail("prepare: cannot read directory {} ({})", dir.string(), ec.message());
    std::sort(entries.begin(), entries.end());
    for (const fs::path& p : entries) {
      const fs::file_status st = fs::status(p, ec);
      if (ec) {
        say(fmt::format("skip {} (broken link or unreadable)", p.string()));
        continue;
      }
      if (fs::is_directory(st)) {
        walk(p);
      } else if (fs::is_regular_file(st)) {
        std::string text = read_file_bytes(p.string(), "input");
        if (looks_binary(text)) {
          // Name the first few; the summary counts them all.
          if (skipped_binary_ < 3) say(fmt::format("skip {} (binary: a NUL byte in its first 8 KiB)", p.string()));
          ++skipped_binary_;
          continue;
        }
        take(p.string(), std::move(text));
      }
    }
  }

  void take(const std::string& path, std::string text) {
    std::error_code ec;
    const std::string canonical = fs::canonical(path, ec).string();
    if (!ec && !taken_files_.insert(canonical).second) {
      ++skipped_duplicate_;
      return;
    }
    if (text.empty()) {
      ++skipped_empty_;
      return;
    }
    documents_.push_back({path, std::move(text)});
  }

  const std::function<void(const std::string&)>& log_;
  std::vector<Document> documents_;
  std::set<std::string> visited_dirs_, taken_files_;
  int skipped_binary_ = 0, skipped_empty_ = 0, skipped_duplicate_ = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Deletes shards and meta.json left by an earlier prepare into the same directory.
void remove_previous_outputs(const fs::path& out_dir) {
  static const std::regex shard_name(R"((train|val)_[0-9]{3,}\.bin)");
  std::error_code ec;
  fs::remove(out_dir / "meta.json", ec);
  for (const auto& entry : fs::directory_iterator(out_dir, ec))
    if (std::regex_match(entry.path().filename().string(), shard_name)) fs::remove(entry.path(), ec);
}

std::vector<std::string> write_split(const fs::path& out_dir, const std::string& split,
                                     std::span<const int32_t> tokens, int64_t shard_tokens, int vocab_size) {
  std::vector<std::string> names;
  for (int64_t begin = 0; begin < static_cast<int64_t>(tokens.size()); begin += shard_tokens) {
    const int64_t n = std::min<int64_t>(shard_tokens, static_cast<int64_t>(tokens.size()) - begin);
    names.push_back(shard_file_name(split, static_cast<int>(names.size())));
    write_shard((out_dir / names.back()).string(), tokens.subspan(begin, n), vocab_size);
  }
  return names;
}

}  // namespace

DatasetInfo prepare_dataset(const PrepareOptions& opt, std::function<void(const std::string&)> log) {
  auto say = [&](const std::string& line) {
    if (log) log(line);
  };
  ATTN_CHECK(!opt.inputs.empty(), "prepare: no inputs given");
  ATTN_CHECK(!opt.out_dir.empty(), "prepare: no output directory given");
  ATTN_CHECK(opt.val_fraction > 0.0 && opt.val_fraction < 1.0,
             "prepare: val_fraction {} must be in (0, 1): the validation split needs at least one window",
             opt.val_fraction);
  ATTN_CHECK(opt.shard_tokens > 0, "prepare: shard_tokens {} must be positive", opt.shard_tokens);
  if (opt.tokenizer_path.empty())
    ATTN_CHECK(opt.tokenizer == "bpe" || opt.tokenizer == "char",
               "prepare: unknown tokenizer '{}' (expected bpe or char)", opt.tokenizer);

  // 1. Documents.
  DocumentCollector collector(log);
  for (const auto& input : opt.inputs) collector.add_input(input);
  collector.log_summary();
  std::vector<Document>& docs = collector.documents();
  if (docs.empty()) fail("prepare: no text found in {}", join(opt.inputs));
  size_t total_bytes = 0;
  for (const auto& d : docs) total_bytes += d.text.size();
  say(fmt::format("{} documents, {:.2f} MB of text", docs.size(), total_bytes / 1e6));

  // 2. Tokenizer.
  std::unique_ptr<Tokenizer> tokenizer;
  const auto t0 = std::chrono::steady_clock::now();
  if (!opt.tokenizer_path.empty()) {
    tokenizer = load_tokenizer(opt.tokenizer_path);
    say(fmt::format("loaded {} tokenizer {} (vocab {})", tokenizer->type(), opt.tokenizer_path,
                    tokenizer->vocab_size()));
  } else {
    std::vector<std::string_view> texts;
    for (const auto& d : docs) texts.push_back(d.text);
    if (opt.tokenizer == "bpe") tokenizer = std::make_unique<BpeTokenizer>(BpeTokenizer::train(texts, opt.vocab_size));
    else tokenizer = std::make_unique<CharTokenizer>(CharTokenizer::train(texts));
    say(fmt::format("trained {} tokenizer: vocab {} in {:.2f} s", tokenizer->type(), tokenizer->vocab_size(),
                    seconds_since(t0)));
    if (opt.tokenizer == "bpe" && tokenizer->vocab_size() < opt.vocab_size)
      say(fmt::format("note: the text ran out of pairs to merge: vocab {} instead of {}", tokenizer->vocab_size(),
                      opt.vocab_size));
  }

  // 3. One token stream, documents separated by eot when there is one.
  const auto t1 = std::chrono::steady_clock::now();
  const int eot = tokenizer->eot_id();
  std::vector<int32_t> stream;
  stream.reserve(total_bytes / (tokenizer->type() == "char" ? 1 : 3) + docs.size());
  for (size_t i = 0; i < docs.size(); ++i) {
    if (i > 0 && eot >= 0) stream.push_back(eot);
    try {
      const std::vector<int32_t> ids = tokenizer->encode(docs[i].text);
      stream.insert(stream.end(), ids.begin(), ids.end());
    } catch (const Error& e) {
      fail("prepare: {}: {}", docs[i].path, e.what());
    }
  }
  const auto n = static_cast<int64_t>(stream.size());
  say(fmt::format("{} tokens ({:.2f} bytes/token) in {:.2f} s", n, static_cast<double>(total_bytes) / n,
                  seconds_since(t1)));

  // 4. Split like nanoGPT: train = the first int(n * (1 - val_fraction)) tokens.
  const auto n_train = static_cast<int64_t>(std::floor(static_cast<double>(n) * (1.0 - opt.val_fraction)));
  const int64_t n_val = n - n_train;
  ATTN_CHECK(n_train >= 2 && n_val >= 2,
             "prepare: {} tokens are too few to split with val_fraction {} (train {}, val {}; each needs >= 2)", n,
             opt.val_fraction, n_train, n_val);

  // 5. Write shards, tokenizer and, last, meta.json.
  const fs::path out_dir(opt.out_dir);
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) fail("prepare: cannot create output directory {} ({})", opt.out_dir, ec.message());
  remove_previous_outputs(out_dir);
  const std::span<const int32_t> all(stream);
  const int vocab = tokenizer->vocab_size();
  const auto train_names = write_split(out_dir, "train", all.first(n_train), opt.shard_tokens, vocab);
  const auto val_names = write_split(out_dir, "val", all.subspan(n_train), opt.shard_tokens, vocab);
  tokenizer->save((out_dir / "tokenizer.json").string());

  nlohmann::json meta;
  meta["format"] = "attnlab-dataset";
  meta["version"] = kDatasetMetaVersion;
  meta["tokenizer"] = {{"path", "tokenizer.json"}, {"type", tokenizer->type()}, {"vocab_size", vocab}, {"eot_id", eot}};
  meta["splits"]["train"] = {{"tokens", n_train}, {"shards", train_names}};
  meta["splits"]["val"] = {{"tokens", n_val}, {"shards", val_names}};
  meta["val_fraction"] = opt.val_fraction;
  meta["documents"] = docs.size();
  meta["bytes"] = total_bytes;
  std::vector<std::string> sources;
  for (const auto& d : docs) sources.push_back(d.path);
  meta["sources"] = sources;
  write_file_atomic((out_dir / "meta.json").string(), meta.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "dataset meta");
  say(fmt::format("wrote {}: train {} tokens ({} shards), val {} tokens ({} shards)", opt.out_dir, n_train,
                  train_names.size(), n_val, val_names.size()));
  return load_dataset_info(opt.out_dir);
}

}  // namespace attn
