// `attnlab ablate`: a grid of step benchmarks (attention variant x sequence length x
// precision x ...), one separate `attnlab bench` process per cell so that each cell's
// memory figures start from a clean device, and a report of the sweep: results.csv and
// results.md after every cell; env.json (where it ran, the command) first; at the end the
// figures throughput.png, memory.png (each with its ratio to the first variant) and pareto.png
// (scripts/plot.py, train/figures.h) and the page report.html (train/report.h).
//
// The grid file (TOML):
//   tokens_per_batch = 16384   # optional: batch = tokens_per_batch / seq_len, grad_accum = 1
//   steps = 10                 # timed steps per cell
//   warmup = 3
//   vocab_size = 50257         # optional: vocabulary of the synthetic tokens
//   [grid]
//   attention.impl = ["naive", "flash"]   # an array: an axis
//   training.seq_len = [1024, 2048]
//   device.precision = "bf16"             # a single value: applied to every cell
//   [[variant]]                           # optional, repeatable: named variants, an axis of their own
//   name = "flash+window1024"             #   (the row's name; varies slowest)
//   attention.impl = "flash"              #   its overrides (single values)
//   attention.sliding_window = 1024
//   [[torch]]                             # optional, repeatable: a PyTorch peer row at each seq_len:
//   name = "torch.compile+flash"          #   `python torch_script bench --sdpa flash --compile 1 ...`
//   sdpa = "flash"                        #   (python = "python3", torch_script = "scripts/torch_gpt.py"
//   compile = true                        #    at the top level; relative to the working directory)
// A cell whose seq_len exceeds model.block_size also overrides block_size. A cell that runs
// out of GPU memory is recorded as OOM, any other failure with its one-line error; the sweep
// goes on either way. --resume keeps the cells an earlier (interrupted) sweep into the same
// directory measured (ok or OOM, same name, variant, seq_len and precision) and runs the rest.
#pragma once
#include <string>
#include <vector>

namespace attn {

struct AblateOptions {
  std::string config_path;  // the base config (-c)
  std::string grid_path;    // the grid TOML (--grid)
  std::string out_dir;      // results (--out)
  std::string executable;   // the attnlab binary that runs each cell (/proc/self/exe)
  bool quiet = false;
  bool resume = false;      // keep the ok/OOM cells of <out_dir>/results.csv that match this grid
};

struct AblateCellResult {
  std::string name;                    // cell_00, cell_01, ...
  std::vector<std::string> overrides;  // --section.key=value given to the cell
  std::string variant, precision;      // attention.impl and device.precision
  int seq_len = 0, batch = 0;
  std::string status;                  // ok | oom | error
  std::string error;                   // the cell's one-line error (oom and error)
  double tokens_per_s = 0, step_ms = 0, mfu = 0, peak_gib = 0, attention_share = 0, loss_last = 0;
  bool has_profile = false;            // attention_share measured (our cells; not the PyTorch peers)
};

// Runs every cell and writes the report; returns the cells in grid order.
std::vector<AblateCellResult> run_ablation(const AblateOptions& opts);

}  // namespace attn
