// The run configuration: TOML files in configs/ plus `--section.key=value` overrides.
//
// Every key has a type and a default here; an unknown key, a value of the wrong type
// or an impossible combination is refused with a message naming the key and where it
// came from (the file, or "command line"). The effective config is written next to a
// run's outputs (config.toml) and into every checkpoint.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "attention/attention.h"

namespace attn {

struct ModelSection {
  int n_layer = 4;
  int n_head = 4;
  int n_kv_head = 0;      // 0: same as n_head
  int n_embd = 128;
  int block_size = 64;
  int vocab_pad_to = 64;  // rows of wte rounded up to a multiple of this
  double dropout = 0.0;
  double attn_dropout = -1.0;  // < 0: same as dropout
};

struct DataSection {
  std::string dir = "runs/data/default";  // prepared dataset (attnlab prepare)
  std::vector<std::string> inputs;        // if set and `dir` holds no dataset, train prepares it
  std::string tokenizer = "bpe";          // bpe | char | gpt2
  int vocab_size = 4096;                  // bpe only
  double val_fraction = 0.1;
  std::string val_split = "auto";         // auto | documents | tail (data/prepare.h)
  std::string gpt2_vocab = "../shared/data/gpt2";  // gpt2: encoder.json + vocab.bpe (or tokenizer.json)
  std::string jsonl_key = "text";         // the text field of .jsonl inputs
};

struct OptimizerSection {
  double lr = 6e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  // 0: off
};

struct ScheduleSection {
  std::string decay = "cosine";  // cosine | constant
  int warmup_iters = 100;
  int decay_iters = 0;  // step at which lr reaches min_lr; 0: training.max_iters
  double min_lr = 6e-5;
};

struct TrainingSection {
  int batch_size = 12;
  int seq_len = 0;  // 0: model.block_size
  int grad_accum = 1;
  int max_iters = 2000;
  int eval_interval = 250;
  int eval_iters = 50;
  int log_interval = 10;
  int64_t seed = 1337;
  std::string out_dir = "runs/default";
};

struct CheckpointSection {
  int interval = 500;  // steps between checkpoints; 0: only at the end
  int keep = 2;        // newest checkpoints kept
  bool save_best = true;  // also keep the checkpoint of the best validation loss in <out_dir>/best
};

struct LoggingSection {
  bool jsonl = true;
  bool plot = true;
  bool progress = true;
};

struct DeviceSection {
  std::string backend = "auto";    // auto | cpu | cuda
  std::string precision = "fp32";  // fp32 | tf32 | bf16 (core/precision.h)
  int threads = 0;                 // CPU threads, 0: all cores
  // CUDA: each training step replays one captured CUDA graph (backend/cuda_graph.h). Runs that
  // cannot (CPU, data-parallel, --profile) take the separate calls and log why.
  bool cuda_graph = true;
  // CUDA: each matmul shape's first call times cuBLASLt's candidate algorithms and keeps the
  // fastest (backend/cuda_matmul.h); false keeps the heuristic's first pick, the same in every
  // run (for bitwise-repeatable runs, with attention.deterministic).
  bool matmul_autotune = true;
};

// Data-parallel training (src/distributed/). nproc > 1 needs that many CUDA devices.
struct DistributedSection {
  int nproc = 1;        // processes (one per GPU) on this machine
  int bucket_mb = 25;   // gradient all-reduce bucket size in MiB
  int zero = 0;         // 1: ZeRO-1 (optimizer state sharded over the ranks)
  int timeout_s = 60;   // rendezvous and collective timeout
};

struct SampleSection {
  int num_samples = 3;
  int max_new_tokens = 200;
  double temperature = 0.8;
  int top_k = 200;  // 0: off
  double top_p = 1.0;
  std::string prompt;
  int64_t seed = 42;
};

struct Config {
  ModelSection model;
  AttentionOptions attention;
  DataSection data;
  OptimizerSection optimizer;
  ScheduleSection schedule;
  TrainingSection training;
  CheckpointSection checkpoint;
  LoggingSection logging;
  DeviceSection device;
  DistributedSection distributed;
  SampleSection sample;

  // Where each key's value came from ("configs/x.toml", "command line"); absent = default.
  std::map<std::string, std::string> origin;

  int seq_len() const { return training.seq_len > 0 ? training.seq_len : model.block_size; }
  double attn_dropout() const { return model.attn_dropout >= 0 ? model.attn_dropout : model.dropout; }
};

// Parses a TOML file (path "" = defaults only) then applies overrides of the form
// "section.key=value" (value in TOML syntax; bare words are strings), then validates.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Applies overrides and validates; used by load_config and by tests.
void apply_overrides(Config& cfg, const std::vector<std::string>& overrides);
void apply_toml_text(Config& cfg, const std::string& toml_text, const std::string& source);
void validate(const Config& cfg);

// The effective configuration as TOML text (every key, defaults included).
std::string to_toml(const Config& cfg);

// Every key with its value as plain text, in schema order: strings unquoted, lists joined by
// ",", numbers in their shortest form ("attention.impl" -> "flash", "optimizer.lr" -> "0.0006").
// What `attnlab plot` compares to name the differences between runs.
std::vector<std::pair<std::string, std::string>> config_values(const Config& cfg);
// `train --resume`: a run continues with its own config. Only keys that change how long it
// runs, how often it evaluates, logs and saves, and where it runs may differ on the command
// line (training.max_iters, eval/log intervals, eval_iters, out_dir, checkpoint.*, logging.*,
// device.*, distributed.*, sample.*); anything else changes what a step computes.
bool resume_may_override(const std::string& key);
// The config saved at run_config_path with `overrides` applied; an override of any other key
// that changes its value is refused, naming the key, both values and why.
Config load_resume_config(const std::string& run_config_path, const std::vector<std::string>& overrides);

}  // namespace attn

#include "model/gpt_config.h"
namespace attn {
// The model shape a config describes, for a tokenizer of `vocab_size` tokens.
GPTConfig make_gpt_config(const Config& cfg, int vocab_size);
}  // namespace attn
