// The training loop (nanoGPT's train.py, in C++): data, model, optimizer, schedule,
// evaluation, metrics, checkpoints. Read run_training top to bottom.
#pragma once
#include <cstdint>
#include <string>

#include "config/config.h"

namespace attn {

struct TrainOptions {
  bool resume = false;       // continue from <out_dir>/checkpoints/latest
  bool quiet = false;        // no progress lines (tests)
  int64_t stop_after = -1;   // stop (with a checkpoint) after this many steps in this process
  bool profile = false;      // time per operation category: table at the end, <out_dir>/profile.json
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

}  // namespace attn
