// Run metrics: one JSON object per line in <out_dir>/metrics.jsonl, the data of the run's
// loss figure (loss.png, drawn from this file by train/figures.h; `attnlab plot RUN` redraws it).
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

}  // namespace attn
