// attnlab's figures are drawn by matplotlib: scripts/plot.py reads the data files (metrics.jsonl,
// an ablation's or bench-generate's results.csv), which stay the source of truth, and writes
// PNGs (each with a .plot.json of what it drew). CMake copies plot.py next to the attnlab
// binary, where these functions run it. The interpreter: $ATTN_PYTHON when set, else
// /usr/bin/python3 (Debian's python3-matplotlib), else python3 on PATH.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace attn {

enum class FigureStatus {
  drawn,
  nothing_to_draw,  // no data yet (no finished cell, no loss record)
  no_matplotlib,    // no interpreter with matplotlib, or plot.py not next to the binary
  failed,           // plot.py ran and failed (it printed why)
};

// One line for the statuses that are not `drawn`, naming the data file that stays.
std::string figure_status_text(FigureStatus s, const std::string& data_file);

// plot.py next to the running binary (where these functions look for it).
std::filesystem::path plot_script();

// Runs plot.py with these arguments (its subcommand first).
FigureStatus run_plot_script(const std::vector<std::string>& args);

// Draws the figures where a run, a sweep or a benchmark must not fail for want of them: on a
// status other than drawn / nothing_to_draw prints one "warning: ..." line on stderr (once per
// process for a missing matplotlib) and goes on.
//   kind "ablate": throughput.png, memory.png, pareto.png from dir/results.csv
//   kind "generate": tokens_per_s.png, cache_memory.png from dir/results.csv
FigureStatus draw_result_figures(const std::string& kind, const std::string& dir);
// <run_dir>/loss.png: the run's train and val loss from its metrics.jsonl.
FigureStatus draw_loss_figure(const std::string& run_dir);

// `attnlab plot`: the loss curves of several runs in one figure; x is "step" or "tokens".
// Each run's legend entry names the config keys (its config.toml) whose values differ between
// the runs. Throws attn::Error (missing run files, no matplotlib, nothing to draw).
void plot_runs(const std::vector<std::string>& run_dirs, const std::string& out_png, const std::string& x);

// The legend labels plot_runs uses: "<run dir name>: key=value, ..." (at most 3 keys, then
// "+N more"); training.out_dir is left out; runs that differ in nothing are named by their directory.
std::vector<std::string> run_labels(const std::vector<std::string>& run_dirs);

}  // namespace attn
