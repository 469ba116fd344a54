#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/text_file.h"
#include "data/shard.h"
#include "train/run_identity.h"

namespace fs = std::filesystem;

namespace attn {

namespace {

void fsync_path(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::vector<TensorView> views(const ParamLayout& layout, const float* base, const std::string& prefix) {
  std::vector<TensorView> out;
  for (const auto& t : layout.tensors()) out.push_back({prefix + t.name, t.shape, base + t.offset});
  return out;
}

// Copies every layout tensor from `file` into `dst` (layout.total() floats), checking shapes.
void fill_from(const SafetensorsFile& file, const ParamLayout& layout, const std::string& prefix,
               const std::string& path, std::vector<float>& dst) {
  dst.assign(layout.total(), 0.0f);
  for (const auto& t : layout.tensors()) {
    auto it = file.tensors.find(prefix + t.name);
    ATTN_CHECK(it != file.tensors.end(), "checkpoint '{}' has no tensor '{}' (was it saved with another model config?)",
               path, prefix + t.name);
    ATTN_CHECK(it->second.shape == t.shape,
               "checkpoint '{}': tensor '{}' has shape {} but the config needs {} (model config differs)", path,
               prefix + t.name, shape_string(it->second.shape), shape_string(t.shape));
    std::copy(it->second.data.begin(), it->second.data.end(), dst.begin() + static_cast<ptrdiff_t>(t.offset));
  }
  ATTN_CHECK(file.tensors.size() == layout.tensors().size(),
             "checkpoint '{}' has {} tensors, the config's model has {} (model config differs)", path,
             file.tensors.size(), layout.tensors().size());
}

// Files whose checksums state.json records (state.json itself is checked by parsing it).
constexpr const char* kChecksummedFiles[] = {"model.safetensors", "optimizer.safetensors", "precision.safetensors",
                                             "config.toml", "tokenizer.json"};
constexpr const char* kPrecisionStateTensor = "precision_state";

// The checkpoint directory root/latest names ("" when there is no `latest`).
std::string latest_name(const fs::path& root) {
  if (!fs::exists(root / "latest")) return "";
  std::string name = read_text_file(root / "latest");
  name.erase(name.find_last_not_of(" \n\r\t") + 1);
  return (root / name).string();
}

// Writes every file of the checkpoint into tmp; state.json last, with the other files' checksums.
void write_checkpoint_files(const fs::path& tmp, const ParamLayout& layout, const float* params, const float* m,
                            const float* v, const TrainState& state, const std::string& config_toml,
                            const std::string& tokenizer_path, const std::vector<float>& precision_state) {
  const std::map<std::string, std::string> meta = {{"format", "attnlab"}, {"step", std::to_string(state.step)}};
  write_safetensors((tmp / "model.safetensors").string(), views(layout, params, ""), meta);
  if (m && v) {
    auto tensors = views(layout, m, "m.");
    auto vt = views(layout, v, "v.");
    tensors.insert(tensors.end(), vt.begin(), vt.end());
    write_safetensors((tmp / "optimizer.safetensors").string(), tensors, meta);
  }
  if (!precision_state.empty())
    write_safetensors((tmp / "precision.safetensors").string(),
                      {TensorView{kPrecisionStateTensor, {static_cast<int64_t>(precision_state.size())},
                                  precision_state.data()}},
                      meta);
  write_text_file(tmp / "config.toml", config_toml);
  if (!tokenizer_path.empty()) write_text_file(tmp / "tokenizer.json", read_text_file(tokenizer_path));
  nlohmann::json files = nlohmann::json::object();
  for (const char* f : kChecksummedFiles)
    if (fs::exists(tmp / f)) files[f] = hash_hex(file_fnv1a64((tmp / f).string()));
  nlohmann::json js = {{"step", state.step},
                       {"tokens_seen", state.tokens_seen},
                       {"best_val_loss", state.best_val_loss},
                       {"last_val_loss", state.last_val_loss},
                       {"files_fnv1a64", files}};
  write_text_file(tmp / "state.json", js.dump(2) + "\n");
  for (const auto& e : fs::directory_iterator(tmp)) fsync_path(e.path());
  fsync_path(tmp);
}

}  // namespace

std::string save_checkpoint(const std::string& out_dir, const ParamLayout& layout, const float* params,
                            const float* m, const float* v, const TrainState& state,
                            const std::string& config_toml, const std::string& tokenizer_path, int keep,
                            const std::vector<float>& precision_state) {
  const fs::path root = fs::path(out_dir) / "checkpoints";
  const std::string name = fmt::format("step_{:06d}", state.step);
  const fs::path final_dir = root / name, tmp = root / (name + ".tmp");
  try {
    fs::create_directories(root);
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    write_checkpoint_files(tmp, layout, params, m, v, state, config_toml, tokenizer_path, precision_state);
  } catch (const std::exception& e) {
    // Disk full, file-size limit...: nothing half-written stays, `latest` still names the last good one.
    std::error_code ec;
    fs::remove_all(tmp, ec);
    const auto* fe = dynamic_cast<const fs::filesystem_error*>(&e);
    fail("{}; removed the partial {}, the previous checkpoint stays ({})",
         fe ? write_failure(fe->path1().string(), fe->code().value()) : std::string(e.what()), tmp.string(),
         latest_name(root).empty() ? std::string("none") : latest_name(root));
  }

  // Replace an older checkpoint of the same step (a rerun) only after the new one is complete.
  if (fs::exists(final_dir)) {
    const fs::path old = root / (name + ".old");
    fs::remove_all(old);
    fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp, final_dir);
  }
  fsync_path(root);
  write_text_file(root / "latest.tmp", name + "\n");
  fsync_path(root / "latest.tmp");
  fs::rename(root / "latest.tmp", root / "latest");
  fsync_path(root);

  // Keep the `keep` newest complete checkpoints.
  const std::vector<std::string> all = list_checkpoints(out_dir);
  // (renamed to *.old first: a kill in the middle of remove_all leaves no half-deleted step_N,
  // and the next start removes the *.old)
  for (size_t i = static_cast<size_t>(keep); i < all.size(); ++i) {
    if (all[i] == final_dir.string()) continue;
    fs::rename(all[i], all[i] + ".old");
    fs::remove_all(all[i] + ".old");
  }
  return final_dir.string();
}

std::vector<std::string> list_checkpoints(const std::string& out_dir) {
  std::vector<std::string> all;
  const fs::path root = fs::path(out_dir) / "checkpoints";
  if (!fs::is_directory(root)) return all;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("step_", 0) == 0 && n.find('.') == std::string::npos)
      all.push_back(e.path().string());
  }
  std::sort(all.rbegin(), all.rend());
  return all;
}

std::vector<std::string> remove_interrupted_writes(const std::string& out_dir) {
  std::vector<std::string> removed;
  const fs::path run(out_dir);
  for (const fs::path& root : {run, run / "checkpoints", run / "best", run / "best" / "checkpoints"}) {
    if (!fs::is_directory(root)) continue;
    for (const auto& e : fs::directory_iterator(root)) {
      const std::string n = e.path().filename().string();
      const auto ends = [&](const std::string& suffix) {
        return n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
      };
      if (ends(".tmp") || ends(".old")) removed.push_back(e.path().string());
    }
  }
  for (const std::string& p : removed) fs::remove_all(p);
  return removed;
}

std::string verify_checkpoint(const std::string& ckpt_dir) {
  const fs::path dir(ckpt_dir);
  try {
    ATTN_CHECK(fs::exists(dir / "model.safetensors"), "no model.safetensors");
    ATTN_CHECK(fs::exists(dir / "state.json"), "no state.json");
    const auto js = nlohmann::json::parse(read_text_file(dir / "state.json"));
    if (!js.contains("files_fnv1a64")) return "";  // an older checkpoint: nothing recorded to compare
    for (const auto& [name, hex] : js.at("files_fnv1a64").items()) {
      ATTN_CHECK(fs::exists(dir / name), "{} is missing", name);
      const std::string now = hash_hex(file_fnv1a64((dir / name).string()));
      ATTN_CHECK(now == hex.get<std::string>(), "{} has checksum {}, state.json recorded {}", name, now,
                 hex.get<std::string>());
    }
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string resolve_checkpoint(const std::string& path) {
  fs::path p(path);
  ATTN_CHECK(fs::exists(p), "checkpoint path '{}' does not exist", path);
  if (fs::exists(p / "model.safetensors")) return p.string();
  for (const fs::path& root : {p / "checkpoints", p}) {
    if (fs::exists(root / "latest")) {
      const fs::path dir = latest_name(root);
      ATTN_CHECK(fs::exists(dir / "model.safetensors"), "'{}' points to '{}', which holds no model.safetensors",
                 (root / "latest").string(), dir.string());
      return dir.string();
    }
  }
  fail("'{}' holds no checkpoint (expected model.safetensors or checkpoints/latest)", path);
}

std::string checkpoint_config_path(const std::string& ckpt_dir) {
  const fs::path p = fs::path(ckpt_dir) / "config.toml";
  ATTN_CHECK(fs::exists(p), "checkpoint '{}' has no config.toml", ckpt_dir);
  return p.string();
}

std::string checkpoint_tokenizer_path(const std::string& ckpt_dir) {
  const fs::path p = fs::path(ckpt_dir) / "tokenizer.json";
  ATTN_CHECK(fs::exists(p), "checkpoint '{}' has no tokenizer.json", ckpt_dir);
  return p.string();
}

CheckpointData load_checkpoint(const std::string& ckpt_dir, const ParamLayout& layout) {
  CheckpointData out;
  out.dir = ckpt_dir;
  const fs::path dir(ckpt_dir);
  const std::string problem = verify_checkpoint(ckpt_dir);
  ATTN_CHECK(problem.empty(), "checkpoint '{}' is corrupt: {}", ckpt_dir, problem);
  const std::string model_path = (dir / "model.safetensors").string();
  fill_from(read_safetensors(model_path), layout, "", model_path, out.params);
  const fs::path opt = dir / "optimizer.safetensors";
  if (fs::exists(opt)) {
    const SafetensorsFile f = read_safetensors(opt.string());
    SafetensorsFile fm, fv;
    for (const auto& [name, t] : f.tensors) (name.rfind("m.", 0) == 0 ? fm : fv).tensors.emplace(name, t);
    fill_from(fm, layout, "m.", opt.string(), out.m);
    fill_from(fv, layout, "v.", opt.string(), out.v);
  }
  const fs::path precision = dir / "precision.safetensors";
  if (fs::exists(precision)) {
    const SafetensorsFile f = read_safetensors(precision.string());
    const auto it = f.tensors.find(kPrecisionStateTensor);
    ATTN_CHECK(it != f.tensors.end() && it->second.shape.size() == 1, "checkpoint '{}' has no 1-D tensor '{}'",
               precision.string(), kPrecisionStateTensor);
    out.precision_state = it->second.data;
  }
  if (fs::exists(dir / "state.json")) {
    try {
      const auto js = nlohmann::json::parse(read_text_file(dir / "state.json"));
      out.state.step = js.at("step").get<int64_t>();
      out.state.tokens_seen = js.value("tokens_seen", int64_t{0});
      out.state.best_val_loss = js.value("best_val_loss", 0.0);
      out.state.last_val_loss = js.value("last_val_loss", 0.0);
    } catch (const std::exception& e) {
      fail("checkpoint '{}': corrupt state.json: {}", ckpt_dir, e.what());
    }
  }
  if (fs::exists(dir / "config.toml")) out.config_toml = read_text_file(dir / "config.toml");
  if (fs::exists(dir / "tokenizer.json")) out.tokenizer_path = (dir / "tokenizer.json").string();
  return out;
}

CheckpointData load_newest_valid_checkpoint(const std::string& out_dir, const ParamLayout& layout,
                                            const std::function<void(const std::string&)>& warn) {
  std::string newest, why;
  try {
    newest = resolve_checkpoint(out_dir);
    return load_checkpoint(newest, layout);
  } catch (const Error& e) {
    why = e.what();
  }
  for (const std::string& dir : list_checkpoints(out_dir)) {
    if (dir == newest) continue;
    try {
      CheckpointData ck = load_checkpoint(dir, layout);
      warn(fmt::format("warning: the newest checkpoint cannot be used ({}); resuming from {} instead", why, dir));
      return ck;
    } catch (const Error&) {
    }
  }
  fail("{}", why);
}

}  // namespace attn
