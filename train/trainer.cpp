#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "backend/backend.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/file_io.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/shard_guard.h"
#include "data/tokenizer.h"
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
  o.cuda_graph = cfg.device.cuda_graph;
  o.matmul_autotune = cfg.device.matmul_autotune;
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

namespace {

using Note = std::function<void(const std::string&)>;

LrSchedule lr_schedule(const Config& cfg) {
  return LrSchedule{cfg.optimizer.lr, cfg.schedule.min_lr, cfg.schedule.warmup_iters,
                    cfg.schedule.decay_iters > 0 ? cfg.schedule.decay_iters : cfg.training.max_iters,
                    cfg.schedule.decay == "cosine"};
}

AdamWConfig adamw_config(const Config& cfg) {
  return AdamWConfig{static_cast<float>(cfg.optimizer.beta1), static_cast<float>(cfg.optimizer.beta2),
                     static_cast<float>(cfg.optimizer.eps), static_cast<float>(cfg.optimizer.weight_decay)};
}

// What one optimizer step measured.
struct StepOutcome {
  double loss = 0;           // mean over the global batch when agreed, else this rank's
  float norm = 0;            // global gradient norm (the same on every rank)
  double lr = 0;
  bool agreed = false;       // ranks exchanged loss and stop requests at this step
  bool stop_signal = false;  // SIGINT/SIGTERM on some rank (known only when agreed)
  double seconds = 0;
};

// One call of run_training: the run's state, and the steps it goes through as methods, in the
// order run() calls them. Every rank runs all of them; only rank 0 (root_) logs and writes files.
class TrainingRun {
 public:
  TrainingRun(const Config& cfg, const TrainOptions& opts)
      : cfg_(cfg),
        opts_(opts),
        config_toml_(to_toml(cfg)),
        dp_(opts.dist_env ? *opts.dist_env : detect_dist_env(process_env()), cfg, config_toml_),
        root_(dp_.is_root()),
        log_(!opts.quiet && root_),
        B_(cfg.training.batch_size),
        T_(cfg.seq_len()),
        accum_(cfg.training.grad_accum),
        schedule_(lr_schedule(cfg)),
        adamw_(adamw_config(cfg)),
        seed_(static_cast<uint64_t>(cfg.training.seed)),
        x_(static_cast<size_t>(B_) * T_ * accum_),
        y_(x_.size()) {}

  TrainResult run() {
    open_run_directory();
    load_data();
    build_model();
    restore_or_initialise_weights();
    start_metrics();
    print_summary();
    train_until_done();
    if (!result_.interrupted) {
      if (cfg_.training.max_iters > first_step_ || !opts_.resume) result_.val_loss = evaluate_and_keep_best();
      say(fmt::format("checkpoint {}", save()));
    }
    write_profile();
    // the loss figure once, at the end (a second or two of matplotlib); `attnlab plot RUN` draws it mid-run
    if (root_ && cfg_.logging.plot && cfg_.logging.jsonl) draw_loss_figure(cfg_.training.out_dir);
    result_.step = state_.step;
    result_.val_loss = state_.last_val_loss;
    result_.checkpoint = last_ckpt_;
    result_.seconds = seconds_since(t_start_);
    say(fmt::format("done: step {}, {}, {} total", result_.step, measured(), human_duration(result_.seconds)));
    return result_;
  }

 private:
  void say(const std::string& s) const {
    if (log_) fmt::print("{}\n", s), std::fflush(stdout);
  }
  Note note() const {  // notes and warnings: stderr, even when quiet
    return [root = root_](const std::string& s) {
      if (root) fmt::print(stderr, "{}\n", s);
    };
  }

  // One trainer at a time in out_dir, and nothing left of an interrupted save.
  void open_run_directory() {
    if (!root_) return;
    fs::create_directories(cfg_.training.out_dir);
    lock_.emplace(cfg_.training.out_dir, note());
    for (const std::string& p : remove_interrupted_writes(cfg_.training.out_dir))
      note()(fmt::format("note: removed {}, left by an interrupted write", p));
  }

  // The dataset (rank 0 prepares a missing one while the others wait, so that they never write
  // it at once), its loaders, the shard watch, and the run's record of both.
  void load_data() {
    if (!root_) dp_.sum({});
    data_ = ensure_dataset(cfg_, !log_);
    if (root_) dp_.sum({});
    train_loader_.emplace(data_.train_shards, data_.vocab_size);
    val_loader_.emplace(data_.val_shards, data_.vocab_size);
    std::vector<std::string> all_shards = data_.train_shards;
    all_shards.insert(all_shards.end(), data_.val_shards.begin(), data_.val_shards.end());
    shard_watch_.emplace(all_shards);  // checked at each evaluation and checkpoint
    // The run's tokenizer, copied once at the start; a resumed run must see the data it recorded.
    if (root_)
      tokenizer_ = opts_.resume ? check_run_record(cfg_.training.out_dir, data_, note())
                                : start_run_record(cfg_.training.out_dir, data_);
  }

  void build_model() {
    gpt_ = make_gpt_config(cfg_, data_.vocab_size);
    model_ = make_backend(gpt_, backend_options(cfg_, data_.eot_id, B_, T_));
    dp_.attach(*model_, cfg_);
    const size_t n = model_->layout().total();
    params_.assign(n, 0.0f), m_.assign(n, 0.0f), v_.assign(n, 0.0f);
    tokens_per_step_ = static_cast<int64_t>(B_) * T_ * accum_ * dp_.world_size();
  }

  // --resume: the newest valid checkpoint with its optimizer state; --init-from: other
  // weights, fresh optimizer; else GPT-2's initialisation.
  void restore_or_initialise_weights() {
    const ParamLayout& layout = model_->layout();
    ATTN_CHECK(!(opts_.resume && !opts_.init_from.empty()),
               "--resume and --init-from exclude each other (resume continues this run's own checkpoint)");
    if (opts_.resume) {
      CheckpointData ck = load_newest_valid_checkpoint(cfg_.training.out_dir, layout, note());
      ATTN_CHECK(!ck.m.empty(), "checkpoint '{}' has no optimizer state; cannot resume training from it", ck.dir);
      params_ = std::move(ck.params), m_ = std::move(ck.m), v_ = std::move(ck.v);
      state_ = ck.state;
      model_->set_optimizer_state(m_.data(), v_.data());
      model_->set_precision_state(ck.precision_state);  // fp8: the scales the run would cast with next
      say(fmt::format("resumed from {} at step {}", ck.dir, state_.step));
    } else if (!opts_.init_from.empty()) {
      if (!root_) dp_.sum({});  // rank 0 imports an HF directory first
      params_ = init_weights(opts_.init_from, layout, cfg_, data_.vocab_size, root_);
      if (root_) dp_.sum({});
      say(fmt::format("initialised from {} (fresh optimizer and schedule)", opts_.init_from));
    } else {
      init_gpt2_params(layout, seed_, params_.data());
    }
    model_->set_params(params_.data());
    result_.step = state_.step;
    first_step_ = state_.step;
  }

  void start_metrics() {
    if (!root_) return;
    write_file_atomic((fs::path(cfg_.training.out_dir) / "config.toml").string(), config_toml_, "run config");
    metrics_.emplace(cfg_.training.out_dir, opts_.resume ? state_.step : -1, cfg_.logging.jsonl);
  }

  void print_summary() const {
    const ParamLayout& layout = model_->layout();
    say(fmt::format("model: {} layers, {} heads ({} kv), n_embd {}, vocab {} (padded {}), {:.2f}M parameters; "
                    "backend {} ({}), attention {}",
                    gpt_.n_layer, gpt_.n_head, gpt_.n_kv_head, gpt_.n_embd, gpt_.vocab_size, gpt_.padded_vocab_size,
                    layout.num_parameters() / 1e6, model_->name(), cfg_.device.precision, cfg_.attention.impl));
    say(fmt::format("data: {} train / {} val tokens; {} tokens per step (batch {} x seq {} x accum {} x ranks {})",
                    data_.train_tokens, data_.val_tokens, tokens_per_step_, B_, T_, accum_, dp_.world_size()));
  }

  // The loop: evaluate when due, one step, log, stop (with a checkpoint) when asked, save when due.
  void train_until_done() {
    install_stop_handlers();
    const int64_t max_iters = cfg_.training.max_iters;
    model_->set_profiling(opts_.profile);
    say(fmt::format("training step: {}", model_->train_step_mode()));
    while (state_.step < max_iters) {
      if (cfg_.training.eval_interval > 0 && state_.step % cfg_.training.eval_interval == 0) evaluate_and_keep_best();
      const StepOutcome s = train_step();
      log_step(s);
      const bool stop_here =
          s.stop_signal || (opts_.stop_after >= 0 && state_.step - first_step_ >= opts_.stop_after);
      if (stop_here) {
        result_.interrupted = true;
        const std::string ckpt = save();
        say(fmt::format("stopped at step {} ({}): checkpoint {}; continue with `attnlab train ... --resume`",
                        state_.step, measured(), ckpt));
        return;
      }
      if (cfg_.checkpoint.interval > 0 && state_.step % cfg_.checkpoint.interval == 0 && state_.step < max_iters)
        say(fmt::format("checkpoint {}", save()));
    }
  }

  // One optimizer step: the micro-steps' forward/backward, gradient clipping and AdamW in one
  // Backend::train_step (CUDA: one graph replay), then the ranks' agreement and the finite check.
  // A non-finite step has updated the weights in memory, but the run stops without saving.
  StepOutcome train_step() {
    if (opts_.profile) model_->reset_profile();  // evaluation is not part of the step
    const auto t0 = Clock::now();
    StepOutcome s;
    s.lr = schedule_(state_.step);
    const TrainStepResult r = model_->train_step(step_plan(static_cast<float>(s.lr)));
    s.loss = 0;
    for (float l : r.losses) s.loss += l / accum_;  // (float, as each micro-step always was)
    s.norm = r.norm;
    agree_on_loss_and_stop(s);
    check_finite(s);
    state_.step += 1;
    state_.tokens_seen += tokens_per_step_;
    s.seconds = seconds_since(t0);
    if (opts_.profile) profile_.add_step(model_->profile(), s.seconds * 1e3);
    result_.last_loss = s.loss;
    return s;
  }

  // The step's micro-batches (their gradients summed, scaled by 1/accum, in the model) and AdamW.
  TrainStep step_plan(float lr) {
    TrainStep p;
    const size_t n = static_cast<size_t>(B_) * T_;
    for (int micro = 0; micro < accum_; ++micro) {
      // Data-parallel: this rank's micro-batch of the global batch (data_parallel.h).
      const int global_micro = dp_.global_micro(micro);
      int32_t* x = x_.data() + micro * n;
      int32_t* y = y_.data() + micro * n;
      train_loader_->batch(seed_, state_.step, global_micro, B_, T_, x, y);
      StepContext ctx{seed_, state_.step, global_micro, true};
      ctx.sync_grads = micro == accum_ - 1;  // average over ranks once, after the last micro-step
      p.micro_batches.push_back(Batch{x, y, B_, T_});
      p.contexts.push_back(ctx);
    }
    p.grad_scale = 1.0f / accum_;
    p.adamw = adamw_;
    p.lr = lr;
    p.grad_clip = cfg_.optimizer.grad_clip;
    p.t = state_.step + 1;
    return p;
  }

  // Data-parallel ranks must take the same branches. The step's loss over the global batch and
  // whether any rank was asked to stop are exchanged (a host round trip) only on steps that log,
  // save or end, and every kAgreeEvery steps (how late a stop may come); on the others each rank
  // goes by the gradient norm, which all ranks share (a non-finite loss makes it non-finite),
  // and its own loss is not looked at.
  void agree_on_loss_and_stop(StepOutcome& s) {
    const int64_t next = state_.step + 1;
    s.agreed = !dp_.active() || next % kAgreeEvery == 0 || next % cfg_.training.log_interval == 0 ||
               next == cfg_.training.max_iters ||
               (cfg_.checkpoint.interval > 0 && next % cfg_.checkpoint.interval == 0) ||
               (opts_.stop_after >= 0 && next - first_step_ >= opts_.stop_after);
    s.stop_signal = s.agreed && stop_requested();
    if (dp_.active() && s.agreed) {
      const std::vector<double> agreed = dp_.sum({s.loss, s.stop_signal ? 1.0 : 0.0});
      s.loss = agreed[0] / dp_.world_size(), s.stop_signal = agreed[1] > 0;
    }
  }

  void check_finite(const StepOutcome& s) const {
    if ((!s.agreed || std::isfinite(s.loss)) && std::isfinite(s.norm)) return;
    fail("training loss is {} and the gradient norm {} at step {} (lr {:.3g}); stopping without saving. The last "
         "good checkpoint is {}. Try a lower optimizer.lr or a longer schedule.warmup_iters",
         s.agreed ? fmt::format("{}", s.loss) : std::string("(not exchanged)"), s.norm, state_.step, s.lr,
         last_ckpt_.empty() ? std::string("none") : last_ckpt_);
  }

  // Every log_interval steps (and the last): one metrics line and the progress line, timed
  // over the steps since the previous one.
  void log_step(const StepOutcome& s) {
    window_time_ += s.seconds, window_steps_ += 1;
    const int64_t max_iters = cfg_.training.max_iters;
    if (state_.step % cfg_.training.log_interval != 0 && state_.step != max_iters) return;
    const double step_ms = 1000.0 * window_time_ / window_steps_;
    const double tok_s = tokens_per_step_ * window_steps_ / window_time_;
    const MemoryReport mem = model_->memory();
    if (root_)
      metrics_->write({{"step", state_.step}, {"loss", s.loss}, {"lr", s.lr}, {"grad_norm", s.norm},
                       {"step_ms", step_ms}, {"tokens_per_s", tok_s}, {"tokens_seen", state_.tokens_seen},
                       {"mem_peak_bytes", mem.total_peak}, {"mem_optimizer_bytes", optimizer_bytes(mem)}});
    if (cfg_.logging.progress)
      say(fmt::format("step {:>6}/{} | loss {:.4f} | lr {:.2e} | norm {:.3f} | {:.1f} ms | {:.0f} tok/s | ETA {}",
                      state_.step, max_iters, s.loss, s.lr, s.norm, step_ms, tok_s,
                      human_duration((max_iters - state_.step) * step_ms / 1000.0)));
    window_time_ = 0, window_steps_ = 0;
  }

  // Every rank calls save (ZeRO-1 gathers the moments collectively); rank 0 writes.
  std::string save() {
    shard_watch_->check();
    model_->get_params(params_.data());
    model_->get_optimizer_state(m_.data(), v_.data());
    if (!root_) return std::string();
    last_ckpt_ = save_checkpoint(cfg_.training.out_dir, model_->layout(), params_.data(), m_.data(), v_.data(),
                                 state_, config_toml_, tokenizer_, cfg_.checkpoint.keep, model_->precision_state());
    return last_ckpt_;
  }

  // Validation loss (collective), logged; the best model so far kept in <out_dir>/best.
  double evaluate_and_keep_best() {
    shard_watch_->check();
    const double val = evaluate(*model_, *val_loader_, cfg_, &dp_);
    state_.last_val_loss = val;
    val_step_ = state_.step;
    const bool best = state_.best_val_loss == 0 || val < state_.best_val_loss;
    if (best) state_.best_val_loss = val;
    // Small datasets overfit (nanoGPT's shakespeare_char does by design): keep the best model.
    // (val is the same on every rank, so all of them take this branch: get_params may be
    // collective, e.g. under ZeRO-1 in bf16)
    const bool save_best = best && cfg_.checkpoint.save_best && state_.step > 0;
    if (save_best) model_->get_params(params_.data());
    if (!root_) return val;
    metrics_->write({{"step", state_.step}, {"val_loss", val}});
    say(fmt::format("step {:>6} | val loss {:.4f}{}", state_.step, val, best ? " (best)" : ""));
    if (save_best) {
      save_checkpoint((fs::path(cfg_.training.out_dir) / "best").string(), model_->layout(), params_.data(), nullptr,
                      nullptr, state_, config_toml_, tokenizer_, 1);
    }
    return val;
  }

  void write_profile() const {
    if (!opts_.profile || profile_.steps() == 0 || !root_) return;
    const std::string path = (fs::path(cfg_.training.out_dir) / "profile.json").string();
    profile_.write_json(path);
    say(fmt::format("step profile ({}):\n{}", path, profile_.table()));
  }

  // The last measured losses and their steps, for the closing line.
  std::string measured() const {
    const std::string train = state_.step > first_step_
                                  ? fmt::format("train loss {:.4f} (step {})", result_.last_loss, state_.step)
                                  : std::string("no train step run");
    const std::string val = val_step_ >= 0
                                ? fmt::format("val loss {:.4f} (step {})", state_.last_val_loss, val_step_)
                                : std::string("no val loss measured");
    return train + ", " + val;
  }

  const Config& cfg_;
  const TrainOptions& opts_;
  const Clock::time_point t_start_ = Clock::now();
  const std::string config_toml_;
  DataParallelRun dp_;  // ranks (one process: world size 1, nothing happens)
  const bool root_, log_;
  const int B_, T_, accum_;
  const LrSchedule schedule_;
  const AdamWConfig adamw_;
  const uint64_t seed_;
  std::optional<RunLock> lock_;
  DatasetInfo data_;
  std::optional<DataLoader> train_loader_, val_loader_;
  std::optional<ShardWatch> shard_watch_;
  std::string tokenizer_;
  GPTConfig gpt_;
  std::unique_ptr<Backend> model_;
  int64_t tokens_per_step_ = 0;
  TrainState state_;
  std::vector<float> params_, m_, v_;
  std::optional<MetricsLog> metrics_;
  std::vector<int32_t> x_, y_;  // the step's micro-batches, one after the other
  TrainResult result_;
  std::string last_ckpt_;
  int64_t first_step_ = 0;
  int64_t val_step_ = -1;  // the step of state_.last_val_loss, when measured by this process
  double window_time_ = 0;  // since the last progress line
  int64_t window_steps_ = 0;
  StepProfileReport profile_;
};

}  // namespace

TrainResult run_training(const Config& cfg, const TrainOptions& opts) { return TrainingRun(cfg, opts).run(); }

}  // namespace attn
