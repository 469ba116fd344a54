#include "train/ablate.h"

#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "config/config.h"
#include "core/device.h"
#include "core/error.h"
#include "distributed/devices.h"
#include "train/environment.h"
#include "train/figures.h"
#include "train/report.h"
#include "train/subprocess.h"

namespace fs = std::filesystem;

namespace attn {

namespace {

// One axis of the grid: a dotted config key and the values (TOML text) it takes.
struct GridAxis {
  std::string key;
  std::vector<std::string> values;
};

using Overrides = std::vector<std::pair<std::string, std::string>>;  // (dotted key, TOML value text)

// A named variant ([[variant]]): its overrides apply to every cell of the grid it is crossed with.
struct NamedVariant {
  std::string name;
  Overrides overrides;
};

// A PyTorch peer row ([[torch]]): `python torch_script bench` at each seq_len of the grid.
struct TorchPeer {
  std::string name, sdpa;
  bool compile = false;
  std::string precision = "bf16";  // torch_gpt.py --precision: bf16 (autocast), tf32 or fp32 (TF32 off)
};

struct GridSpec {
  int tokens_per_batch = 0;  // 0: keep the config's batch size
  int steps = 10, warmup = 3, vocab_size = 0;
  std::vector<GridAxis> axes;     // arrays: one value per cell along each axis
  Overrides fixed;                // single values: every cell
  std::vector<NamedVariant> variants;  // empty: the cells have no variant axis
  std::vector<TorchPeer> torch;
  std::string python = "python3", torch_script = "scripts/torch_gpt.py";
};

std::string toml_value_text(const toml::node& n) {
  if (const auto* s = n.as_string()) {
    std::string out = "\"";
    for (char c : s->get()) out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    return out + "\"";
  }
  if (const auto* i = n.as_integer()) return std::to_string(i->get());
  if (const auto* b = n.as_boolean()) return b->get() ? "true" : "false";
  if (const auto* f = n.as_floating_point()) {
    std::string t = fmt::format("{}", f->get());
    if (t.find_first_of(".eEna") == std::string::npos) t += ".0";  // stays a TOML float
    return t;
  }
  fail("grid values must be strings, numbers or booleans");
}

void collect_grid(const toml::table& t, const std::string& prefix, GridSpec& spec, const std::string& path) {
  for (const auto& [k, node] : t) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      collect_grid(*sub, key, spec, path);
    } else if (const auto* arr = node.as_array()) {
      ATTN_CHECK(!arr->empty(), "{}: grid axis {} has no values", path, key);
      GridAxis axis{key, {}};
      for (const auto& v : *arr) axis.values.push_back(toml_value_text(v));
      spec.axes.push_back(std::move(axis));
    } else {
      spec.fixed.emplace_back(key, toml_value_text(node));
    }
  }
}

// An array of tables of the grid file, each with a string `name` (non-empty) and the rest its own
// keys.
std::vector<const toml::table*> named_tables(const toml::table& doc, const char* key, const std::string& path) {
  std::vector<const toml::table*> out;
  if (const auto* n = doc.get(key)) {
    const auto* arr = n->as_array();
    ATTN_CHECK(arr != nullptr && arr->is_array_of_tables(), "{}: {} must be an array of tables ([[{}]])", path, key,
               key);
    for (const auto& t : *arr) {
      const auto* name = t.as_table()->get("name");
      ATTN_CHECK(name != nullptr && name->is_string() && !name->as_string()->get().empty(),
                 "{}: every [[{}]] needs a name = \"...\"", path, key);
      out.push_back(t.as_table());
    }
  }
  return out;
}

// A [[variant]] table: single values (overrides) under a unique name.
NamedVariant read_variant(const toml::table& t, const std::vector<NamedVariant>& earlier, const std::string& path) {
  NamedVariant v{t.get("name")->as_string()->get(), {}};
  for (const auto& o : earlier) ATTN_CHECK(o.name != v.name, "{}: two [[variant]] tables are named '{}'", path, v.name);
  GridSpec own;
  toml::table rest = t;
  rest.erase("name");
  collect_grid(rest, "", own, path);
  ATTN_CHECK(own.axes.empty(), "{}: [[variant]] '{}': {} is an array; a variant sets single values", path, v.name,
             own.axes.empty() ? "" : own.axes.front().key);
  v.overrides = std::move(own.fixed);
  return v;
}

// A [[torch]] table: a PyTorch peer (scripts/torch_gpt.py) with its SDPA backend, compile flag and precision.
TorchPeer read_torch_peer(const toml::table& t, const std::string& path) {
  TorchPeer peer;
  peer.name = t.get("name")->as_string()->get();
  for (const auto& [k, node] : t) {
    const std::string key(k.str());
    if (key == "name") continue;
    if (key == "sdpa" && node.is_string()) {
      peer.sdpa = node.as_string()->get();
    } else if (key == "compile" && node.is_boolean()) {
      peer.compile = node.as_boolean()->get();
    } else if (key == "precision" && node.is_string()) {
      peer.precision = node.as_string()->get();
      ATTN_CHECK(peer.precision == "bf16" || peer.precision == "tf32" || peer.precision == "fp32",
                 "{}: [[torch]] '{}': precision = \"{}\" (expected \"bf16\", \"tf32\" or \"fp32\")", path, peer.name,
                 peer.precision);
    } else {
      fail("{}: [[torch]] '{}': unknown key '{}' (expected name, sdpa = \"flash\"|\"cudnn\"|\"math\"|..., "
           "compile = true|false and precision = \"bf16\"|\"tf32\"|\"fp32\")",
           path, peer.name, key);
    }
  }
  ATTN_CHECK(!peer.sdpa.empty(), "{}: [[torch]] '{}' needs sdpa = \"flash\", \"cudnn\", \"math\", ...", path,
             peer.name);
  return peer;
}

GridSpec load_grid(const std::string& path) {
  toml::table doc;
  try {
    doc = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    fail("{}: {} (line {})", path, std::string(e.description()), e.source().begin.line);
  }
  for (const auto& [k, node] : doc) {
    const std::string key(k.str());
    ATTN_CHECK(key == "grid" || key == "tokens_per_batch" || key == "steps" || key == "warmup" ||
                   key == "vocab_size" || key == "variant" || key == "torch" || key == "python" ||
                   key == "torch_script",
               "{}: unknown key '{}' (expected tokens_per_batch, steps, warmup, vocab_size, python, torch_script, a "
               "[grid] table, [[variant]] and [[torch]] tables)",
               path, key);
  }
  auto get_string = [&](const char* key, std::string& out) {
    if (const auto* n = doc.get(key)) {
      ATTN_CHECK(n->is_string(), "{}: {} must be a string", path, key);
      out = n->as_string()->get();
    }
  };
  auto get_int = [&](const char* key, int& out) {
    if (const auto* n = doc.get(key)) {
      const auto v = n->value<int64_t>();
      ATTN_CHECK(v.has_value() && *v >= 0, "{}: {} must be a non-negative integer", path, key);
      out = static_cast<int>(*v);
    }
  };
  GridSpec spec;
  get_string("python", spec.python);
  get_string("torch_script", spec.torch_script);
  for (const toml::table* t : named_tables(doc, "variant", path))
    spec.variants.push_back(read_variant(*t, spec.variants, path));
  for (const toml::table* t : named_tables(doc, "torch", path)) spec.torch.push_back(read_torch_peer(*t, path));
  get_int("tokens_per_batch", spec.tokens_per_batch);
  get_int("steps", spec.steps);
  get_int("warmup", spec.warmup);
  get_int("vocab_size", spec.vocab_size);
  ATTN_CHECK(spec.steps >= 1, "{}: steps must be >= 1", path);
  const auto* grid = doc["grid"].as_table();
  ATTN_CHECK(grid != nullptr, "{}: no [grid] table", path);
  collect_grid(*grid, "", spec, path);
  return spec;
}

std::string unquoted(std::string v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

// The value a cell gives key: its own override, else the base config's (as text).
std::string cell_value(const std::vector<std::pair<std::string, std::string>>& kv, const std::string& key,
                       const std::string& base) {
  for (auto it = kv.rbegin(); it != kv.rend(); ++it)
    if (it->first == key) return unquoted(it->second);
  return base;
}

// The cell's one-line error: the last "error: " line of its log, else its last line.
std::string error_line(const std::string& log_path, int status) {
  std::ifstream in(log_path);
  std::string last, err;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) last = line;
    if (line.rfind("error: ", 0) == 0) err = line.substr(7);
  }
  if (!err.empty()) return err;
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return last.empty() ? fmt::format("exit status {}", WIFEXITED(status) ? WEXITSTATUS(status) : -1) : last;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

void write_reports(const std::vector<AblateCellResult>& cells, const GridSpec& spec, const fs::path& dir) {
  {
    std::ofstream csv(dir / "results.csv", std::ios::trunc);
    ATTN_CHECK(csv.good(), "cannot write '{}'", (dir / "results.csv").string());
    csv << "cell,variant,seq_len,batch,precision,status,tokens_per_s,step_ms,mfu,peak_gib,attention_share,loss_last,"
           "overrides,error\n";
    for (const auto& c : cells) {
      std::string ov;
      for (const auto& o : c.overrides) ov += (ov.empty() ? "" : " ") + o;
      csv << fmt::format("{},{},{},{},{},{},{:.1f},{:.3f},{:.4f},{:.4f},{:.4f},{:.4f},{},{}\n", c.name,
                         csv_field(c.variant), c.seq_len, c.batch, csv_field(c.precision), c.status, c.tokens_per_s,
                         c.step_ms, c.mfu, c.peak_gib, c.attention_share, c.loss_last, csv_field(ov),
                         csv_field(c.error));
    }
  }
  {
    std::ofstream md(dir / "results.md", std::ios::trunc);
    ATTN_CHECK(md.good(), "cannot write '{}'", (dir / "results.md").string());
    md << fmt::format(
              "| variant | seq_len | batch | precision | tokens/s | step ms | MFU | peak GiB | attention share | "
              "loss after {} steps |\n",
              spec.warmup + spec.steps)
       << "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    for (const auto& c : cells) {
      if (c.status == "ok") {
        const std::string share = c.has_profile ? fmt::format("{:.1f}%", 100 * c.attention_share) : "n/a";
        md << fmt::format("| {} | {} | {} | {} | {:.0f} | {:.1f} | {:.1f}% | {:.2f} | {} | {:.4f} |\n", c.variant,
                          c.seq_len, c.batch, c.precision, c.tokens_per_s, c.step_ms, 100 * c.mfu, c.peak_gib, share,
                          c.loss_last);
      } else {
        std::string why = c.status == "oom" ? "OOM" : "error: " + c.error;
        std::replace(why.begin(), why.end(), '|', '/');
        md << fmt::format("| {} | {} | {} | {} | {} | | | | | |\n", c.variant, c.seq_len, c.batch, c.precision, why);
      }
    }
  }
}

}  // namespace

namespace {

bool is_oom(const std::string& error) {
  // our allocator's text; a CUDA library that runs out on its own reports cudaErrorMemoryAllocation;
  // PyTorch: "torch.OutOfMemoryError: CUDA out of memory"
  return error.find("out of GPU memory") != std::string::npos ||
         error.find("cudaErrorMemoryAllocation") != std::string::npos ||
         error.find("CUDA out of memory") != std::string::npos || error.find("OutOfMemoryError") != std::string::npos;
}

// The last line of a peer's log that is a JSON object (its result), or "".
std::string last_json_line(const std::string& log_path) {
  std::ifstream in(log_path);
  std::string found;
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line.front() == '{') found = line;
  return found;
}

// The seq_len values the grid runs (its training.seq_len axis, else the one fixed value).
std::vector<int> grid_seq_lens(const GridSpec& spec, const Config& base) {
  std::vector<int> out;
  for (const auto& a : spec.axes)
    if (a.key == "training.seq_len")
      for (const auto& v : a.values) out.push_back(std::atoi(unquoted(v).c_str()));
  if (out.empty()) out.push_back(std::atoi(cell_value(spec.fixed, "training.seq_len", std::to_string(base.seq_len())).c_str()));
  for (int& t : out)
    if (t <= 0) t = base.model.block_size;
  return out;
}


// The fields of one results.csv line (write_reports' quoting: "..." with "" for a quote).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') out.back() += '"', ++i;
    else if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) out.emplace_back();
    else out.back() += c;
  }
  return out;
}

// The ok and OOM cells of an earlier sweep's results.csv, by cell name (empty when absent).
std::map<std::string, AblateCellResult> previous_cells(const fs::path& csv_path) {
  std::map<std::string, AblateCellResult> out;
  std::ifstream in(csv_path);
  std::string line;
  if (!std::getline(in, line)) return out;  // header
  while (std::getline(in, line)) {
    const std::vector<std::string> f = csv_fields(line);
    if (f.size() < 14 || (f[5] != "ok" && f[5] != "oom")) continue;
    AblateCellResult r;
    r.name = f[0], r.variant = f[1], r.seq_len = std::atoi(f[2].c_str()), r.batch = std::atoi(f[3].c_str());
    r.precision = f[4], r.status = f[5];
    r.tokens_per_s = std::atof(f[6].c_str()), r.step_ms = std::atof(f[7].c_str()), r.mfu = std::atof(f[8].c_str());
    r.peak_gib = std::atof(f[9].c_str()), r.attention_share = std::atof(f[10].c_str());
    r.loss_last = std::atof(f[11].c_str());
    r.has_profile = r.attention_share > 0;
    for (size_t a = 0, b; a < f[12].size(); a = b + 1) {
      b = f[12].find(' ', a);
      if (b == std::string::npos) b = f[12].size();
      if (b > a) r.overrides.push_back(f[12].substr(a, b - a));
    }
    r.error = f[13];
    out[r.name] = std::move(r);
  }
  return out;
}

}  // namespace

namespace {

// A finished cell's outcome from its process: exit status, then `read` on the result it printed
// or wrote (which may throw: the cell is then an error naming `what`).
template <typename Read>
void record_outcome(AblateCellResult& r, int status, bool result_exists, const std::string& log_path,
                    const std::string& what, Read&& read) {
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && result_exists) {
    try {
      r.status = "ok";
      read();
    } catch (const std::exception& e) {
      r.status = "error", r.error = fmt::format("unreadable {}: {}", what, e.what());
    }
  } else {
    r.error = error_line(log_path, status);
    r.status = is_oom(r.error) ? "oom" : "error";
  }
}

// One `attnlab ablate`: the grid's cells (each named variant crossed with the cartesian product
// of the axes, the variant varying slowest, then the first axis), then the PyTorch peers at each
// seq_len; one process per cell, a report after each.
class Ablation {
 public:
  explicit Ablation(const AblateOptions& opts)
      : opts_(opts),
        base_(load_config(opts.config_path)),  // a broken base config stops before any cell
        spec_(load_grid(opts.grid_path)),
        dir_(opts.out_dir),
        cells_dir_(dir_ / "cells"),
        variants_(spec_.variants.empty() ? std::vector<NamedVariant>(1) : spec_.variants),
        peer_seq_lens_(grid_seq_lens(spec_, base_)),
        previous_(opts.resume ? previous_cells(dir_ / "results.csv") : std::map<std::string, AblateCellResult>{}) {
    for (const auto& a : spec_.axes) per_variant_ *= a.values.size();
    n_grid_ = variants_.size() * per_variant_;
    n_cells_ = n_grid_ + spec_.torch.size() * peer_seq_lens_.size();
  }

  std::vector<AblateCellResult> run() {
    fs::create_directories(cells_dir_);
    write_environment(dir_.string(),
                      resolve_device(cell_value(spec_.fixed, "device.backend", base_.device.backend)));
    for (size_t i = 0; i < n_grid_; ++i) run_grid_cell(i);
    size_t i = n_grid_;
    for (const TorchPeer& peer : spec_.torch)
      for (const int seq : peer_seq_lens_) run_peer_cell(peer, seq, i++);
    // The figures and the page once, at the end (`attnlab report DIR` redraws an interrupted sweep's).
    draw_result_figures("ablate", dir_.string());
    write_report(dir_.string(), false);
    return results_;
  }

 private:
  // The grid's fixed values, then cell i's variant, then its value on each axis.
  Overrides grid_cell_overrides(size_t i) const {
    const NamedVariant& variant = variants_[i / per_variant_];
    Overrides kv = spec_.fixed;
    kv.insert(kv.end(), variant.overrides.begin(), variant.overrides.end());
    const size_t axes_begin = kv.size();
    size_t rest = i % per_variant_;
    for (size_t a = spec_.axes.size(); a-- > 0;) {
      const GridAxis& axis = spec_.axes[a];
      kv.insert(kv.begin() + static_cast<ptrdiff_t>(axes_begin), {axis.key, axis.values[rest % axis.values.size()]});
      rest /= axis.values.size();
    }
    return kv;
  }

  // Cell i's name, variant, precision, length and batch, and its overrides with the batch size
  // set by tokens_per_batch and block_size grown to seq_len; setup_error when it cannot run.
  AblateCellResult describe_grid_cell(size_t i, std::string& setup_error) const {
    const NamedVariant& variant = variants_[i / per_variant_];
    Overrides kv = grid_cell_overrides(i);
    AblateCellResult r;
    r.name = fmt::format("cell_{:02d}", i);
    r.variant = variant.name.empty() ? cell_value(kv, "attention.impl", base_.attention.impl) : variant.name;
    r.precision = cell_value(kv, "device.precision", base_.device.precision);
    const std::string seq_text = cell_value(kv, "training.seq_len", std::to_string(base_.seq_len()));
    r.seq_len = std::atoi(seq_text.c_str());
    if (r.seq_len <= 0) r.seq_len = base_.model.block_size;
    r.batch = base_.training.batch_size;
    if (spec_.tokens_per_batch > 0) {
      if (spec_.tokens_per_batch % r.seq_len != 0)
        setup_error =
            fmt::format("tokens_per_batch {} is not a multiple of seq_len {}", spec_.tokens_per_batch, r.seq_len);
      r.batch = spec_.tokens_per_batch / r.seq_len;
      kv.emplace_back("training.batch_size", std::to_string(r.batch));
      kv.emplace_back("training.grad_accum", "1");
    }
    const int block = std::atoi(cell_value(kv, "model.block_size", std::to_string(base_.model.block_size)).c_str());
    if (r.seq_len > block) kv.emplace_back("model.block_size", std::to_string(r.seq_len));
    for (const auto& [k, v] : kv) r.overrides.push_back(fmt::format("--{}={}", k, v));
    return r;
  }

  void run_grid_cell(size_t i) {
    std::string setup_error;
    AblateCellResult r = describe_grid_cell(i, setup_error);
    if (const AblateCellResult* before = setup_error.empty() ? measured_before(r) : nullptr) {
      AblateCellResult kept = *before;
      report(kept, i);
      return;
    }
    const std::string json_path = (cells_dir_ / (r.name + ".json")).string();
    fs::remove(json_path);
    if (setup_error.empty())
      run_bench(r, json_path, variants_[i / per_variant_].name.empty());
    else
      r.status = "error", r.error = setup_error;
    report(r, i);
  }

  // `attnlab bench` on the cell's overrides; its JSON gives the figures (and, without a named
  // variant, the attention it ran as the variant).
  void run_bench(AblateCellResult& r, const std::string& json_path, bool variant_from_result) const {
    const std::string log_path = (cells_dir_ / (r.name + ".log")).string();
    std::vector<std::string> args = {"bench",  "-c", opts_.config_path, "--steps", std::to_string(spec_.steps),
                                     "--warmup", std::to_string(spec_.warmup), "--profile", "--json", json_path};
    if (spec_.vocab_size > 0) args.insert(args.end(), {"--vocab-size", std::to_string(spec_.vocab_size)});
    args.insert(args.end(), r.overrides.begin(), r.overrides.end());
    const int status = run_process(opts_.executable, args, log_path);
    record_outcome(r, status, fs::exists(json_path), log_path, json_path, [&] {
      std::ifstream in(json_path);
      const nlohmann::json j = nlohmann::json::parse(in);
      if (variant_from_result) r.variant = j.at("attention").get<std::string>();
      r.precision = j.at("precision").get<std::string>();
      r.seq_len = j.at("seq_len").get<int>(), r.batch = j.at("batch").get<int>();
      r.tokens_per_s = j.at("tokens_per_s").get<double>(), r.step_ms = j.at("step_ms").get<double>();
      r.mfu = j.at("mfu").get<double>();
      r.peak_gib = j.at("peak_bytes").get<double>() / double(1ull << 30);
      r.loss_last = j.at("loss_last").get<double>();
      if (j.contains("profile")) {
        r.attention_share = j["profile"].at("attention_share").get<double>();
        r.has_profile = true;
      }
    });
  }

  // A PyTorch peer: the same model shape (the base config with the grid's fixed values) and the
  // same tokens per batch, the peer's precision; its command line is the cell's "overrides".
  AblateCellResult describe_peer_cell(const TorchPeer& peer, int seq, size_t i) const {
    const int peer_vocab = make_gpt_config(base_, spec_.vocab_size > 0 ? spec_.vocab_size : 50257).padded_vocab_size;
    auto model_int = [&](const char* key, int fallback) {
      return std::to_string(std::atoi(cell_value(spec_.fixed, key, std::to_string(fallback)).c_str()));
    };
    AblateCellResult r;
    r.name = fmt::format("cell_{:02d}", i);
    r.variant = peer.name;
    r.precision = peer.precision;
    r.seq_len = seq;
    r.batch = spec_.tokens_per_batch > 0 ? spec_.tokens_per_batch / seq : base_.training.batch_size;
    r.overrides = {spec_.torch_script, "bench", "--sdpa", peer.sdpa, "--compile", peer.compile ? "1" : "0",
                   "--precision", peer.precision,
                   "--batch", std::to_string(r.batch), "--seq", std::to_string(seq),
                   "--vocab", std::to_string(peer_vocab),
                   "--n_layer", model_int("model.n_layer", base_.model.n_layer),
                   "--n_head", model_int("model.n_head", base_.model.n_head),
                   "--n_embd", model_int("model.n_embd", base_.model.n_embd),
                   "--steps", std::to_string(spec_.steps), "--warmup", std::to_string(spec_.warmup)};
    return r;
  }

  void run_peer_cell(const TorchPeer& peer, int seq, size_t i) {
    AblateCellResult r = describe_peer_cell(peer, seq, i);
    if (const AblateCellResult* before = measured_before(r)) {
      AblateCellResult kept = *before;
      report(kept, i);
      return;
    }
    const std::string log_path = (cells_dir_ / (r.name + ".log")).string();
    if (spec_.tokens_per_batch > 0 && spec_.tokens_per_batch % seq != 0) {
      r.status = "error";
      r.error = fmt::format("tokens_per_batch {} is not a multiple of seq_len {}", spec_.tokens_per_batch, seq);
    } else {
      const int status = run_process(spec_.python, r.overrides, log_path);
      const std::string line = last_json_line(log_path);
      record_outcome(r, status, !line.empty(), log_path, "result of " + log_path, [&] {
        const nlohmann::json j = nlohmann::json::parse(line);
        r.tokens_per_s = j.at("tokens_per_s").get<double>(), r.step_ms = j.at("step_ms").get<double>();
        r.mfu = j.value("mfu", 0.0);
        r.peak_gib = j.at("peak_bytes").get<double>() / double(1ull << 30);
        r.loss_last = j.value("loss_last", 0.0);
      });
    }
    report(r, i);
  }

  // The earlier sweep's result for the cell r describes (same name, variant, seq_len, precision).
  const AblateCellResult* measured_before(const AblateCellResult& r) const {
    const auto it = previous_.find(r.name);
    if (it == previous_.end()) return nullptr;
    const AblateCellResult& p = it->second;
    return p.variant == r.variant && p.seq_len == r.seq_len && p.precision == r.precision ? &p : nullptr;
  }

  // One line per cell, then the reports rewritten: an interrupted sweep keeps what it ran.
  void report(AblateCellResult& r, size_t i) {
    if (!opts_.quiet) {
      std::string ov;
      for (const auto& o : r.overrides) ov += " " + o;
      if (r.status == "ok")
        fmt::print("{} [{}/{}] {}{}: {:.0f} tokens/s, {:.1f} ms/step, peak {:.2f} GiB, attention {}\n", r.name, i + 1,
                   n_cells_, r.variant, ov, r.tokens_per_s, r.step_ms, r.peak_gib,
                   r.has_profile ? fmt::format("{:.1f}%", 100 * r.attention_share) : std::string("n/a"));
      else
        fmt::print("{} [{}/{}] {}{}: {} ({})\n", r.name, i + 1, n_cells_, r.variant, ov,
                   r.status == "oom" ? "OOM" : "failed", r.error);
      std::fflush(stdout);
    }
    results_.push_back(std::move(r));
    write_reports(results_, spec_, dir_);
  }

  const AblateOptions& opts_;
  const Config base_;
  const GridSpec spec_;
  const fs::path dir_, cells_dir_;
  const std::vector<NamedVariant> variants_;
  const std::vector<int> peer_seq_lens_;
  const std::map<std::string, AblateCellResult> previous_;
  size_t per_variant_ = 1, n_grid_ = 0, n_cells_ = 0;
  std::vector<AblateCellResult> results_;
};

}  // namespace

std::vector<AblateCellResult> run_ablation(const AblateOptions& opts) { return Ablation(opts).run(); }

}  // namespace attn
