// attnlab: one program, one subcommand per job.
//
//   attnlab prepare --input FILE_OR_DIR... --out DIR [--tokenizer bpe|char|gpt2] [--vocab-size N] [--gpt2-vocab DIR]
//   attnlab train   -c CONFIG [--resume | --init-from RUN_OR_HF_DIR] [--section.key=value ...]
//   attnlab sample  --checkpoint RUN_OR_CKPT [--prompt TEXT] [--section.key=value ...]
//   attnlab eval    --checkpoint RUN_OR_CKPT [--section.key=value ...]
//   attnlab bench   -c CONFIG [--profile] [--profile-json FILE] [--json FILE] [--section.key=value ...]
//   attnlab ablate  -c CONFIG --grid GRID.toml --out DIR
//   attnlab export-hf CKPT OUT_DIR       (HF transformers GPT2LMHeadModel format)
//   attnlab import-hf HF_DIR OUT_RUN_DIR [--tokenizer FILE]
//   attnlab check   RUN_OR_CKPT          (verifies every checkpoint's checksums)
//   attnlab loss    --checkpoint RUN_OR_CKPT --tokens SHARD [--batch B] [--seq T]
//   attnlab bench-generate -c CONFIG [--batches 1,32] [--prompt-lens 128] [--new-tokens 512] [--kv-cache bf16,int8]
//                          [--kv-heads 12,4,1] [--no-baseline] [--profile[=N]] [--fc-proj-splits S]
//                          [--no-prefill-graph] [--no-short-heads] [--gemv-carveout-from N] [--out DIR]
//   attnlab plot    RUN [RUN...] [--out FILE.png] [--x step|tokens]   (loss curves of runs in one figure)
//   attnlab report  DIR          (report.html of an ablate or bench-generate --out folder)
//
// Every failure the user can cause ends in one line "error: ..." and exit code 1.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "backend/backend.h"
#include "config/config.h"
#include "core/device.h"
#include "core/error.h"
#include "core/precision.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "data/shard_guard.h"
#include "data/tokenizer.h"
#include "distributed/devices.h"
#include "train/ablate.h"
#include "train/bench.h"
#include "train/bench_generate.h"
#include "train/cached_eval.h"
#include "train/checkpoint.h"
#include "train/figures.h"
#include "train/generate.h"
#include "train/hf_gpt2.h"
#include "train/launcher.h"
#include "train/profile.h"
#include "train/report.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace attn;

namespace {

std::vector<std::string> split_list(const std::string& s) {  // "a,b,c" -> {a, b, c}
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t comma; (comma = s.find(',', start)) != std::string::npos; start = comma + 1)
    out.push_back(s.substr(start, comma - start));
  out.push_back(s.substr(start));
  return out;
}

// Arguments CLI11 did not recognise must all be --section.key=value overrides.
std::vector<std::string> overrides_of(const CLI::App* sub) {
  std::vector<std::string> out;
  for (const std::string& a : sub->remaining()) {
    ATTN_CHECK(a.rfind("--", 0) == 0 && a.find('.') != std::string::npos && a.find('=') != std::string::npos,
               "unexpected argument '{}' (overrides look like --section.key=value)", a);
    out.push_back(a);
  }
  return out;
}

// A model restored from a checkpoint, with the config it was trained with.
struct LoadedModel {
  Config cfg;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Backend> backend;
  std::string dir;
  TrainState state;
};

// inference_only: sample/eval never train, so no gradients, optimizer state or fp32 master
// (bf16) on the device (BackendOptions::inference_only).
LoadedModel load_model(const std::string& checkpoint, const std::vector<std::string>& overrides, int max_batch,
                       int max_seq_or_zero, bool inference_only = false) {
  LoadedModel lm;
  lm.dir = resolve_checkpoint(checkpoint);
  lm.cfg = load_config(checkpoint_config_path(lm.dir), overrides);
  lm.tokenizer = load_tokenizer(checkpoint_tokenizer_path(lm.dir));
  const GPTConfig gpt = make_gpt_config(lm.cfg, lm.tokenizer->vocab_size());
  const int max_seq = max_seq_or_zero > 0 ? max_seq_or_zero : gpt.block_size;
  BackendOptions bopt = backend_options(lm.cfg, lm.tokenizer->eot_id(), max_batch, max_seq);
  bopt.inference_only = inference_only;
  const bool on_cpu = resolve_device(bopt.device) == "cpu";
  if (on_cpu && bopt.precision != "fp32") {
    // A checkpoint holds fp32 master weights whatever precision trained it: run them in fp32.
    fmt::print(stderr, "note: the cpu backend runs in fp32 (the run trained in {})\n", bopt.precision);
    bopt.precision = "fp32";
  }
  if (on_cpu) bopt.attention.impl = "naive";  // flash computes the same function; the CPU has the reference
  lm.backend = make_backend(gpt, bopt);
  CheckpointData ck = load_checkpoint(lm.dir, lm.backend->layout());
  lm.backend->set_params(ck.params.data());
  lm.state = ck.state;
  return lm;
}

// Default cache precision: the activation precision the backend runs in.
KVCacheDType default_kv_cache(const LoadedModel& lm, const std::string& requested) {
  if (!requested.empty()) return kv_cache_dtype_from_name(requested);
  const bool on_cpu = lm.backend->name() == "cpu";
  const bool bf16 = activation_dtype(parse_precision(lm.cfg.device.precision).value()) == DType::BF16;
  return !on_cpu && bf16 ? KVCacheDType::BF16 : KVCacheDType::FP32;
}

struct SampleArgs {
  std::vector<std::string> prompts;
  std::string prompt_file, kv_cache;
  bool no_cache = false;
};

// The --prompt texts, then the non-empty lines of --prompt-file.
std::vector<std::string> prompt_texts(const SampleArgs& args) {
  std::vector<std::string> texts = args.prompts;
  if (args.prompt_file.empty()) return texts;
  std::ifstream in(args.prompt_file);
  ATTN_CHECK(in.good(), "--prompt-file {}: cannot open it", args.prompt_file);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) texts.push_back(line);
  ATTN_CHECK(!texts.empty(), "--prompt-file {} has no non-empty line", args.prompt_file);
  return texts;
}

// A prompt's tokens; an empty prompt starts from end-of-text (or a newline, or token 0).
std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, const std::string& text) {
  if (!text.empty()) return tokenizer.encode(text);
  if (tokenizer.eot_id() >= 0) return {tokenizer.eot_id()};
  try {
    return tokenizer.encode("\n");  // nanoGPT's start for character models
  } catch (const Error&) {
    return {0};  // a vocabulary without newline: start from its first token
  }
}

int cmd_sample(const std::string& checkpoint, const std::vector<std::string>& overrides, const SampleArgs& args) {
  std::vector<std::string> texts = prompt_texts(args);
  LoadedModel lm = load_model(checkpoint, overrides, std::max<int>(1, static_cast<int>(texts.size())), 0, true);
  if (texts.size() == 1) lm.cfg.sample.prompt = texts[0];
  const SampleSection& s = lm.cfg.sample;
  if (texts.empty()) texts.push_back(s.prompt);
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& t : texts) prompts.push_back(encode_prompt(*lm.tokenizer, t));
  const int block = lm.backend->layout().config().block_size;
  for (size_t i = 0; i < prompts.size(); ++i)
    if (prompts[i].size() > crop_prompt(prompts[i], block).size())
      fmt::print(stderr, "note: prompt {} has {} tokens; the model sees the last {} (block_size {}), then the context "
                 "slides\n", i + 1, prompts[i].size(), block - 1, block);
  ATTN_CHECK(!args.no_cache || prompts.size() == 1, "--no-cache samples one prompt at a time (got {})", prompts.size());
  const KVCacheDType cache = default_kv_cache(lm, args.kv_cache);
  fmt::print(stderr, "sampling from {} (step {}), {} sample(s) of up to {} tokens per prompt, {}\n", lm.dir,
             lm.state.step, s.num_samples, s.max_new_tokens,
             args.no_cache ? std::string("no cache (full recompute)") : fmt::format("{} KV cache", kv_cache_dtype_name(cache)));
  for (int i = 0; i < s.num_samples; ++i) {
    SamplingOptions opt;
    opt.max_new_tokens = s.max_new_tokens;
    opt.temperature = s.temperature;
    opt.top_k = s.top_k;
    opt.top_p = s.top_p;
    opt.seed = mix64(static_cast<uint64_t>(s.seed) + static_cast<uint64_t>(i));
    opt.stop_token = lm.tokenizer->eot_id();
    auto stream = [&](int, int32_t tok) {
      const int32_t one[1] = {tok};
      fmt::print("{}", lm.tokenizer->decode(one));
      std::fflush(stdout);
    };
    if (prompts.size() == 1) {  // streamed as produced
      fmt::print("{}", texts[0]);
      if (args.no_cache)
        generate(*lm.backend, prompts[0], 1, opt, stream);
      else
        generate_cached(*lm.backend, prompts, opt, cache, stream);
    } else {  // a batch: each sequence printed when all are done
      const auto out = generate_cached(*lm.backend, prompts, opt, cache, nullptr);
      for (size_t b = 0; b < out.size(); ++b)
        fmt::print("{}{}{}", b ? "\n---------------\n" : "", texts[b], lm.tokenizer->decode(out[b]));
    }
    fmt::print("\n---------------\n");
  }
  return 0;
}

int cmd_eval(const std::string& checkpoint, const std::vector<std::string>& overrides, const std::string& split,
             bool cached, const std::string& kv_caches) {
  const Config run_cfg = load_config(checkpoint_config_path(resolve_checkpoint(checkpoint)), overrides);
  LoadedModel lm = load_model(checkpoint, overrides, run_cfg.training.batch_size, run_cfg.seq_len(), true);
  const Config& cfg = lm.cfg;
  const DatasetInfo data = load_dataset_info(cfg.data.dir);
  ATTN_CHECK(data.vocab_size == lm.tokenizer->vocab_size(),
             "dataset {} has vocab {} but the checkpoint's tokenizer has {}", cfg.data.dir, data.vocab_size,
             lm.tokenizer->vocab_size());
  DataLoader loader(split == "train" ? data.train_shards : data.val_shards, data.vocab_size);
  if (cached) return eval_cached(*lm.backend, loader, cfg, kv_caches.empty() ? std::vector<std::string>{
      kv_cache_dtype_name(default_kv_cache(lm, ""))} : split_list(kv_caches), split);
  const double loss = evaluate(*lm.backend, loader, cfg);
  fmt::print("{} loss {:.4f} (perplexity {:.2f}) over {} batches of {}x{} tokens; checkpoint {} (step {})\n", split,
             loss, std::exp(loss), cfg.training.eval_iters, cfg.training.batch_size, cfg.seq_len(), lm.dir,
             lm.state.step);
  return 0;
}

// Mean loss on fixed tokens, for comparisons with other implementations (scripts/hf_generate.py,
// tests/hf_gpt2_reference.py): row b is tokens [b*T, b*T + T] of the shard, inputs its first
// T tokens and targets its last T. Prints one JSON line.
int cmd_loss(const std::string& checkpoint, const std::vector<std::string>& overrides, const std::string& tokens,
             int B, int T) {
  ATTN_CHECK(B > 0 && T > 0, "loss: --batch {} and --seq {} must be positive", B, T);
  LoadedModel lm = load_model(checkpoint, overrides, B, T);
  ATTN_CHECK(T <= lm.backend->layout().config().block_size, "loss: --seq {} exceeds the model's block_size {}", T,
             lm.backend->layout().config().block_size);
  const Shard shard(tokens);
  ATTN_CHECK(shard.vocab_size() <= lm.tokenizer->vocab_size(), "loss: shard '{}' has vocab {} but the model has {}",
             tokens, shard.vocab_size(), lm.tokenizer->vocab_size());
  ATTN_CHECK(shard.size() >= static_cast<int64_t>(B) * T + 1, "loss: shard '{}' has {} tokens, {}x{}+1 are needed",
             tokens, shard.size(), B, T);
  std::vector<int32_t> inputs(static_cast<size_t>(B) * T), targets(inputs.size()), row(T + 1);
  for (int b = 0; b < B; ++b) {
    shard.copy(static_cast<int64_t>(b) * T, T + 1, row.data());
    std::copy(row.begin(), row.end() - 1, inputs.begin() + static_cast<ptrdiff_t>(b) * T);
    std::copy(row.begin() + 1, row.end(), targets.begin() + static_cast<ptrdiff_t>(b) * T);
  }
  Batch batch;
  batch.inputs = inputs.data(), batch.targets = targets.data(), batch.B = B, batch.T = T;
  const double loss = lm.backend->forward_loss(batch);
  const nlohmann::json r = {{"who", "attnlab"}, {"backend", lm.backend->name()}, {"batch", B}, {"seq", T},
                            {"loss", loss}};
  fmt::print("{}\n", r.dump());
  return 0;
}

// Verifies every checkpoint of a run (checkpoints/ and best/), or one checkpoint directory:
// one line each, exit 1 when any is corrupt.
int cmd_check(const std::string& path) {
  std::vector<std::string> dirs;
  if (fs::exists(fs::path(path) / "model.safetensors")) dirs.push_back(path);
  for (const fs::path& run : {fs::path(path), fs::path(path) / "best"})
    for (const std::string& d : list_checkpoints(run.string())) dirs.push_back(d);
  ATTN_CHECK(!dirs.empty(), "check: '{}' holds no checkpoint", path);
  int bad = 0;
  for (const std::string& d : dirs) {
    const std::string problem = verify_checkpoint(d);
    fmt::print("{} {}{}\n", problem.empty() ? "ok     " : "CORRUPT", d, problem.empty() ? "" : ": " + problem);
    bad += !problem.empty();
  }
  ATTN_CHECK(bad == 0, "check: {} of {} checkpoints are corrupt", bad, dirs.size());
  return 0;
}

// Times training steps (run_step_benchmark); prints the JSON line and a summary, writes the
// JSON files asked for.
int cmd_bench(const Config& cfg, BenchOptions opts, const std::string& json_path, const std::string& profile_json) {
  if (!profile_json.empty()) opts.profile = true;
  const nlohmann::json r = run_step_benchmark(cfg, opts);
  fmt::print("{}\n", r.dump());
  fmt::print("bench: {} {} attention={} B={} T={}: {:.0f} tokens/s, {:.1f} ms/step, MFU {:.1f}%, peak {:.2f} GiB; "
             "step: {}\n",
             r["backend"].get<std::string>(), r["precision"].get<std::string>(), r["attention"].get<std::string>(),
             r["batch"].get<int>(), r["seq_len"].get<int>(), r["tokens_per_s"].get<double>(),
             r["step_ms"].get<double>(), 100 * r["mfu"].get<double>(), r["peak_bytes"].get<double>() / (1 << 30),
             r["train_step"].get<std::string>());
  if (opts.profile) fmt::print("{}", format_profile_table(r["profile"]));
  if (!profile_json.empty()) std::ofstream(profile_json) << r["profile"].dump(2) << "\n";
  if (!json_path.empty()) std::ofstream(json_path) << r.dump(2) << "\n";
  return 0;
}

// Runs the grid (one `attnlab bench` process per cell, this executable); fails when no cell ran.
int cmd_ablate(AblateOptions o) {
  o.executable = fs::read_symlink("/proc/self/exe").string();
  const auto cells = run_ablation(o);
  const auto ok = std::count_if(cells.begin(), cells.end(), [](const AblateCellResult& c) { return c.status == "ok"; });
  fmt::print("ablate: {} of {} cells ran; results in {}/results.md\n", ok, cells.size(), o.out_dir);
  ATTN_CHECK(ok > 0, "ablate: none of the {} cells ran (see {}/results.md for each cell's reason)", cells.size(),
             o.out_dir);
  return 0;
}

// ---- the subcommands: each registers its options and returns what runs it ----------------

// A subcommand: its CLI11 node and the call that runs it once the command line is parsed (the
// options are parsed into state the call owns).
struct Subcommand {
  CLI::App* app;
  std::function<int()> run;
};

Subcommand add_prepare(CLI::App& app) {
  struct Args {
    std::vector<std::string> inputs;
    std::string out_dir, tokenizer = "bpe", config, reuse_tokenizer;
    int vocab_size = 4096;
    double val_fraction = 0.1;
    PrepareOptions more = prepare_options(DataSection{});
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("prepare", "tokenize text files or folders into train/val token shards");
  cmd->add_option("-i,--input", a->inputs, "text files or folders (recursive)");
  cmd->add_option("-o,--out", a->out_dir, "output dataset directory");
  cmd->add_option("-t,--tokenizer", a->tokenizer, "bpe, char or gpt2")->check(CLI::IsMember({"bpe", "char", "gpt2"}));
  cmd->add_option("--vocab-size", a->vocab_size, "BPE vocabulary size");
  cmd->add_option("--val-fraction", a->val_fraction, "fraction of tokens held out for validation");
  cmd->add_option("--tokenizer-file", a->reuse_tokenizer, "reuse an existing tokenizer.json instead of training one");
  cmd->add_option("--gpt2-vocab", a->more.gpt2_vocab, "gpt2: folder with encoder.json + vocab.bpe (or tokenizer.json)");
  cmd->add_option("--val-split", a->more.val_split, "auto, documents or tail")
      ->check(CLI::IsMember({"auto", "documents", "tail"}));
  cmd->add_option("--jsonl-key", a->more.jsonl_key, "text field of .jsonl inputs");
  cmd->add_option("--shard-tokens", a->more.shard_tokens, "tokens per shard file");
  cmd->add_option("--threads", a->more.threads, "encoding threads (0: all cores)");
  cmd->add_option("-c,--config", a->config, "take inputs/out/tokenizer from this config's [data] section");
  cmd->allow_extras();
  return {cmd, [cmd, a] {
            Args& x = *a;
            const std::vector<std::string> ov = overrides_of(cmd);
            PrepareOptions p = x.more;
            if (!x.config.empty() || !ov.empty()) {  // the config's [data] section fills what is not given
              const Config cfg = load_config(x.config, ov);
              if (x.inputs.empty()) x.inputs = cfg.data.inputs;
              if (x.out_dir.empty()) x.out_dir = cfg.data.dir;
              const PrepareOptions from_cfg = prepare_options(cfg.data);
              x.tokenizer = cfg.data.tokenizer, x.vocab_size = cfg.data.vocab_size;
              x.val_fraction = cfg.data.val_fraction;
              p.val_split = from_cfg.val_split, p.gpt2_vocab = from_cfg.gpt2_vocab, p.jsonl_key = from_cfg.jsonl_key;
            }
            ATTN_CHECK(!x.inputs.empty(), "prepare: no --input given");
            ATTN_CHECK(!x.out_dir.empty(), "prepare: no --out given");
            p.inputs = x.inputs, p.out_dir = x.out_dir, p.tokenizer = x.tokenizer, p.vocab_size = x.vocab_size;
            p.val_fraction = x.val_fraction, p.tokenizer_path = x.reuse_tokenizer;
            const DatasetInfo info = prepare_dataset(p, [](const std::string& m) { fmt::print("  {}\n", m); });
            fmt::print("prepared {}: {} train / {} val tokens, vocab {}\n", info.dir, info.train_tokens,
                       info.val_tokens, info.vocab_size);
            return 0;
          }};
}

// `command_line`: this process's argv, re-executed once per rank by --nproc.
Subcommand add_train(CLI::App& app, std::vector<std::string> command_line) {
  struct Args {
    std::string config;
    bool resume = false, profile = false;
    std::string init_from;
    int nproc = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("train", "train a model (overrides: --section.key=value)");
  cmd->add_option("-c,--config", a->config, "TOML config file")->required();
  cmd->add_flag("--resume", a->resume, "continue from the run's latest checkpoint");
  cmd->add_option("--init-from", a->init_from, "start from these weights (run, checkpoint or HF GPT2 dir), new optimizer");
  cmd->add_flag("--profile", a->profile, "time per operation category; table at the end, <out_dir>/profile.json");
  auto* nproc = cmd->add_option("--nproc", a->nproc, "data-parallel ranks on this machine (same as --distributed.nproc=N)");
  cmd->allow_extras();
  return {cmd, [cmd, a, nproc, command_line] {
            std::vector<std::string> ov = overrides_of(cmd);
            ATTN_CHECK(nproc->count() == 0 || a->nproc >= 1, "--nproc {}: it must be at least 1", a->nproc);
            if (a->nproc > 0) ov.push_back(fmt::format("--distributed.nproc={}", a->nproc));
            Config cfg = load_config(a->config, ov);
            if (a->resume) {  // the run's own config; the command line may change only what is safe to change
              const std::string out_dir = cfg.training.out_dir;
              cfg = load_resume_config((fs::path(out_dir) / "config.toml").string(), ov);
              cfg.training.out_dir = out_dir;
            }
            check_distributed_request(cfg.distributed, cfg.device.backend, cuda_device_count());
            // Data-parallel on this machine without an external launcher: start the ranks here.
            if (cfg.distributed.nproc > 1 && !launched_as_rank())
              return run_local_ranks(cfg.distributed.nproc, command_line);
            TrainOptions opts;
            opts.resume = a->resume;
            opts.init_from = a->init_from;
            opts.profile = a->profile;
            run_training(cfg, opts);
            return 0;
          }};
}

Subcommand add_sample(CLI::App& app) {
  struct Args {
    std::string checkpoint;
    SampleArgs sample;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("sample", "generate text from a checkpoint");
  cmd->add_option("--checkpoint", a->checkpoint, "run directory or checkpoint directory")->required();
  cmd->add_option("--prompt", a->sample.prompts, "text to continue (repeatable: one sequence each, batched)");
  cmd->add_option("--prompt-file", a->sample.prompt_file, "more prompts, one per line");
  cmd->add_flag("--no-cache", a->sample.no_cache, "recompute the whole context every token (the old baseline)");
  cmd->add_option("--kv-cache", a->sample.kv_cache, "cache precision: bf16, fp8, int8 or fp32 (default: activations')");
  cmd->allow_extras();
  return {cmd, [cmd, a] { return cmd_sample(a->checkpoint, overrides_of(cmd), a->sample); }};
}

Subcommand add_eval(CLI::App& app) {
  struct Args {
    std::string checkpoint, split = "val", kv_cache;
    bool cached = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval", "loss of a checkpoint on its dataset");
  cmd->add_option("--checkpoint", a->checkpoint, "run directory or checkpoint directory")->required();
  cmd->add_option("--split", a->split, "val or train")->check(CLI::IsMember({"val", "train"}));
  cmd->add_flag("--cached", a->cached, "teacher-forced loss through the KV-cache decode path");
  cmd->add_option("--kv-cache", a->kv_cache, "with --cached: cache precision(s), e.g. bf16,int8,fp8");
  cmd->allow_extras();
  return {cmd, [cmd, a] { return cmd_eval(a->checkpoint, overrides_of(cmd), a->split, a->cached, a->kv_cache); }};
}

Subcommand add_bench(CLI::App& app) {
  struct Args {
    std::string config, json, profile_json;
    BenchOptions opts;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench", "time training steps of a config's model on synthetic tokens");
  cmd->add_option("-c,--config", a->config, "TOML config file (model, attention, training, device)");
  cmd->add_option("--vocab-size", a->opts.vocab_size, "vocabulary of the synthetic tokens");
  cmd->add_option("--steps", a->opts.steps, "timed steps (median reported)");
  cmd->add_option("--warmup", a->opts.warmup_steps, "untimed steps first");
  cmd->add_option("--json", a->json, "also write the figures to this JSON file");
  cmd->add_flag("--profile", a->opts.profile, "time per operation category and print the table");
  cmd->add_option("--profile-json", a->profile_json, "write the step profile to this JSON file (implies --profile)");
  cmd->allow_extras();
  return {cmd, [cmd, a] { return cmd_bench(load_config(a->config, overrides_of(cmd)), a->opts, a->json, a->profile_json); }};
}

Subcommand add_ablate(CLI::App& app) {
  auto o = std::make_shared<AblateOptions>();
  auto* cmd = app.add_subcommand("ablate", "benchmark a grid of configs (one process per cell) and report it");
  cmd->add_option("-c,--config", o->config_path, "base TOML config")->required();
  cmd->add_option("--grid", o->grid_path, "grid TOML ([grid] axes, tokens_per_batch, steps, warmup)")->required();
  cmd->add_option("--out", o->out_dir, "output directory (results.csv, results.md, env.json, *.png, report.html)")
      ->required();
  cmd->add_flag("--resume", o->resume, "keep the measured cells of an earlier sweep into --out, run the rest");
  return {cmd, [o] { return cmd_ablate(*o); }};
}

Subcommand add_export_hf(CLI::App& app) {
  auto a = std::make_shared<std::pair<std::string, std::string>>();  // checkpoint, out_dir
  auto* cmd = app.add_subcommand("export-hf", "write a checkpoint as HF transformers' GPT2LMHeadModel");
  cmd->add_option("checkpoint", a->first, "run directory or checkpoint directory")->required();
  cmd->add_option("out_dir", a->second, "output directory (model.safetensors, config.json, ...)")->required();
  return {cmd, [a] {
            const HfExportSummary s = export_hf_gpt2(a->first, a->second);
            fmt::print("exported {} ({} layers, {} heads, n_embd {}, vocab {}, {} positions; {} parameters) to {}\n",
                       resolve_checkpoint(a->first), s.n_layer, s.n_head, s.n_embd, s.vocab_size, s.n_positions,
                       s.num_parameters, a->second);
            return 0;
          }};
}

Subcommand add_import_hf(CLI::App& app) {
  struct Args {
    std::string hf_dir, out_dir, tokenizer;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("import-hf", "read a HF GPT2 model.safetensors + config.json as a checkpoint");
  cmd->add_option("hf_dir", a->hf_dir, "directory with config.json and model.safetensors")->required();
  cmd->add_option("out_dir", a->out_dir, "run directory to write (checkpoints/step_000000)")->required();
  cmd->add_option("--tokenizer", a->tokenizer, "attnlab tokenizer.json (default: HF_DIR/tokenizer.json if ours)");
  return {cmd, [a] {
            const std::string dir = import_hf_gpt2(a->hf_dir, a->out_dir, a->tokenizer);
            fmt::print("imported {} as {}\n", a->hf_dir, dir);
            if (!fs::exists(fs::path(dir) / "tokenizer.json"))
              fmt::print(stderr,
                         "note: no attnlab tokenizer came with it; eval/sample need one (import again with --tokenizer)\n");
            return 0;
          }};
}

Subcommand add_loss(CLI::App& app) {
  struct Args {
    std::string checkpoint, tokens;
    int batch = 4, seq = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("loss", "mean loss of a checkpoint on the first tokens of a shard (JSON line)");
  cmd->add_option("--checkpoint", a->checkpoint, "run directory or checkpoint directory")->required();
  cmd->add_option("--tokens", a->tokens, "token shard (e.g. <data.dir>/val_000.bin)")->required();
  cmd->add_option("--batch", a->batch, "rows");
  cmd->add_option("--seq", a->seq, "tokens per row (default: block_size)");
  cmd->allow_extras();
  return {cmd, [cmd, a] {
            const std::vector<std::string> ov = overrides_of(cmd);
            int seq = a->seq;
            if (seq == 0) seq = load_config(checkpoint_config_path(resolve_checkpoint(a->checkpoint)), ov).model.block_size;
            return cmd_loss(a->checkpoint, ov, a->tokens, a->batch, seq);
          }};
}

Subcommand add_bench_generate(CLI::App& app) {
  struct Args {
    std::string config, caches;
    bool no_baseline = false;
    GenerateBenchOptions opts;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench-generate", "time cached generation over a grid (tokens/s, cache memory)");
  GenerateBenchOptions& o = a->opts;
  cmd->add_option("-c,--config", a->config, "TOML config file (model shape, device)")->required();
  cmd->add_option("--prompt-lens", o.prompt_lens, "prompt lengths")->delimiter(',');
  cmd->add_option("--new-tokens", o.new_tokens, "tokens generated per sequence")->delimiter(',');
  cmd->add_option("--batches", o.batches, "sequences generated together")->delimiter(',');
  cmd->add_option("--kv-heads", o.kv_heads, "n_kv_head values (default: the config's)")->delimiter(',');
  cmd->add_option("--kv-cache", a->caches, "cache precisions, e.g. bf16,fp8,int8 (default: activations')");
  cmd->add_option("--vocab-size", o.vocab_size, "vocabulary of the random-init model");
  cmd->add_option("--hbm-bytes-per-s", o.hbm_bytes_per_s,
                  "memory bandwidth in bytes/s for the weight-read limit (default: the device's peak)");
  cmd->add_flag("--profile{20}", o.profile_steps,
                "trace N decode steps (default 20) after the timed ones, kernel by kernel (CUDA, CUPTI); "
                "tables printed, and decode_profile.md/.json in --out");
  cmd->add_flag("--no-baseline", a->no_baseline, "skip the no-cache (full recompute) rows");
  cmd->add_option("--fc-proj-splits", o.fc_proj_splits,
                  "CUDA, bf16, batches on cuBLASLt: c_proj's K slices summed by the layernorm after it "
                  "(default 6; 1: cuBLASLt's own reduction)");
  cmd->add_flag("--short-heads,!--no-short-heads", o.short_heads,
                "CUDA: short caches' decode attention as one block a head (default; --no-short-heads: the split "
                "kernels)");
  cmd->add_flag("--prefill-graph,!--no-prefill-graph", o.prefill_graph,
                "CUDA: replay a prompt length's prefill as a CUDA graph after its first call (default)");
  cmd->add_option("--gemv-carveout-from", o.gemv_carveout_from_batch,
                  "CUDA, bf16 GEMV decode steps with short caches: from this batch on, the GEMVs take the short-cache "
                  "attention's shared-memory carveout (default 8; 9: never)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--out", o.out_dir, "write results.csv, results.md, env.json, *.png and report.html here");
  cmd->allow_extras();
  return {cmd, [cmd, a] {
            const Config cfg = load_config(a->config, overrides_of(cmd));
            if (!a->caches.empty()) a->opts.kv_caches = split_list(a->caches);
            a->opts.baseline = !a->no_baseline;
            run_generate_benchmark(cfg, a->opts);
            return 0;
          }};
}

Subcommand add_plot(CLI::App& app) {
  struct Args {
    std::vector<std::string> runs;
    std::string out, x = "step";
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("plot", "train and val loss of runs in one figure, labelled by their config differences");
  cmd->add_option("runs", a->runs, "run directories (training.out_dir: config.toml, metrics.jsonl)")->required();
  cmd->add_option("--out", a->out, "PNG to write (default: RUN/loss.png for one run, loss_comparison.png for more)");
  cmd->add_option("--x", a->x, "x axis: step or tokens")->check(CLI::IsMember({"step", "tokens"}));
  return {cmd, [a] {
            std::string out = a->out;
            if (out.empty())
              out = a->runs.size() == 1 ? (fs::path(a->runs[0]) / "loss.png").string() : "loss_comparison.png";
            plot_runs(a->runs, out, a->x);
            fmt::print("plot: {}\n", out);
            return 0;
          }};
}

Subcommand add_report(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("report", "one HTML page (table, figures, environment, command) of a results folder");
  cmd->add_option("dir", *dir, "the --out folder of ablate or bench-generate")->required();
  return {cmd, [dir] {
            fmt::print("report: {}\n", write_report(*dir));
            return 0;
          }};
}

Subcommand add_check(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("check", "verify the checksums of every checkpoint of a run");
  cmd->add_option("run", *path, "run directory or checkpoint directory")->required();
  return {cmd, [path] { return cmd_check(*path); }};
}

// Parses the command line; false (with the exit code in `code`) for --help and for a
// command line CLI11 refuses (one error line).
bool parse_command_line(CLI::App& app, int argc, char** argv, int& code) {
  try {
    app.parse(argc, argv);
    return true;
  } catch (const CLI::CallForHelp& e) {
    code = app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    code = app.exit(e);
  } catch (const CLI::ParseError& e) {  // one line, our exit code
    fmt::print(stderr, "error: {} (see `attnlab --help`)\n", e.what());
    code = 1;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"attnlab: a GPT training framework for seeing what attention costs"};
  app.require_subcommand(1);
  const std::vector<Subcommand> commands = {
      add_prepare(app), add_train(app, std::vector<std::string>(argv, argv + argc)), add_sample(app), add_eval(app),
      add_bench(app), add_ablate(app), add_export_hf(app), add_import_hf(app), add_loss(app),
      add_bench_generate(app), add_plot(app), add_report(app), add_check(app)};

  // A file-size limit (ulimit -f) makes writes fail with EFBIG instead of killing us silently:
  // the failing write then says so. A truncated shard's SIGBUS names the shard (shard_guard.h).
  ::signal(SIGXFSZ, SIG_IGN);
  install_shard_fault_handler();
  if (int code = 0; !parse_command_line(app, argc, argv, code)) return code;
  try {
    for (const Subcommand& c : commands)
      if (*c.app) return c.run();
  } catch (const std::exception& e) {  // attn::Error and the rest: one line, exit code 1
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
