// Run metrics: one JSON object per line in <out_dir>/metrics.jsonl, and a loss plot
// (<out_dir>/loss.svg) drawn from that file, so the plot can be remade after a crash.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace attn {

class MetricsLog {
 public:
  // Opens <out_dir>/metrics.jsonl for appending, first dropping records with
  // step > resume_step (a resumed run rewrites what the interrupted one logged after
  // its checkpoint). resume_step < 0: start a fresh file.
  MetricsLog(const std::string& out_dir, int64_t resume_step, bool enabled);
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
  bool enabled_;
};

// Draws train loss (records with "loss") and validation loss (records with "val_loss")
// against step from a metrics.jsonl file into an SVG.
void write_loss_plot(const std::string& metrics_path, const std::string& svg_path, const std::string& title);

}  // namespace attn
