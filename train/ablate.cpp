#include "train/ablate.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "config/config.h"
#include "core/error.h"
#include "train/plot.h"

namespace fs = std::filesystem;

namespace attn {

namespace {

// One axis of the grid: a dotted config key and the values (TOML text) it takes.
struct GridAxis {
  std::string key;
  std::vector<std::string> values;
};

struct GridSpec {
  int tokens_per_batch = 0;  // 0: keep the config's batch size
  int steps = 10, warmup = 3, vocab_size = 0;
  std::vector<GridAxis> axes;                              // arrays: one value per cell along each axis
  std::vector<std::pair<std::string, std::string>> fixed;  // single values: every cell
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

GridSpec load_grid(const std::string& path) {
  toml::table doc;
  try {
    doc = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    fail("{}: {} (line {})", path, std::string(e.description()), e.source().begin.line);
  }
  GridSpec spec;
  auto get_int = [&](const char* key, int& out) {
    if (const auto* n = doc.get(key)) {
      const auto v = n->value<int64_t>();
      ATTN_CHECK(v.has_value() && *v >= 0, "{}: {} must be a non-negative integer", path, key);
      out = static_cast<int>(*v);
    }
  };
  for (const auto& [k, node] : doc) {
    const std::string key(k.str());
    ATTN_CHECK(key == "grid" || key == "tokens_per_batch" || key == "steps" || key == "warmup" || key == "vocab_size",
               "{}: unknown key '{}' (expected tokens_per_batch, steps, warmup, vocab_size and a [grid] table)", path,
               key);
  }
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

// Runs `exe args...` with stdout and stderr into log_path; returns the wait status.
int run_process(const std::string& exe, const std::vector<std::string>& args, const std::string& log_path) {
  const pid_t pid = fork();
  ATTN_CHECK(pid >= 0, "ablate: cannot start a process for a cell");
  if (pid == 0) {
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(exe.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    ATTN_CHECK(errno == EINTR, "ablate: waiting for a cell's process failed");
  }
  return status;
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

std::string series_name(const AblateCellResult& c) { return c.variant + " " + c.precision; }

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
        md << fmt::format("| {} | {} | {} | {} | {:.0f} | {:.1f} | {:.1f}% | {:.2f} | {:.1f}% | {:.4f} |\n", c.variant,
                          c.seq_len, c.batch, c.precision, c.tokens_per_s, c.step_ms, 100 * c.mfu, c.peak_gib,
                          100 * c.attention_share, c.loss_last);
      } else {
        std::string why = c.status == "oom" ? "OOM" : "error: " + c.error;
        std::replace(why.begin(), why.end(), '|', '/');
        md << fmt::format("| {} | {} | {} | {} | {} | | | | | |\n", c.variant, c.seq_len, c.batch, c.precision, why);
      }
    }
  }
  // Plots over the cells that ran, one series per variant (and precision).
  std::map<std::string, PlotSeries> throughput, memory, scatter;
  std::vector<std::pair<double, double>> mem_tps;
  for (const auto& c : cells) {
    if (c.status != "ok") continue;
    const std::string name = series_name(c);
    throughput[name].name = memory[name].name = scatter[name].name = name;
    throughput[name].points.emplace_back(c.seq_len, c.tokens_per_s);
    memory[name].points.emplace_back(c.seq_len, c.peak_gib);
    scatter[name].points.emplace_back(c.peak_gib, c.tokens_per_s);
    mem_tps.emplace_back(c.peak_gib, c.tokens_per_s);
  }
  auto as_lines = [](std::map<std::string, PlotSeries>& m) {
    std::vector<PlotSeries> out;
    for (auto& [name, s] : m) {
      std::sort(s.points.begin(), s.points.end());
      s.markers = true;
      out.push_back(s);
    }
    return out;
  };
  write_svg_file(
      (dir / "throughput.svg").string(),
      plot_svg(PlotAxes{"throughput vs sequence length", "seq_len (log2)", "tokens/s", true}, as_lines(throughput)));
  write_svg_file(
      (dir / "memory.svg").string(),
      plot_svg(PlotAxes{"peak memory vs sequence length", "seq_len (log2)", "peak GiB", true}, as_lines(memory)));
  // Pareto front: no other cell has both less (or equal) memory and more throughput.
  std::vector<PlotSeries> pareto;
  for (auto& [name, s] : scatter) {
    s.lines = false, s.markers = true;
    pareto.push_back(s);
  }
  std::sort(mem_tps.begin(), mem_tps.end(),
            [](auto a, auto b) { return a.first != b.first ? a.first < b.first : a.second > b.second; });
  PlotSeries front{"Pareto front", "#000000", {}, true, false};
  double best = -1;
  for (auto [m, t] : mem_tps)
    if (t > best) front.points.emplace_back(m, t), best = t;
  pareto.push_back(front);
  write_svg_file(
      (dir / "pareto.svg").string(),
      plot_svg(PlotAxes{"memory vs throughput (Pareto front in black)", "peak GiB", "tokens/s", false}, pareto));
}

}  // namespace

std::vector<AblateCellResult> run_ablation(const AblateOptions& opts) {
  const Config base = load_config(opts.config_path);  // a broken base config stops before any cell
  const GridSpec spec = load_grid(opts.grid_path);
  const fs::path dir(opts.out_dir), cells_dir = dir / "cells";
  fs::create_directories(cells_dir);

  // The cells: the cartesian product of the axes, the first axis varying slowest.
  size_t n_cells = 1;
  for (const auto& a : spec.axes) n_cells *= a.values.size();
  std::vector<AblateCellResult> results;
  for (size_t i = 0; i < n_cells; ++i) {
    std::vector<std::pair<std::string, std::string>> kv = spec.fixed;
    size_t rest = i;
    for (size_t a = spec.axes.size(); a-- > 0;) {
      const GridAxis& axis = spec.axes[a];
      kv.insert(kv.begin() + spec.fixed.size(), {axis.key, axis.values[rest % axis.values.size()]});
      rest /= axis.values.size();
    }
    AblateCellResult r;
    r.name = fmt::format("cell_{:02d}", i);
    r.variant = cell_value(kv, "attention.impl", base.attention.impl);
    r.precision = cell_value(kv, "device.precision", base.device.precision);
    const std::string seq_text = cell_value(kv, "training.seq_len", std::to_string(base.seq_len()));
    r.seq_len = std::atoi(seq_text.c_str());
    if (r.seq_len <= 0) r.seq_len = base.model.block_size;
    r.batch = base.training.batch_size;
    std::string setup_error;
    if (spec.tokens_per_batch > 0) {
      if (spec.tokens_per_batch % r.seq_len != 0)
        setup_error =
            fmt::format("tokens_per_batch {} is not a multiple of seq_len {}", spec.tokens_per_batch, r.seq_len);
      r.batch = spec.tokens_per_batch / r.seq_len;
      kv.emplace_back("training.batch_size", std::to_string(r.batch));
      kv.emplace_back("training.grad_accum", "1");
    }
    const int block = std::atoi(cell_value(kv, "model.block_size", std::to_string(base.model.block_size)).c_str());
    if (r.seq_len > block) kv.emplace_back("model.block_size", std::to_string(r.seq_len));
    for (const auto& [k, v] : kv) r.overrides.push_back(fmt::format("--{}={}", k, v));

    const std::string json_path = (cells_dir / (r.name + ".json")).string();
    const std::string log_path = (cells_dir / (r.name + ".log")).string();
    fs::remove(json_path);
    if (setup_error.empty()) {
      std::vector<std::string> args = {"bench",
                                       "-c",
                                       opts.config_path,
                                       "--steps",
                                       std::to_string(spec.steps),
                                       "--warmup",
                                       std::to_string(spec.warmup),
                                       "--profile",
                                       "--json",
                                       json_path};
      if (spec.vocab_size > 0) args.insert(args.end(), {"--vocab-size", std::to_string(spec.vocab_size)});
      args.insert(args.end(), r.overrides.begin(), r.overrides.end());
      const int status = run_process(opts.executable, args, log_path);
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && fs::exists(json_path)) {
        try {
          std::ifstream in(json_path);
          const nlohmann::json j = nlohmann::json::parse(in);
          r.status = "ok";
          r.variant = j.at("attention").get<std::string>();
          r.precision = j.at("precision").get<std::string>();
          r.seq_len = j.at("seq_len").get<int>(), r.batch = j.at("batch").get<int>();
          r.tokens_per_s = j.at("tokens_per_s").get<double>(), r.step_ms = j.at("step_ms").get<double>();
          r.mfu = j.at("mfu").get<double>();
          r.peak_gib = j.at("peak_bytes").get<double>() / double(1ull << 30);
          r.loss_last = j.at("loss_last").get<double>();
          if (j.contains("profile")) r.attention_share = j["profile"].at("attention_share").get<double>();
        } catch (const std::exception& e) {
          r.status = "error", r.error = fmt::format("unreadable {}: {}", json_path, e.what());
        }
      } else {
        r.error = error_line(log_path, status);
        // our allocator's text; a CUDA library that runs out on its own reports cudaErrorMemoryAllocation
        const bool oom = r.error.find("out of GPU memory") != std::string::npos ||
                         r.error.find("cudaErrorMemoryAllocation") != std::string::npos;
        r.status = oom ? "oom" : "error";
      }
    } else {
      r.status = "error", r.error = setup_error;
    }
    if (!opts.quiet) {
      std::string ov;
      for (const auto& o : r.overrides) ov += " " + o;
      if (r.status == "ok")
        fmt::print("{} [{}/{}]{}: {:.0f} tokens/s, {:.1f} ms/step, peak {:.2f} GiB, attention {:.1f}%\n", r.name, i + 1,
                   n_cells, ov, r.tokens_per_s, r.step_ms, r.peak_gib, 100 * r.attention_share);
      else
        fmt::print("{} [{}/{}]{}: {} ({})\n", r.name, i + 1, n_cells, ov, r.status == "oom" ? "OOM" : "failed",
                   r.error);
      std::fflush(stdout);
    }
    results.push_back(std::move(r));
    write_reports(results, spec, dir);  // a report after every cell: an interrupted sweep keeps what it ran
  }
  return results;
}

}  // namespace attn
