// Training-step benchmark on synthetic tokens: what one optimizer step of a model costs
// on a backend (tokens/s, step time, MFU, peak memory), with no data pipeline in the way.
#pragma once
#include <string>

#include "config/config.h"
#include "nlohmann/json.hpp"

namespace attn {

struct BenchOptions {
  int vocab_size = 50257;  // GPT-2's; padded by model.vocab_pad_to
  int warmup_steps = 3;
  int steps = 20;
  double peak_tflops = 989.0;  // H100 SXM dense bf16, for MFU
  bool profile = false;        // time per operation category (adds "profile" to the JSON)
};

// Runs the benchmark and returns its figures as JSON:
// {tokens_per_s, step_ms, mfu, peak_bytes, memory: {category: peak}, loss_first, loss_last, ...}
// and with opts.profile "profile": StepProfileReport::to_json() over the timed steps.
nlohmann::json run_step_benchmark(const Config& cfg, const BenchOptions& opts);

}  // namespace attn
