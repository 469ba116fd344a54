#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include <fmt/format.h>

#include "backend/backend.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/tokenizer.h"
#include "data/file_io.h"
#include "data/shard_guard.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/figures.h"
#include "train/hf_gpt2.h"
#include "train/metrics.h"
#include "train/profile.h"
#include "train/run_identity.h"
#include "train/run_lock.h"
#include "train/schedule.h"
#include "train/signals.h"

namespace fs = std::filesystem;

namespace attn {

namespace {

using Clock = std::chrono::steady_clock;
// Data-parallel ranks exchange their loss and stop requests at least every this many steps.
constexpr int64_t kAgreeEvery = 10;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string human_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

// The prepared dataset of cfg.data; prepares it first when it is missing and inputs are given.
DatasetInfo ensure_dataset(const Config& cfg, bool quiet) {
  const fs::path meta = fs::path(cfg.data.dir) / "meta.json";
  if (!fs::exists(meta) && !cfg.data.inputs.empty()) {
    PrepareOptions p = prepare_options(cfg.data);
    if (!quiet) fmt::print("preparing dataset {} from {} input path(s)\n", cfg.data.dir, cfg.data.inputs.size());
    return prepare_dataset(p, [&](const std::string& msg) {
      if (!quiet) fmt::print("  {}\n", msg);
    });
  }
  return load_dataset_info(cfg.data.dir);
}

// Bytes of AdamW state this rank holds now (ZeRO-1 shards it: ~1/W; in use rather than
// peak, because the CUDA backend allocates whole moments before data parallelism is enabled).
size_t optimizer_bytes(const MemoryReport& mem) {
  for (const MemoryCategory& c : mem.categories)
    if (c.name == "optimizer") return c.bytes;
  return 0;
}

// The weights of `source` in `layout`: our run/checkpoint directory, or an HF GPT2 directory
// (config.json + model.safetensors), imported first into <out_dir>/init_from. The source must
// have the same model shape and vocabulary; its block size may be larger (wpe is cropped).
std::vector<float> init_weights(const std::string& source, const ParamLayout& layout, const Config& cfg,
                                int vocab_size, bool root) {
  const fs::path src(source);
  std::string dir;
  if (fs::exists(src / "config.json") && fs::exists(src / "model.safetensors")) {
    const std::string imported = (fs::path(cfg.training.out_dir) / "init_from").string();
    if (root) import_hf_gpt2(source, imported, "");
    dir = resolve_checkpoint(imported);
  } else {
    dir = resolve_checkpoint(source);
  }
  const Config src_cfg = load_config(checkpoint_config_path(dir));
  const GPTConfig& g = layout.config();
  const GPTConfig s = make_gpt_config(src_cfg, vocab_size);
  auto same = [&](const char* key, int ours, int theirs) {
    ATTN_CHECK(ours == theirs, "--init-from {}: {} = {} but the model there has {}", source, key, ours, theirs);
  };
  same("model.n_layer", g.n_layer, s.n_layer), same("model.n_head", g.n_head, s.n_head);
  same("model.n_kv_head", g.n_kv_head, s.n_kv_head), same("model.n_embd", g.n_embd, s.n_embd);
  ATTN_CHECK(g.block_size <= s.block_size, "--init-from {}: model.block_size = {} exceeds the model's {} (it can only "
             "be cropped)", source, g.block_size, s.block_size);
  if (fs::exists(fs::path(dir) / "tokenizer.json")) {
    const int src_vocab = load_tokenizer((fs::path(dir) / "tokenizer.json").string())->vocab_size();
    same("the dataset's vocabulary", vocab_size, src_vocab);
  }
  const ParamLayout src_layout(s);
  const CheckpointData ck = load_checkpoint(dir, src_layout);
  std::vector<float> params(layout.total(), 0.0f);
  for (size_t i = 0; i < layout.tensors().size(); ++i) {
    const ParamTensor& to = layout.tensors()[i];
    const ParamTensor& from = src_layout.tensors()[i];
    // Row-major: the first rows of wte (the real vocabulary) and wpe (positions < block_size).
    const size_t n = to.name == "wte" ? static_cast<size_t>(vocab_size) * static_cast<size_t>(to.shape[1]) : to.numel;
    ATTN_CHECK(to.name == from.name && n <= from.numel && (to.name == "wpe" || to.shape == from.shape || to.name == "wte"),
               "--init-from {}: tensor {} does not fit", source, to.name);
    std::copy(ck.params.begin() + static_cast<ptrdiff_t>(from.offset),
              ck.params.begin() + static_cast<ptrdiff_t>(from.offset + n), params.begin() + static_cast<ptrdiff_t>(to.offset));
  }
  return params;
}

}  // namespace

PrepareOptions prepare_options(const DataSection& d) {
  PrepareOptions p;
  p.inputs = d.inputs, p.out_dir = d.dir, p.tokenizer = d.tokenizer, p.vocab_size = d.vocab_size;
  p.val_fraction = d.val_fraction, p.val_split = d.val_split, p.gpt2_vocab = d.gpt2_vocab, p.jsonl_key = d.jsonl_key;
  return p;
}

BackendOptions backend_options(const Config& cfg, int eot_token, int max_batch, int max_seq) {
  BackendOptions o;
  o.device = cfg.device.backend;
  o.precision = cfg.device.precision;
  o.attention = cfg.attention;
  o.attention.eot_token = eot_token;
  o.max_batch = max_batch;
  o.max_seq = max_seq;
  o.threads = cfg.device.threads;
  return o;
}

double evaluate(Backend& model, const DataLoader& loader, const Config& cfg, DataParallelRun* dp) {
  const int B = cfg.training.batch_size, T = cfg.seq_len(), iters = cfg.training.eval_iters;
  const uint64_t seed = mix64(static_cast<uint64_t>(cfg.training.seed) ^ 0xE7A1);
  std::vector<int32_t> x(static_cast<size_t>(B) * T), y(x.size());
  // Data-parallel: rank r evaluates batches r, r + W, ...; the sum over ranks is the same
  // set of batches one process evaluates.
  const int rank = dp ? dp->rank() : 0, world = dp ? dp->world_size() : 1;
  double sum = 0;
  for (int i = rank; i < iters; i += world) {
    loader.batch(seed, i, 0, B, T, x.data(), y.data());
    sum += model.forward_loss(Batch{x.data(), y.data(), B, T});
  }
  if (dp) sum = dp->sum({sum})[0];
  return sum / iters;
}

TrainResult run_training(const Config& cfg, const TrainOptions& opts) {
  const auto t_start = Clock::now();
  // ---- ranks (one process: world size 1, nothing happens) ------------------------------
  const std::string config_toml = to_toml(cfg);
  DataParallelRun dp(opts.dist_env ? *opts.dist_env : detect_dist_env(process_env()), cfg, config_toml);
  const bool root = dp.is_root();  // only rank 0 logs and writes files
  const bool log = !opts.quiet && root;
  auto say = [&](const std::string& s) {
    if (log) fmt::print("{}\n", s), std::fflush(stdout);
  };
  auto note = [&](const std::string& s) {  // notes and warnings: stderr, even when quiet
    if (root) fmt::print(stderr, "{}\n", s);
  };
  const std::string& out_dir = cfg.training.out_dir;

  // ---- the run directory: one trainer at a time, nothing left of an interrupted save ------
  std::optional<RunLock> lock;
  if (root) {
    fs::create_directories(out_dir);
    lock.emplace(out_dir, note);
    for (const std::string& p : remove_interrupted_writes(out_dir))
      note(fmt::format("note: removed {}, left by an interrupted write", p));
  }

  // ---- data -------------------------------------------------------------------
  // Rank 0 prepares a missing dataset while the others wait, so that they never write it at once.
  if (!root) dp.sum({});
  const DatasetInfo data = ensure_dataset(cfg, !log);
  if (root) dp.sum({});
  const int B = cfg.training.batch_size, T = cfg.seq_len(), accum = cfg.training.grad_accum;
  DataLoader train_loader(data.train_shards, data.vocab_size);
  DataLoader val_loader(data.val_shards, data.vocab_size);
  std::vector<std::string> all_shards = data.train_shards;
  all_shards.insert(all_shards.end(), data.val_shards.begin(), data.val_shards.end());
  const ShardWatch shard_watch(all_shards);  // checked at each evaluation and checkpoint
  // The run's tokenizer, copied once at the start; a resumed run must see the data it recorded.
  std::string tokenizer;
  if (root) tokenizer = opts.resume ? check_run_record(out_dir, data, note) : start_run_record(out_dir, data);

  // ---- model ----------------------------------------------------------------------
  const GPTConfig gpt = make_gpt_config(cfg, data.vocab_size);
  std::unique_ptr<Backend> model = make_backend(gpt, backend_options(cfg, data.eot_id, B, T));
  dp.attach(*model, cfg);
  const ParamLayout& layout = model->layout();

  TrainState state;
  std::vector<float> params(layout.total()), m(layout.total()), v(layout.total());
  ATTN_CHECK(!(opts.resume && !opts.init_from.empty()),
             "--resume and --init-from exclude each other (resume continues this run's own checkpoint)");
  if (opts.resume) {
    CheckpointData ck = load_newest_valid_checkpoint(out_dir, layout, note);
    const std::string& dir = ck.dir;
    ATTN_CHECK(!ck.m.empty(), "checkpoint '{}' has no optimizer state; cannot resume training from it", dir);
    params = std::move(ck.params), m = std::move(ck.m), v = std::move(ck.v);
    state = ck.state;
    model->set_optimizer_state(m.data(), v.data());
    say(fmt::format("resumed from {} at step {}", dir, state.step));
  } else if (!opts.init_from.empty()) {
    if (!root) dp.sum({});  // rank 0 imports an HF directory first
    params = init_weights(opts.init_from, layout, cfg, data.vocab_size, root);
    if (root) dp.sum({});
    say(fmt::format("initialised from {} (fresh optimizer and schedule)", opts.init_from));
  } else {
    init_gpt2_params(layout, static_cast<uint64_t>(cfg.training.seed), params.data());
  }
  model->set_params(params.data());
  std::optional<MetricsLog> metrics;
  if (root) {
    write_file_atomic((fs::path(out_dir) / "config.toml").string(), config_toml, "run config");
    metrics.emplace(cfg.training.out_dir, opts.resume ? state.step : -1, cfg.logging.jsonl);
  }

  const LrSchedule schedule{cfg.optimizer.lr, cfg.schedule.min_lr, cfg.schedule.warmup_iters,
                            cfg.schedule.decay_iters > 0 ? cfg.schedule.decay_iters : cfg.training.max_iters,
                            cfg.schedule.decay == "cosine"};
  const AdamWConfig adamw{static_cast<float>(cfg.optimizer.beta1), static_cast<float>(cfg.optimizer.beta2),
                          static_cast<float>(cfg.optimizer.eps), static_cast<float>(cfg.optimizer.weight_decay)};
  const uint64_t seed = static_cast<uint64_t>(cfg.training.seed);
  const int64_t tokens_per_step = static_cast<int64_t>(B) * T * accum * dp.world_size();
  say(fmt::format("model: {} layers, {} heads ({} kv), n_embd {}, vocab {} (padded {}), {:.2f}M parameters; "
                  "backend {} ({}), attention {}",
                  gpt.n_layer, gpt.n_head, gpt.n_kv_head, gpt.n_embd, gpt.vocab_size, gpt.padded_vocab_size,
                  layout.num_parameters() / 1e6, model->name(), cfg.device.precision, cfg.attention.impl));
  say(fmt::format("data: {} train / {} val tokens; {} tokens per step (batch {} x seq {} x accum {} x ranks {})",
                  data.train_tokens, data.val_tokens, tokens_per_step, B, T, accum, dp.world_size()));

  std::vector<int32_t> x(static_cast<size_t>(B) * T), y(x.size());
  TrainResult result;
  result.step = state.step;
  std::string last_ckpt;
  int64_t val_step = -1;  // the step of state.last_val_loss, when measured by this process
  // Every rank calls save (ZeRO-1 gathers the moments collectively); rank 0 writes.
  auto save = [&]() {
    shard_watch.check();
    model->get_params(params.data());
    model->get_optimizer_state(m.data(), v.data());
    if (!root) return std::string();
    last_ckpt = save_checkpoint(cfg.training.out_dir, layout, params.data(), m.data(), v.data(), state, config_toml,
                                tokenizer, cfg.checkpoint.keep);
    return last_ckpt;
  };
  auto run_eval = [&]() {
    shard_watch.check();
    const double val = evaluate(*model, val_loader, cfg, &dp);
    state.last_val_loss = val;
    val_step = state.step;
    const bool best = state.best_val_loss == 0 || val < state.best_val_loss;
    if (best) state.best_val_loss = val;
    // Small datasets overfit (nanoGPT's shakespeare_char does by design): keep the best model.
    // (val is the same on every rank, so all of them take this branch: get_params may be
    // collective, e.g. under ZeRO-1 in bf16)
    const bool save_best = best && cfg.checkpoint.save_best && state.step > 0;
    if (save_best) model->get_params(params.data());
    if (!root) return val;
    metrics->write({{"step", state.step}, {"val_loss", val}});
    say(fmt::format("step {:>6} | val loss {:.4f}{}", state.step, val, best ? " (best)" : ""));
    if (save_best) {
      save_checkpoint((fs::path(cfg.training.out_dir) / "best").string(), layout, params.data(), nullptr, nullptr,
                      state, config_toml, tokenizer, 1);
    }
    return val;
  };

  // ---- the loop ------------------------------------------------------------------
  install_stop_handlers();
  const int64_t max_iters = cfg.training.max_iters;
  const int64_t first_step = state.step;
  // The last measured losses and their steps, for the closing line.
  auto measured = [&]() {
    const std::string train = state.step > first_step
                                  ? fmt::format("train loss {:.4f} (step {})", result.last_loss, state.step)
                                  : std::string("no train step run");
    const std::string val = val_step >= 0 ? fmt::format("val loss {:.4f} (step {})", state.last_val_loss, val_step)
                                          : std::string("no val loss measured");
    return train + ", " + val;
  };
  double window_time = 0;
  int64_t window_steps = 0;
  StepProfileReport profile;
  model->set_profiling(opts.profile);
  while (state.step < max_iters) {
    if (cfg.training.eval_interval > 0 && state.step % cfg.training.eval_interval == 0) run_eval();

    if (opts.profile) model->reset_profile();  // evaluation is not part of the step
    const auto t0 = Clock::now();
    const double lr = schedule(state.step);
    model->zero_grad();
    double loss = 0;
    for (int micro = 0; micro < accum; ++micro) {
      // Data-parallel: this rank's micro-batch of the global batch (data_parallel.h).
      const int global_micro = dp.global_micro(micro);
      train_loader.batch(seed, state.step, global_micro, B, T, x.data(), y.data());
      StepContext ctx{seed, state.step, global_micro, true};
      ctx.sync_grads = micro == accum - 1;  // average over ranks once, after the last micro-step
      loss += model->forward_backward(Batch{x.data(), y.data(), B, T}, 1.0f / accum, ctx) / accum;
    }
    // Data-parallel ranks must take the same branches below. The step's loss over the global
    // batch and whether any rank was asked to stop are exchanged (a host round trip) only on
    // steps that log, save or end, and every kAgreeEvery steps (how late a stop may come); on
    // the others each rank goes by the gradient norm, which all ranks share (a non-finite loss
    // makes it non-finite), and its own loss is not looked at.
    const int64_t next = state.step + 1;
    const bool agree = !dp.active() || next % kAgreeEvery == 0 || next % cfg.training.log_interval == 0 ||
                       next == max_iters || (cfg.checkpoint.interval > 0 && next % cfg.checkpoint.interval == 0) ||
                       (opts.stop_after >= 0 && next - first_step >= opts.stop_after);
    bool stop_signal = agree && stop_requested();
    if (dp.active() && agree) {
      const std::vector<double> agreed = dp.sum({loss, stop_signal ? 1.0 : 0.0});
      loss = agreed[0] / dp.world_size(), stop_signal = agreed[1] > 0;
    }
    const float norm = model->grad_norm();
    if ((agree && !std::isfinite(loss)) || !std::isfinite(norm)) {
      fail("training loss is {} and the gradient norm {} at step {} (lr {:.3g}); stopping without saving. The last "
           "good checkpoint is {}. Try a lower optimizer.lr or a longer schedule.warmup_iters",
           agree ? fmt::format("{}", loss) : std::string("(not exchanged)"), norm, state.step, lr,
           last_ckpt.empty() ? std::string("none") : last_ckpt);
    }
    const float clip = cfg.optimizer.grad_clip > 0 && norm > cfg.optimizer.grad_clip
                           ? static_cast<float>(cfg.optimizer.grad_clip / norm)
                           : 1.0f;
    model->adamw_step(adamw, static_cast<float>(lr), clip, state.step + 1);
    state.step += 1;
    state.tokens_seen += tokens_per_step;
    const double dt = seconds_since(t0);
    window_time += dt, window_steps += 1;
    if (opts.profile) profile.add_step(model->profile(), dt * 1e3);
    result.last_loss = loss;

    if (state.step % cfg.training.log_interval == 0 || state.step == max_iters) {
      const double step_ms = 1000.0 * window_time / window_steps;
      const double tok_s = tokens_per_step * window_steps / window_time;
      const MemoryReport mem = model->memory();
      if (root) metrics->write({{"step", state.step}, {"loss", loss}, {"lr", lr}, {"grad_norm", norm},
                     {"step_ms", step_ms}, {"tokens_per_s", tok_s}, {"tokens_seen", state.tokens_seen},
                     {"mem_peak_bytes", mem.total_peak}, {"mem_optimizer_bytes", optimizer_bytes(mem)}});
      if (cfg.logging.progress)
        say(fmt::format("step {:>6}/{} | loss {:.4f} | lr {:.2e} | norm {:.3f} | {:.1f} ms | {:.0f} tok/s | ETA {}",
                      state.step, max_iters, loss, lr, norm, step_ms, tok_s,
                      human_duration((max_iters - state.step) * step_ms / 1000.0)));
      window_time = 0, window_steps = 0;
    }
    const bool stop_here = stop_signal || (opts.stop_after >= 0 && state.step - first_step >= opts.stop_after);
    if (stop_here) {
      result.interrupted = true;
      const std::string ckpt = save();
      say(fmt::format("stopped at step {} ({}): checkpoint {}; continue with `attnlab train ... --resume`",
                      state.step, measured(), ckpt));
      break;
    }
    if (cfg.checkpoint.interval > 0 && state.step % cfg.checkpoint.interval == 0 && state.step < max_iters)
      say(fmt::format("checkpoint {}", save()));
  }

  if (!result.interrupted) {
    if (max_iters > first_step || !opts.resume) result.val_loss = run_eval();
    say(fmt::format("checkpoint {}", save()));
  }
  if (opts.profile && profile.steps() > 0 && root) {
    const std::string path = (fs::path(cfg.training.out_dir) / "profile.json").string();
    profile.write_json(path);
    say(fmt::format("step profile ({}):\n{}", path, profile.table()));
  }
  // the loss figure once, at the end (a second or two of matplotlib); `attnlab plot RUN` draws it mid-run
  if (root && cfg.logging.plot && cfg.logging.jsonl) draw_loss_figure(cfg.training.out_dir);
  result.step = state.step;
  result.val_loss = state.last_val_loss;
  result.checkpoint = last_ckpt;
  result.seconds = seconds_since(t_start);
  say(fmt::format("done: step {}, {}, {} total", result.step, measured(), human_duration(result.seconds)));
  return result;
}

}  // namespace attn
