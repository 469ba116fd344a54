#include "train/run_identity.h"

#include <filesystem>

#include <fmt/format.h>

#include "core/error.h"
#include "data/file_io.h"
#include "data/shard.h"
#include "io/text_file.h"

namespace fs = std::filesystem;

namespace attn {

std::string hash_hex(uint64_t h) { return fmt::format("{:016x}", h); }

namespace {
uint64_t hex_hash(const nlohmann::json& j) { return std::stoull(j.get<std::string>(), nullptr, 16); }
}  // namespace

DataIdentity data_identity(const DatasetInfo& data) {
  DataIdentity id;
  id.dir = data.dir;
  id.vocab_size = data.vocab_size;
  id.meta_hash = file_fnv1a64((fs::path(data.dir) / "meta.json").string());
  id.tokenizer_hash = file_fnv1a64(data.tokenizer_path);
  for (const auto* split : {&data.train_shards, &data.val_shards})
    for (const std::string& s : *split)
      id.shards.push_back({fs::path(s).filename().string(), static_cast<uint64_t>(fs::file_size(s)),
                           shard_stored_checksum(s)});
  return id;
}

nlohmann::json identity_json(const DataIdentity& id) {
  nlohmann::json shards = nlohmann::json::array();
  for (const auto& s : id.shards)
    shards.push_back({{"name", s.name}, {"bytes", s.bytes}, {"checksum", hash_hex(s.checksum)}});
  return {{"dir", id.dir}, {"vocab_size", id.vocab_size}, {"meta_fnv1a64", hash_hex(id.meta_hash)},
          {"tokenizer_fnv1a64", hash_hex(id.tokenizer_hash)}, {"shards", shards}};
}

DataIdentity identity_from_json(const nlohmann::json& j) {
  DataIdentity id;
  id.dir = j.at("dir").get<std::string>();
  id.vocab_size = j.at("vocab_size").get<int>();
  id.meta_hash = hex_hash(j.at("meta_fnv1a64"));
  id.tokenizer_hash = hex_hash(j.at("tokenizer_fnv1a64"));
  for (const auto& s : j.at("shards"))
    id.shards.push_back({s.at("name").get<std::string>(), s.at("bytes").get<uint64_t>(), hex_hash(s.at("checksum"))});
  return id;
}

std::string identity_difference(const DataIdentity& was, const DataIdentity& now) {
  if (now.vocab_size != was.vocab_size) return fmt::format("vocab {} (was {})", now.vocab_size, was.vocab_size);
  if (now.tokenizer_hash != was.tokenizer_hash)
    return fmt::format("its tokenizer.json differs (hash {}, was {})", hash_hex(now.tokenizer_hash),
                       hash_hex(was.tokenizer_hash));
  if (now.shards.size() != was.shards.size())
    return fmt::format("{} shards (was {})", now.shards.size(), was.shards.size());
  for (size_t i = 0; i < now.shards.size(); ++i) {
    const auto &a = was.shards[i], &b = now.shards[i];
    if (a.name != b.name || a.bytes != b.bytes || a.checksum != b.checksum)
      return fmt::format("shard {} has {} bytes, checksum {} (was {}: {} bytes, checksum {})", b.name, b.bytes,
                         hash_hex(b.checksum), a.name, a.bytes, hash_hex(a.checksum));
  }
  if (now.meta_hash != was.meta_hash)
    return fmt::format("its meta.json differs (hash {}, was {})", hash_hex(now.meta_hash), hash_hex(was.meta_hash));
  return "";
}

std::string run_tokenizer_path(const std::string& out_dir) { return (fs::path(out_dir) / "tokenizer.json").string(); }
std::string run_record_path(const std::string& out_dir) { return (fs::path(out_dir) / "run.json").string(); }

namespace {
void write_record(const std::string& out_dir, const DataIdentity& id, const std::string& tokenizer_source) {
  const std::string tokenizer = read_file_bytes(tokenizer_source, "tokenizer");
  write_file_atomic(run_tokenizer_path(out_dir), tokenizer, "run tokenizer");
  const nlohmann::json record = {{"data", identity_json(id)},
                                 {"tokenizer_fnv1a64", hash_hex(fnv1a64(tokenizer.data(), tokenizer.size()))}};
  write_file_atomic(run_record_path(out_dir), record.dump(2) + "\n", "run record");
}
}  // namespace

std::string start_run_record(const std::string& out_dir, const DatasetInfo& data) {
  write_record(out_dir, data_identity(data), data.tokenizer_path);
  return run_tokenizer_path(out_dir);
}

std::optional<RunRecord> read_run_record(const std::string& run_dir) {
  const std::string path = run_record_path(run_dir);
  if (!fs::exists(path)) return std::nullopt;
  try {
    const auto j = nlohmann::json::parse(read_text_file(path));
    return RunRecord{identity_from_json(j.at("data")), j.at("tokenizer_fnv1a64").get<std::string>()};
  } catch (const std::exception& e) {
    fail("{}: corrupt run record ({})", path, e.what());
  }
}

std::string check_run_record(const std::string& out_dir, const DatasetInfo& data,
                             const std::function<void(const std::string&)>& note) {
  const DataIdentity now = data_identity(data);
  const std::optional<RunRecord> record = read_run_record(out_dir);
  if (!record) {
    note(fmt::format("note: {} has no record of its data (an older run): recording {} now", out_dir, data.dir));
    write_record(out_dir, now, data.tokenizer_path);
    return run_tokenizer_path(out_dir);
  }
  const std::string diff = identity_difference(record->data, now);
  ATTN_CHECK(diff.empty(),
             "--resume: the data in {} is not the data the run in {} was trained on: {}; resume with the run's "
             "own data (the run started on {})",
             data.dir, out_dir, diff, record->data.dir);
  const std::string tokenizer = run_tokenizer_path(out_dir);
  ATTN_CHECK(fs::exists(tokenizer), "{}: missing (the run's tokenizer, copied at its start)", tokenizer);
  const uint64_t h = file_fnv1a64(tokenizer);
  ATTN_CHECK(hash_hex(h) == record->tokenizer_hash, "{} changed since the run started (hash {}, recorded {})",
             tokenizer, hash_hex(h), record->tokenizer_hash);
  return tokenizer;
}

}  // namespace attn
