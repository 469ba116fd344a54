// Reads a prepared dataset directory's meta.json (layout in dataset.h).
#include "data/dataset.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/file_io.h"

namespace attn {

namespace fs = std::filesystem;

std::string shard_file_name(const std::string& split, int index) { return fmt::format("{}_{:03d}.bin", split, index); }

DatasetInfo load_dataset_info(const std::string& dir) {
  constexpr const char* kHint = "run `attnlab prepare` to create it";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("dataset {}: directory does not exist ({})", dir, kHint);
  const std::string meta_path = (fs::path(dir) / "meta.json").string();
  if (!fs::exists(meta_path, ec)) fail("dataset {}: missing {} ({})", dir, meta_path, kHint);
  const std::string text = read_file_bytes(meta_path, "dataset meta");

  DatasetInfo info;
  info.dir = dir;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    const int version = j.at("version").get<int>();
    ATTN_CHECK(version == kDatasetMetaVersion, "dataset meta {}: unsupported version {} (this build reads {})",
               meta_path, version, kDatasetMetaVersion);
    const auto& tok = j.at("tokenizer");
    info.tokenizer_path = (fs::path(dir) / tok.at("path").get<std::string>()).string();
    info.vocab_size = tok.at("vocab_size").get<int>();
    info.eot_id = tok.at("eot_id").get<int>();
    ATTN_CHECK(info.vocab_size > 0, "dataset meta {}: invalid vocab_size {}", meta_path, info.vocab_size);
    auto read_split = [&](const char* name, std::vector<std::string>& shards, int64_t& tokens) {
      const auto& split = j.at("splits").at(name);
      tokens = split.at("tokens").get<int64_t>();
      for (const auto& s : split.at("shards")) shards.push_back((fs::path(dir) / s.get<std::string>()).string());
      ATTN_CHECK(!shards.empty(), "dataset meta {}: split '{}' has no shards", meta_path, name);
    };
    read_split("train", info.train_shards, info.train_tokens);
    read_split("val", info.val_shards, info.val_tokens);
  } catch (const nlohmann::json::exception& e) {
    fail("dataset meta {}: corrupt ({}); {}", meta_path, e.what(), kHint);
  }
  if (!fs::exists(info.tokenizer_path, ec)) fail("dataset {}: missing {} ({})", dir, info.tokenizer_path, kHint);
  for (const auto* shards : {&info.train_shards, &info.val_shards})
    for (const auto& s : *shards)
      if (!fs::exists(s, ec)) fail("dataset {}: missing shard {} ({})", dir, s, kHint);
  return info;
}

}  // namespace attn
