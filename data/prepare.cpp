// prepare_dataset: input stream -> tokenizer + train/val token shards + meta.json.
#include "data/prepare.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "core/choices.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/bpe_tokenizer.h"
#include "data/char_tokenizer.h"
#include "data/file_io.h"
#include "data/gpt2_tokenizer.h"
#include "data/parallel_encode.h"
#include "data/shard.h"
#include "data/text_input.h"
#include "data/utf8.h"

namespace attn {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
using Log = std::function<void(const std::string&)>;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& item : items) s += (s.empty() ? "" : ", ") + item;
  return s;
}

// Deletes shards and meta.json left by an earlier prepare into the same directory
// (meta.json first: a half-written directory is never taken for a dataset).
void remove_previous_outputs(const fs::path& out_dir) {
  static const std::regex shard_name(R"((train|val)_[0-9]{3,}\.bin(\.tmp)?)");
  std::error_code ec;
  fs::remove(out_dir / "meta.json", ec);
  for (const auto& entry : fs::directory_iterator(out_dir, ec))
    if (std::regex_match(entry.path().filename().string(), shard_name)) fs::remove(entry.path(), ec);
}

// A split's shards, written as tokens arrive: shard k holds tokens [k*S, (k+1)*S).
class SplitWriter {
 public:
  SplitWriter(fs::path dir, std::string split, int64_t shard_tokens, int vocab)
      : dir_(std::move(dir)), split_(std::move(split)), shard_tokens_(shard_tokens), vocab_(vocab) {}

  void append(std::span<const int32_t> tokens) {
    while (!tokens.empty()) {
      if (!shard_) {
        names_.push_back(shard_file_name(split_, static_cast<int>(names_.size())));
        shard_ = std::make_unique<ShardWriter>((dir_ / names_.back()).string(), vocab_);
      }
      const auto take = static_cast<size_t>(std::min<int64_t>(shard_tokens_ - shard_->count(), tokens.size()));
      shard_->append(tokens.first(take));
      tokens = tokens.subspan(take);
      tokens_ += static_cast<int64_t>(take);
      if (shard_->count() == shard_tokens_) shard_->finish(), shard_.reset();
    }
  }
  void append(int32_t token) { append(std::span<const int32_t>(&token, 1)); }
  const std::vector<std::string>& finish() {
    if (shard_) shard_->finish(), shard_.reset();
    return names_;
  }
  int64_t tokens() const { return tokens_; }

 private:
  fs::path dir_;
  std::string split_;
  int64_t shard_tokens_;
  int vocab_;
  std::unique_ptr<ShardWriter> shard_;
  std::vector<std::string> names_;
  int64_t tokens_ = 0;
};

// nanoGPT's split of a written stream: tokens [n_train, n) of the train shards move to
// val shards (copied through a bounded buffer); the train shard holding n_train is cut.
std::vector<std::string> carve_tail(const fs::path& dir, std::vector<std::string>& train_names, int64_t n_train,
                                    int64_t shard_tokens, int vocab) {
  SplitWriter val(dir, "val", shard_tokens, vocab);
  std::vector<int32_t> buffer;
  auto copy = [&](const Shard& from, int64_t begin, int64_t end, auto&& sink) {
    for (int64_t pos = begin; pos < end;) {
      const int64_t n = std::min<int64_t>(end - pos, 1 << 20);
      buffer.resize(static_cast<size_t>(n));
      from.copy(pos, n, buffer.data());
      sink(std::span<const int32_t>(buffer));
      pos += n;
    }
  };
  int64_t shard_begin = 0;
  size_t keep = 0;
  for (size_t k = 0; k < train_names.size(); ++k) {
    const std::string path = (dir / train_names[k]).string();
    std::optional<Shard> shard;
    shard.emplace(path);
    const int64_t shard_end = shard_begin + shard->size();
    if (shard_end <= n_train) {
      keep = k + 1;
    } else {
      const int64_t cut = std::max<int64_t>(n_train - shard_begin, 0);
      copy(*shard, cut, shard->size(), [&](std::span<const int32_t> t) { val.append(t); });
      if (cut > 0) {
        ShardWriter rewrite(path, vocab);
        copy(*shard, 0, cut, [&](std::span<const int32_t> t) { rewrite.append(t); });
        shard.reset();
        rewrite.finish();
        keep = k + 1;
      } else {
        shard.reset();
        fs::remove(path);
      }
    }
    shard_begin = shard_end;
  }
  train_names.resize(keep);
  return val.finish();
}

// Whether document d goes to the validation split (a hash of its index).
bool is_val_document(int64_t d, double val_fraction) {
  const uint64_t h = mix64(static_cast<uint64_t>(d) ^ 0x7A1D5EEDull);
  return static_cast<double>(h >> 11) * 0x1.0p-53 < val_fraction;
}

std::unique_ptr<Tokenizer> make_tokenizer(const PrepareOptions& opt, const std::vector<InputFile>& files,
                                          const Log& say) {
  const auto t0 = Clock::now();
  if (!opt.tokenizer_path.empty()) {
    auto tok = load_tokenizer(opt.tokenizer_path);
    say(fmt::format("loaded {} tokenizer {} (vocab {})", tok->type(), opt.tokenizer_path, tok->vocab_size()));
    return tok;
  }
  if (opt.tokenizer == "gpt2") {
    ATTN_CHECK(!opt.gpt2_vocab.empty(), "prepare: the gpt2 tokenizer needs GPT-2's vocabulary files "
               "(--gpt2-vocab DIR with encoder.json + vocab.bpe, or data.gpt2_vocab)");
    auto tok = std::make_unique<Gpt2Tokenizer>(load_gpt2_tokenizer(opt.gpt2_vocab));
    say(fmt::format("loaded GPT-2's tokenizer from {} (vocab {})", opt.gpt2_vocab, tok->vocab_size()));
    return tok;
  }
  // Trained here: bpe on a bounded sample (the first documents), char on all the text.
  DocumentReader reader(files, opt.jsonl_key, nullptr);
  std::vector<TextUnit> units;
  std::unique_ptr<Tokenizer> tok;
  if (opt.tokenizer == "bpe") {
    while (reader.text_bytes_read() < opt.train_sample_bytes && reader.next_batch(opt.batch_bytes, units)) {
    }
    if (reader.documents() == 0) return nullptr;
    std::vector<std::string> docs;  // units joined back into documents
    for (auto& u : units) {
      if (u.starts_document || docs.empty()) docs.emplace_back();
      docs.back() += u.text;
    }
    units.clear();
    std::vector<std::string_view> views(docs.begin(), docs.end());
    tok = std::make_unique<BpeTokenizer>(BpeTokenizer::train(views, opt.vocab_size));
    say(fmt::format("trained bpe tokenizer on {:.2f} MB: vocab {} in {:.2f} s", reader.text_bytes_read() / 1e6,
                    tok->vocab_size(), seconds_since(t0)));
    if (tok->vocab_size() < opt.vocab_size)
      say(fmt::format("note: the text ran out of pairs to merge: vocab {} instead of {}", tok->vocab_size(),
                      opt.vocab_size));
  } else {
    std::set<char32_t> seen;
    while (reader.next_batch(opt.batch_bytes, units)) {
      for (const auto& u : units)
        for (size_t i = 0; i < u.text.size();) {
          char32_t cp;
          i += decode_utf8(u.text, i, cp);
          seen.insert(cp);
        }
      units.clear();
    }
    if (seen.empty()) return nullptr;
    tok = std::make_unique<CharTokenizer>(std::vector<char32_t>(seen.begin(), seen.end()));
    say(fmt::format("trained char tokenizer: vocab {} in {:.2f} s", tok->vocab_size(), seconds_since(t0)));
  }
  return tok;
}

std::string human_seconds(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const auto t = static_cast<int64_t>(s + 0.5);
  return t >= 3600 ? fmt::format("{}h{:02d}m", t / 3600, t / 60 % 60) : fmt::format("{}m{:02d}s", t / 60, t % 60);
}

void check_prepare_options(const PrepareOptions& opt) {
  ATTN_CHECK(!opt.inputs.empty(), "prepare: no inputs given");
  ATTN_CHECK(!opt.out_dir.empty(), "prepare: no output directory given");
  ATTN_CHECK(opt.val_fraction > 0.0 && opt.val_fraction < 1.0,
             "prepare: val_fraction {} must be in (0, 1): the validation split needs at least one window",
             opt.val_fraction);
  ATTN_CHECK(opt.shard_tokens > 0, "prepare: shard_tokens {} must be positive", opt.shard_tokens);
  if (opt.tokenizer_path.empty())
    ATTN_CHECK(is_one_of(opt.tokenizer, kTokenizerNames), "prepare: unknown tokenizer '{}' (expected {})",
               opt.tokenizer, or_list(kTokenizerNames, false));
  ATTN_CHECK(is_one_of(opt.val_split, kValSplitNames), "prepare: unknown val_split '{}' (expected {})", opt.val_split,
             or_list(kValSplitNames, false));
}

// Encodes the reader's documents in batches on every core (the next batch is read while this one
// is encoded) and appends each document's ids to its split, with the EOT token between documents.
// Reports progress every 5 s.
void encode_documents(DocumentReader& reader, const Tokenizer& tokenizer, const PrepareOptions& opt, bool by_documents,
                      int64_t disk_bytes, SplitWriter& train, SplitWriter& val, const Log& say) {
  const int eot = tokenizer.eot_id();
  std::vector<TextUnit> units, next_units;
  std::vector<std::string_view> texts;
  const auto t0 = Clock::now();
  double last_report = 0;
  bool more = reader.next_batch(opt.batch_bytes, units);
  while (more) {
    // The reader is used by one thread at a time: this task until get().
    auto next = std::async(std::launch::async, [&] { return reader.next_batch(opt.batch_bytes, next_units); });
    try {
      texts.assign(units.size(), {});
      for (size_t i = 0; i < units.size(); ++i) texts[i] = units[i].text;
      size_t failed = 0;
      std::vector<std::vector<int32_t>> ids;
      try {
        ids = encode_in_parallel(tokenizer, texts, opt.threads, &failed);
      } catch (const Error& e) {
        fail("prepare: document {}: {}", units[failed].document, e.what());
      }
      for (size_t i = 0; i < units.size(); ++i) {
        SplitWriter& split = by_documents && is_val_document(units[i].document, opt.val_fraction) ? val : train;
        if (units[i].starts_document && split.tokens() > 0 && eot >= 0) split.append(eot);
        split.append(ids[i]);
      }
    } catch (...) {
      next.wait();
      throw;
    }
    more = next.get();
    units.swap(next_units);
    next_units.clear();
    const double t = seconds_since(t0);
    if (t - last_report >= 5) {
      last_report = t;
      const double done = static_cast<double>(reader.disk_bytes_read()) / std::max<int64_t>(disk_bytes, 1);
      say(fmt::format("{:5.1f}% | {:.0f} MB of text | {:.1f} MB/s | {:.2f}M tokens/s | ETA {}", 100 * done,
                      reader.text_bytes_read() / 1e6, reader.text_bytes_read() / 1e6 / t,
                      (train.tokens() + val.tokens()) / 1e6 / t, human_seconds(t / done - t)));
    }
  }
  if (reader.documents() == 0) fail("prepare: no text found in {}", join(opt.inputs));
  const int64_t n = train.tokens() + val.tokens();
  say(fmt::format("{} documents, {:.2f} MB of text -> {} tokens ({:.2f} bytes/token) in {:.2f} s ({:.1f} MB/s)",
                  reader.documents(), reader.text_bytes_read() / 1e6, n,
                  static_cast<double>(reader.text_bytes_read()) / std::max<int64_t>(n, 1), seconds_since(t0),
                  reader.text_bytes_read() / 1e6 / seconds_since(t0)));
}

struct SplitShards {
  int64_t tokens = 0;
  std::vector<std::string> shards;
};

// meta.json, written last (atomically): a directory without it holds no dataset.
void write_dataset_meta(const fs::path& out_dir, const Tokenizer& tokenizer, const SplitShards& train,
                        const SplitShards& val, const PrepareOptions& opt, bool by_documents,
                        const DocumentReader& reader) {
  nlohmann::json meta;
  meta["format"] = "attnlab-dataset";
  meta["version"] = kDatasetMetaVersion;
  meta["tokenizer"] = {{"path", "tokenizer.json"},
                       {"type", tokenizer.type()},
                       {"vocab_size", tokenizer.vocab_size()},
                       {"eot_id", tokenizer.eot_id()}};
  meta["splits"]["train"] = {{"tokens", train.tokens}, {"shards", train.shards}};
  meta["splits"]["val"] = {{"tokens", val.tokens}, {"shards", val.shards}};
  meta["val_fraction"] = opt.val_fraction;
  meta["val_split"] = by_documents ? "documents" : "tail";
  meta["documents"] = reader.documents();
  meta["bytes"] = reader.text_bytes_read();
  meta["sources"] = reader.sources();
  write_file_atomic((out_dir / "meta.json").string(),
                    meta.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "dataset meta");
}

}  // namespace

DatasetInfo prepare_dataset(const PrepareOptions& opt, std::function<void(const std::string&)> log) {
  const Log say = [&](const std::string& line) {
    if (log) log(line);
  };
  check_prepare_options(opt);

  // 1. Input files and the tokenizer.
  const std::vector<InputFile> files = collect_input_files(opt.inputs, log);
  if (files.empty()) fail("prepare: no text found in {}", join(opt.inputs));
  int64_t disk_bytes = 0;
  bool any_jsonl = false;
  for (const auto& f : files) disk_bytes += f.bytes, any_jsonl |= f.jsonl;
  say(fmt::format("{} input files, {:.2f} MB on disk", files.size(), disk_bytes / 1e6));
  const std::unique_ptr<Tokenizer> tokenizer = make_tokenizer(opt, files, say);
  if (!tokenizer) fail("prepare: no text found in {}", join(opt.inputs));
  const bool by_documents = opt.val_split == "documents" ||
                            (opt.val_split == "auto" && (any_jsonl || files.size() >= kAutoDocumentSplitFiles));

  // 2. Output directory, emptied of an earlier dataset.
  const fs::path out_dir(opt.out_dir);
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) fail("prepare: cannot create output directory {} ({})", opt.out_dir, ec.message());
  remove_previous_outputs(out_dir);
  const int vocab = tokenizer->vocab_size();
  SplitWriter train(out_dir, "train", opt.shard_tokens, vocab), val(out_dir, "val", opt.shard_tokens, vocab);

  try {
    // 3. Every document's ids into its split; by tail: nanoGPT's split, train = the first
    // int(n * (1 - val_fraction)) tokens.
    DocumentReader reader(files, opt.jsonl_key, log);
    encode_documents(reader, *tokenizer, opt, by_documents, disk_bytes, train, val, say);
    const int64_t n = train.tokens() + val.tokens();
    SplitShards tr{train.tokens(), train.finish()}, va{val.tokens(), val.finish()};
    if (!by_documents) {
      tr.tokens = static_cast<int64_t>(std::floor(static_cast<double>(n) * (1.0 - opt.val_fraction)));
      va.tokens = n - tr.tokens;
      if (tr.tokens >= 2 && va.tokens >= 2)
        va.shards = carve_tail(out_dir, tr.shards, tr.tokens, opt.shard_tokens, vocab);
    }
    ATTN_CHECK(tr.tokens >= 2 && va.tokens >= 2,
               "prepare: {} tokens are too few to split with val_fraction {} by {} (train {}, val {}; each needs >= 2)",
               n, opt.val_fraction, by_documents ? "documents (val_split = documents)" : "tail", tr.tokens, va.tokens);

    // 4. Tokenizer and, last, meta.json.
    tokenizer->save((out_dir / "tokenizer.json").string());
    write_dataset_meta(out_dir, *tokenizer, tr, va, opt, by_documents, reader);
    say(fmt::format("wrote {}: train {} tokens ({} shards), val {} tokens ({} shards), split by {}", opt.out_dir,
                    tr.tokens, tr.shards.size(), va.tokens, va.shards.size(), by_documents ? "documents" : "tail"));
  } catch (...) {
    remove_previous_outputs(out_dir);  // no partial dataset is left behind
    throw;
  }
  return load_dataset_info(opt.out_dir);
}

}  // namespace attn
