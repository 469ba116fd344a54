// The step profile report: per-category time of training steps (core/step_profile.h)
// averaged per step, set against the measured step time, as a table and as JSON.
//
// What the timed calls do not cover (host work between calls, launch gaps) is added to
// "other" and reported on its own as the unaccounted share, so the categories always add up
// to the step time and the report says how much of it was actually measured.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "core/step_profile.h"

namespace attn {

class StepProfileReport {
 public:
  // One step: its profile (ms by category) and its wall-clock time.
  void add_step(const StepProfile& profile, double step_ms);

  int steps() const { return steps_; }
  double step_ms() const;            // mean wall-clock step time
  double timed_ms() const;           // mean time inside timed calls
  double unaccounted_share() const;  // 1 - timed / step (0 when timed >= step)
  double attention_share() const;    // (attention_fwd + attention_bwd) / step
  // ms per step by category; "other" includes the unaccounted remainder.
  StepProfile per_step() const;

  // {"steps", "step_ms", "timed_ms", "unaccounted_share", "attention_share",
  //  "categories": {name: {"ms": ms/step, "share": fraction of step}},
  //  "ops": [{"name", "category", "calls", "ms", "share", "tflops", "gbps"}, ...]}
  nlohmann::json to_json() const;
  // The named ops, most time first (the "ops" array of to_json()).
  nlohmann::json ops_json() const;
  // category | ms/step | % of step, one line each, then the unaccounted share.
  std::string table() const;
  // Writes to_json() to path (one-line attn::Error when it cannot).
  void write_json(const std::string& path) const;

 private:
  StepProfile sum_;
  double step_ms_sum_ = 0;
  int steps_ = 0;
};

// How many named ops the printed table lists.
inline constexpr size_t kTopOps = 15;

// The table of a to_json() object (also as read back from bench's JSON): the categories, then
// the top kTopOps named ops.
std::string format_profile_table(const nlohmann::json& profile);
// op | category | calls | ms/step | % of step | TFLOP/s | GB/s, for the first `top` ops.
std::string format_ops_table(const nlohmann::json& ops, double step_ms, size_t top);

}  // namespace attn
