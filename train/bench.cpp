#include "train/bench.h"
#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "backend/backend.h"
#include "core/rng.h"
#include "train/profile.h"

namespace attn {

nlohmann::json run_step_benchmark(const Config& cfg, const BenchOptions& opts) {
  const GPTConfig gpt = make_gpt_config(cfg, opts.vocab_size);
  const int B = cfg.training.batch_size, T = cfg.seq_len(), accum = cfg.training.grad_accum;
  const BackendOptions bopt = backend_options(cfg, -1, B, T);
  auto model = make_backend(gpt, bopt);
  const ParamLayout& layout = model->layout();
  std::vector<float> params(layout.total());
  init_gpt2_params(layout, static_cast<uint64_t>(cfg.training.seed), params.data());
  model->set_params(params.data());

  // Synthetic data: independent random inputs and targets for every step and micro-batch.
  const size_t n = static_cast<size_t>(B) * T;
  // Every step's random tokens are drawn before the timed loop, as a data loader would have them
  // ready: drawing them inside took 0.16 ms of host time per GPT-2 124M step (2-core build
  // machine), the GPU idle.
  const int total_steps = opts.warmup_steps + opts.steps;
  std::vector<int32_t> x(n * accum * total_steps), y(x.size());
  for (int64_t step = 0; step < total_steps; ++step)
    for (int micro = 0; micro < accum; ++micro) {
      const uint64_t key = stream_key(static_cast<uint64_t>(cfg.training.seed), step, micro);
      const size_t at = (static_cast<size_t>(step) * accum + micro) * n;
      for (size_t i = 0; i < n; ++i) {
        x[at + i] = static_cast<int32_t>(random_u64(key, 2 * i) % opts.vocab_size);
        y[at + i] = static_cast<int32_t>(random_u64(key, 2 * i + 1) % opts.vocab_size);
      }
    }
  TrainStep plan;
  plan.grad_scale = 1.0f / accum;
  plan.adamw = AdamWConfig{0.9f, 0.95f, 1e-8f, 0.1f};
  plan.lr = 1e-4f;
  plan.grad_clip = 1.0;
  std::vector<double> times;
  double loss_first = 0, loss_last = 0;
  StepProfileReport profile;
  model->set_profiling(opts.profile);
  for (int s = 0; s < opts.warmup_steps + opts.steps; ++s) {
    if (opts.profile) model->reset_profile();
    const auto t0 = std::chrono::steady_clock::now();
    plan.micro_batches.clear(), plan.contexts.clear();
    for (int micro = 0; micro < accum; ++micro) {
      const size_t at = (static_cast<size_t>(s) * accum + micro) * n;
      plan.micro_batches.push_back(Batch{x.data() + at, y.data() + at, B, T});
      plan.contexts.push_back(StepContext{1, s, micro, true});
    }
    plan.t = s + 1;
    const TrainStepResult r = model->train_step(plan);  // returns once the step has finished on the device
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double loss = 0;
    for (float l : r.losses) loss += l;
    if (s == 0) loss_first = loss / accum;
    loss_last = loss / accum;
    if (s >= opts.warmup_steps) {
      times.push_back(dt);
      if (opts.profile) profile.add_step(model->profile(), dt * 1e3);
    }
  }
  std::sort(times.begin(), times.end());
  const double step_s = times[times.size() / 2];  // median
  const double tokens = static_cast<double>(B) * T * accum;
  // nanoGPT's estimate: 6N + 12 L H Q T flops per token (attention not halved for causal).
  const double n_params = static_cast<double>(layout.num_parameters() - layout.get(layout.wpe()).numel);
  const double flops_per_token = 6.0 * n_params + 12.0 * gpt.n_layer * gpt.n_head * gpt.head_dim() * T;
  const MemoryReport mem = model->memory();
  nlohmann::json memj = nlohmann::json::object();
  for (const auto& c : mem.categories) memj[c.name] = c.peak;
  nlohmann::json result = {{"backend", model->name()},
          {"train_step", model->train_step_mode()},
          {"precision", cfg.device.precision},
          {"attention", cfg.attention.impl},
          {"batch", B},
          {"seq_len", T},
          {"grad_accum", accum},
          {"params", layout.num_parameters()},
          {"step_ms", step_s * 1e3},
          {"tokens_per_s", tokens / step_s},
          {"mfu", flops_per_token * tokens / step_s / (opts.peak_tflops * 1e12)},
          {"peak_bytes", mem.total_peak},
          {"device_used_bytes", mem.device_used},
          {"memory_peak", memj},
          {"loss_first", loss_first},
          {"loss_last", loss_last}};
  if (opts.profile) result["profile"] = profile.to_json();
  return result;
}

}  // namespace attn
