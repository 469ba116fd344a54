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
#include "train/plot.h"

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

void write_loss_plot(const std::string& metrics_path, const std::string& svg_path, const std::string& title) {
  PlotSeries train{"train loss", "#1f77b4", {}}, val{"val loss", "#d62728", {}};
  std::ifstream in(metrics_path);
  for (std::string line; std::getline(in, line);) {
    try {
      const auto j = nlohmann::json::parse(line);
      const double step = j.value("step", 0.0);
      if (j.contains("loss")) train.points.emplace_back(step, j["loss"].get<double>());
      if (j.contains("val_loss")) val.points.emplace_back(step, j["val_loss"].get<double>());
    } catch (const std::exception&) {
    }
  }
  // nothing to draw yet: plot_svg returns "" and no file is written
  write_svg_file(svg_path, plot_svg(PlotAxes{title, "step", "loss"}, {train, val}));
}

}  // namespace attn
