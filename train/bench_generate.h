// `attnlab bench-generate`: what cached generation costs. A grid of prompt length x new
// tokens x batch x cache precision x n_kv_head on a random-init model of the config's shape
// (n_kv_head replaced per cell) -> tokens/s, ms per token, prefill time, cache bytes
// (allocated and by the formula), peak memory; plus the no-cache baseline (full recompute
// per token). Writes env.json, results.csv, results.md, the figures tokens_per_s.png and
// cache_memory.png (against context length, per precision and head layout) and report.html to out_dir.
// With --profile, each cached cell's last decode steps run under a kernel trace
// (backend/kernel_trace.h): every kernel and copy of the step, what it adds to the step's time and
// the idle gaps, printed and written to decode_profile.md / decode_profile.json.
#pragma once
#include <string>
#include <vector>

#include "backend/kernel_trace.h"
#include "config/config.h"

namespace attn {

struct GenerateBenchOptions {
  std::vector<int> prompt_lens{128}, new_tokens{512}, batches{1, 32}, kv_heads;  // kv_heads empty: the config's
  std::vector<std::string> kv_caches;  // empty: the activation precision
  bool baseline = true;                // also time the no-cache path (first precision, first head layout)
  int vocab_size = 50257;
  std::string out_dir;                 // "" : print only
  double hbm_bytes_per_s = 0;          // the weight-read limit's bandwidth; 0: the device's peak
                                       // (cuda_peak_memory_bytes_per_s), an H100 SXM's 3.35e12 on the CPU
  int profile_steps = 0;               // > 0: trace this many decode steps after the timed ones (CUDA)
  int fc_proj_splits = 0;              // GeneratorOptions::fc_proj_splits (0: the default)
  bool prefill_graph = true;           // GeneratorOptions::prefill_graph
  bool short_heads = true;             // DecodeAttentionTuning::short_heads (process-wide)
  int gemv_carveout_from_batch = 0;    // GeneratorOptions::gemv_carveout_from_batch (0: the default)
};

struct GenerateBenchRow {
  std::string mode;  // "cached" or "no-cache"
  std::string cache;
  int prompt = 0, new_tokens = 0, batch = 0, n_kv_head = 0;
  double prefill_ms = 0, ms_per_step = 0, tokens_per_s = 0, weight_limit_fraction = 0;
  int step_kernels = 0;  // kernels per captured decode step (0: no graph, or the no-cache rows)
  double call_tokens_per_s = 0;  // batch * new_tokens / (prefill + decode steps): generate()'s whole call
  double cache_bytes = 0, cache_formula_bytes = 0, peak_bytes = 0;
  std::string peak_by_category;  // "parameters 237.4, kv_cache 22.5, ... MiB" (each category's own peak)
  StepTrace trace;               // --profile: the decode step kernel by kernel (steps 0: not traced)
};

std::vector<GenerateBenchRow> run_generate_benchmark(const Config& cfg, const GenerateBenchOptions& opts);

}  // namespace attn
