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

}  // namespace

std::string save_checkpoint(const std::string& out_dir, const ParamLayout& layout, const float* params,
                            const float* m, const float* v, const TrainState& state,
                            const std::string& config_toml, const std::string& tokenizer_path, int keep) {
  const fs::path root = fs::path(out_dir) / "checkpoints";
  fs::create_directories(root);
  const std::string name = fmt::format("step_{:06d}", state.step);
  const fs::path final_dir = root / name, tmp = root / (name + ".tmp");
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  const std::map<std::string, std::string> meta = {{"format", "attnlab"}, {"step", std::to_string(state.step)}};
  write_safetensors((tmp / "model.safetensors").string(), views(layout, params, ""), meta);
  if (m && v) {
    auto tensors = views(layout, m, "m.");
    auto vt = views(layout, v, "v.");
    tensors.insert(tensors.end(), vt.begin(), vt.end());
    write_safetensors((tmp / "optimizer.safetensors").string(), tensors, meta);
  }
  nlohmann::json js = {{"step", state.step},
                       {"tokens_seen", state.tokens_seen},
                       {"best_val_loss", state.best_val_loss},
                       {"last_val_loss", state.last_val_loss}};
  write_text_file(tmp / "state.json", js.dump(2) + "\n");
  write_text_file(tmp / "config.toml", config_toml);
  if (!tokenizer_path.empty()) fs::copy_file(tokenizer_path, tmp / "tokenizer.json", fs::copy_options::overwrite_existing);
  for (const auto& e : fs::directory_iterator(tmp)) fsync_path(e.path());
  fsync_path(tmp);

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
  std::vector<fs::path> all;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("step_", 0) == 0 && n.find('.') == std::string::npos) all.push_back(e.path());
  }
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i)
    if (all[i] != final_dir) fs::remove_all(all[i]);
  return final_dir.string();
}

std::string resolve_checkpoint(const std::string& path) {
  fs::path p(path);
  ATTN_CHECK(fs::exists(p), "checkpoint path '{}' does not exist", path);
  if (fs::exists(p / "model.safetensors")) return p.string();
  for (const fs::path& root : {p / "checkpoints", p}) {
    if (fs::exists(root / "latest")) {
      std::string name = read_text_file(root / "latest");
      name.erase(name.find_last_not_of(" \n\r\t") + 1);
      const fs::path dir = root / name;
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

}  // namespace attn
