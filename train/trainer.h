// The training loop (nanoGPT's train.py, in C++): data, model, optimizer, schedule,
// evaluation, metrics, checkpoints. Read TrainingRun::run() in trainer.cpp top to bottom.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "backend/backend.h"
#include "config/config.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "distributed/launch_env.h"

namespace attn {

struct TrainOptions {
  bool resume = false;       // continue from <out_dir>/checkpoints/latest
  // Start from these weights (a run or checkpoint of ours, or an HF GPT2 directory) with a
  // fresh optimizer and schedule at step 0 (nanoGPT's init_from); block_size may be smaller.
  std::string init_from;
  bool quiet = false;        // no progress lines (tests)
  int64_t stop_after = -1;   // stop (with a checkpoint) after this many steps in this process
  bool profile = false;      // time per operation category: table at the end, <out_dir>/profile.json
  // This process's rank in a data-parallel job; unset: read from the launcher's variables
  // (launch_env.h). Tests run the ranks as threads and pass it.
  std::optional<DistEnv> dist_env;
};

struct TrainResult {
  int64_t step = 0;           // optimizer steps completed
  double last_loss = 0;       // training loss of the last step
  double val_loss = 0;        // last validation loss
  double seconds = 0;
  bool interrupted = false;
  std::string checkpoint;     // last checkpoint written
};

TrainResult run_training(const Config& cfg, const TrainOptions& opts);

// The prepare options of a config's [data] section.
PrepareOptions prepare_options(const DataSection& data);

// The backend options a config asks for (device, precision, attention, threads), planned
// for batches of up to max_batch x max_seq tokens; eot_token feeds document masking.
BackendOptions backend_options(const Config& cfg, int eot_token, int max_batch, int max_seq);

class DataParallelRun;

// Mean loss over training.eval_iters fixed batches of `loader` (the same batches at every
// evaluation of a run, and in `attnlab eval`). With dp, the ranks share the batches and the
// result (collective; the same value on every rank).
double evaluate(Backend& model, const DataLoader& loader, const Config& cfg, DataParallelRun* dp = nullptr);

}  // namespace attn
