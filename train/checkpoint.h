// Checkpoints: everything needed to continue a run exactly, or to sample from it.
//
//   <out_dir>/checkpoints/step_000500/
//       model.safetensors      fp32 master weights, one tensor per ParamLayout entry
//       optimizer.safetensors  AdamW moments "m.<name>", "v.<name>"
//       precision.safetensors  the precision's own state, when it has one (fp8: per-tensor
//                              scales and amax histories, Backend::precision_state), one
//                              tensor "precision_state"
//       state.json             step, tokens seen, best/last validation loss
//       config.toml            the effective config of the run
//       tokenizer.json         the run's tokenizer (<out_dir>/tokenizer.json, run_identity.h)
// state.json, written last, also holds the FNV-1a 64 checksum of every other file.
//   <out_dir>/checkpoints/latest   name of the newest complete checkpoint
//
// Writing is atomic: files go to step_N.tmp/, are flushed to disk, the directory is
// renamed, and only then does `latest` (itself replaced by rename) point to it. A crash
// at any moment leaves the previous checkpoint intact and `latest` pointing at it.
// The data loader and dropout draw from counter-based RNG streams keyed by the step, so
// the step number is the whole of their state.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/param_layout.h"

namespace attn {

struct TrainState {
  int64_t step = 0;  // optimizer steps completed
  int64_t tokens_seen = 0;
  double best_val_loss = 0;  // 0: none yet
  double last_val_loss = 0;
};

struct CheckpointData {
  std::string dir;
  std::vector<float> params;    // layout.total() floats
  std::vector<float> m, v;      // empty when the checkpoint holds no optimizer state
  std::vector<float> precision_state;  // Backend::precision_state(); empty when none was saved
  TrainState state;
  std::string config_toml;
  std::string tokenizer_path;
};

// Saves into <out_dir>/checkpoints/step_<step>/ and prunes to the `keep` newest.
// m and v may be null (weights-only export). Returns the checkpoint directory.
std::string save_checkpoint(const std::string& out_dir, const ParamLayout& layout, const float* params,
                            const float* m, const float* v, const TrainState& state,
                            const std::string& config_toml, const std::string& tokenizer_path, int keep,
                            const std::vector<float>& precision_state = {});

// <out_dir>/checkpoints/step_* (complete ones only), newest first.
std::vector<std::string> list_checkpoints(const std::string& out_dir);
// Removes what an interrupted write leaves behind: *.tmp and *.old in the run directory, its
// checkpoints/ (step_N.tmp/, latest.tmp), best/ and best/checkpoints/. Returns the removed paths.
std::vector<std::string> remove_interrupted_writes(const std::string& out_dir);
// "" when every file state.json lists has the FNV-1a 64 checksum recorded there (checkpoints
// of older builds record none), else what is wrong.
std::string verify_checkpoint(const std::string& ckpt_dir);

// A run directory (uses checkpoints/latest), its checkpoints/ folder, or a checkpoint
// directory itself -> the checkpoint directory. Throws when there is none.
std::string resolve_checkpoint(const std::string& path);

// Reads the config and tokenizer paths only (to build the model before loading weights).
std::string checkpoint_config_path(const std::string& ckpt_dir);
std::string checkpoint_tokenizer_path(const std::string& ckpt_dir);

// Loads weights (and optimizer state when present), checking the files' checksums and every
// tensor's name and shape against `layout`; a mismatch names the tensor and both shapes.
CheckpointData load_checkpoint(const std::string& ckpt_dir, const ParamLayout& layout);

// --resume: the checkpoint `latest` names, or when it cannot be loaded (corrupt, truncated,
// missing) the newest one that can, after warn("warning: ...") naming both. Throws the newest
// one's error when none loads.
CheckpointData load_newest_valid_checkpoint(const std::string& out_dir, const ParamLayout& layout,
                                            const std::function<void(const std::string&)>& warn);

}  // namespace attn
