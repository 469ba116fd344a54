// The run directory is the unit of truth. At the start of a run its dataset's identity
// (meta.json and tokenizer hashes, every shard's name, size and token checksum) is recorded in
// <out_dir>/run.json and the tokenizer copied to <out_dir>/tokenizer.json, once. Checkpoints
// copy that tokenizer (never the data folder's, which `prepare` may have rewritten since) and
// name it by hash. Resuming (or initialising from a run) checks the data against the record,
// so a run cannot silently continue on other data.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"

namespace attn {

struct DataIdentity {
  struct ShardId {
    std::string name;  // file name inside the dataset folder
    uint64_t bytes = 0, checksum = 0;
  };
  std::string dir;
  int vocab_size = 0;
  uint64_t meta_hash = 0, tokenizer_hash = 0;  // FNV-1a 64 of meta.json and tokenizer.json
  std::vector<ShardId> shards;                  // train then val, in stream order
};

DataIdentity data_identity(const DatasetInfo& data);
nlohmann::json identity_json(const DataIdentity& id);
DataIdentity identity_from_json(const nlohmann::json& j);
// "" when both describe the same data, else the first difference in words.
std::string identity_difference(const DataIdentity& recorded, const DataIdentity& now);

// <out_dir>/tokenizer.json and <out_dir>/run.json.
std::string run_tokenizer_path(const std::string& out_dir);
std::string run_record_path(const std::string& out_dir);

// The data identity and tokenizer hash a run recorded (run.json), or nullopt when it has no
// record (runs of older builds); throws attn::Error when the record is corrupt. For
// --init-from: identity_difference(read_run_record(src)->data, data_identity(now)).
struct RunRecord {
  DataIdentity data;
  std::string tokenizer_hash;  // hash_hex of the run's tokenizer.json
};
std::optional<RunRecord> read_run_record(const std::string& run_dir);

// A new run: records the data's identity and copies its tokenizer into out_dir.
// Returns the run's tokenizer path.
std::string start_run_record(const std::string& out_dir, const DatasetInfo& data);
// A resumed run: throws attn::Error when `data` is not the data the run recorded (what
// changed, and which folder). A run without a record (older builds) gets one now, with a
// note. Returns the run's tokenizer path.
std::string check_run_record(const std::string& out_dir, const DatasetInfo& data,
                             const std::function<void(const std::string&)>& note);

// "0123456789abcdef": how hashes are written in run.json and state.json.
std::string hash_hex(uint64_t h);

}  // namespace attn
