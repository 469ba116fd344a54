#include "train/metrics.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "data/file_io.h"
#include "io/text_file.h"

namespace attn {

MetricsLog::MetricsLog(const std::string& out_dir, int64_t resume_step, bool enabled)
    : path_((std::filesystem::path(out_dir) / "metrics.jsonl").string()), enabled_(enabled) {
  if (!enabled_) return;
  std::vector<std::string> kept;
  if (resume_step >= 0) {
    std::ifstream in(path_);
    for (std::string line; std::getline(in, line);) {
      try {
        // Keep what happened before the checkpoint: the evaluation at the checkpoint's step
        // itself runs again after resuming.
        const auto j = nlohmann::json::parse(line);
        const int64_t step = j.value("step", int64_t{0});
        if (step < resume_step || (step == resume_step && !j.contains("val_loss"))) kept.push_back(line);
      } catch (const std::exception&) {
        // A torn last line from a crash: drop it.
      }
    }
  }
  // Replaced whole by rename, then appended to: a kill at any moment leaves a readable log.
  std::string text;
  for (const auto& l : kept) text += l + "\n";
  write_file_atomic(path_, text, "metrics log");
  out_.open(path_, std::ios::app);
  ATTN_CHECK(out_.good(), "cannot write '{}'", path_);
}

void MetricsLog::write(const nlohmann::json& record) {
  if (!enabled_) return;
  errno = 0;
  out_ << record.dump() << "\n";
  out_.flush();
  if (!out_.good()) fail("{}", write_failure(path_, errno));
}

}  // namespace attn
