#include "train/figures.h"

#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "config/config.h"
#include "core/error.h"
#include "train/subprocess.h"

namespace fs = std::filesystem;

namespace attn {

namespace {

// plot.py's exit codes (its docstring)
constexpr int kDrawn = 0, kMissingMatplotlib = 3, kNothingToDraw = 4, kCannotExec = 127;

std::vector<std::string> interpreters() {
  if (const char* p = std::getenv("ATTN_PYTHON"); p != nullptr && *p != '\0') return {p};
  std::vector<std::string> out;
  if (fs::exists("/usr/bin/python3")) out.push_back("/usr/bin/python3");
  out.push_back("python3");
  return out;
}

void warn(FigureStatus s, const std::string& data_file) {
  static std::atomic<bool> warned_matplotlib{false};
  if (s == FigureStatus::drawn || s == FigureStatus::nothing_to_draw) return;
  if (s == FigureStatus::no_matplotlib && warned_matplotlib.exchange(true)) return;
  fmt::print(stderr, "warning: {}\n", figure_status_text(s, data_file));
}

}  // namespace

std::string figure_status_text(FigureStatus s, const std::string& data_file) {
  switch (s) {
    case FigureStatus::drawn: return "drawn";
    case FigureStatus::nothing_to_draw: return fmt::format("no figure: {} has nothing to draw yet", data_file);
    case FigureStatus::no_matplotlib:
      return fs::exists(plot_script())
                 ? fmt::format("figures skipped: no python3 with matplotlib (install python3-matplotlib or set "
                               "ATTN_PYTHON); the data is in {}",
                               data_file)
                 : fmt::format("figures skipped: {} is missing (it is copied there by the build); the data is in {}",
                               plot_script().string(), data_file);
    case FigureStatus::failed: break;
  }
  return fmt::format("figures failed: {} ended with an error (above); the data is in {}", plot_script().string(),
                     data_file);
}

std::filesystem::path plot_script() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path("plot.py") : exe.parent_path() / "plot.py";
}

FigureStatus run_plot_script(const std::vector<std::string>& args) {
  const fs::path script = plot_script();
  if (!fs::exists(script)) return FigureStatus::no_matplotlib;
  std::vector<std::string> argv = {script.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  for (const std::string& python : interpreters()) {
    const int status = run_process(python, argv);
    if (!WIFEXITED(status)) return FigureStatus::failed;
    const int code = WEXITSTATUS(status);
    if (code == kMissingMatplotlib || code == kCannotExec) continue;  // try the next interpreter
    if (code == kDrawn) return FigureStatus::drawn;
    return code == kNothingToDraw ? FigureStatus::nothing_to_draw : FigureStatus::failed;
  }
  return FigureStatus::no_matplotlib;
}

FigureStatus draw_result_figures(const std::string& kind, const std::string& dir) {
  const FigureStatus s = run_plot_script({kind, dir});
  warn(s, (fs::path(dir) / "results.csv").string());
  return s;
}

FigureStatus draw_loss_figure(const std::string& run_dir) {
  const fs::path dir(run_dir);
  const FigureStatus s = run_plot_script({"loss", "--out", (dir / "loss.png").string(), "--title",
                                          dir.filename().string(), "--run", (dir / "metrics.jsonl").string(),
                                          "train and val loss"});
  warn(s, (dir / "metrics.jsonl").string());
  return s;
}

std::vector<std::string> run_labels(const std::vector<std::string>& run_dirs) {
  std::vector<std::vector<std::pair<std::string, std::string>>> values;
  for (const auto& d : run_dirs) {
    const fs::path toml = fs::path(d) / "config.toml";
    ATTN_CHECK(fs::exists(toml), "plot: {} has no config.toml (give training.out_dir of a run)", d);
    values.push_back(config_values(load_config(toml.string())));
  }
  std::vector<std::string> differing;  // keys in schema order
  for (size_t k = 0; k < values.front().size(); ++k) {
    const std::string& key = values.front()[k].first;
    if (key == "training.out_dir") continue;
    for (const auto& v : values)
      if (v[k].second != values.front()[k].second) {
        differing.push_back(key);
        break;
      }
  }
  std::vector<std::string> labels;
  for (size_t r = 0; r < run_dirs.size(); ++r) {
    std::string name = fs::path(run_dirs[r]).lexically_normal().filename().string();
    if (name.empty()) name = fs::path(run_dirs[r]).lexically_normal().parent_path().filename().string();
    std::string diff;
    size_t shown = 0;
    for (const auto& [key, value] : values[r]) {
      if (std::find(differing.begin(), differing.end(), key) == differing.end()) continue;
      if (shown++ == 3) break;
      diff += fmt::format("{}{}={}", diff.empty() ? "" : ", ", key, value.empty() ? "\"\"" : value);
    }
    if (differing.size() > 3) diff += fmt::format(" (+{} more)", differing.size() - 3);
    labels.push_back(diff.empty() ? name : name + ": " + diff);
  }
  return labels;
}

void plot_runs(const std::vector<std::string>& run_dirs, const std::string& out_png, const std::string& x) {
  ATTN_CHECK(!run_dirs.empty(), "plot: give at least one run directory");
  ATTN_CHECK(x == "step" || x == "tokens", "plot: --x must be step or tokens (got '{}')", x);
  const fs::path folder = fs::absolute(out_png).parent_path();
  ATTN_CHECK(fs::is_directory(folder), "plot: the folder of --out {} does not exist", out_png);
  const std::vector<std::string> labels = run_labels(run_dirs);
  std::vector<std::string> args = {"loss", "--out", out_png, "--x", x, "--title",
                                   run_dirs.size() == 1 ? "loss" : "loss of " + std::to_string(run_dirs.size()) + " runs"};
  for (size_t r = 0; r < run_dirs.size(); ++r) {
    const fs::path metrics = fs::path(run_dirs[r]) / "metrics.jsonl";
    ATTN_CHECK(fs::exists(metrics), "plot: {} has no metrics.jsonl (logging.jsonl = false, or not a run)", run_dirs[r]);
    args.insert(args.end(), {"--run", metrics.string(), labels[r]});
  }
  const FigureStatus s = run_plot_script(args);
  ATTN_CHECK(s == FigureStatus::drawn, "plot: {}", figure_status_text(s, "metrics.jsonl"));
}

}  // namespace attn
