#include "train/metrics.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"

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
  out_.open(path_, std::ios::trunc);
  ATTN_CHECK(out_.good(), "cannot write '{}'", path_);
  for (const auto& l : kept) out_ << l << "\n";
  out_.flush();
}

void MetricsLog::write(const nlohmann::json& record) {
  if (!enabled_) return;
  out_ << record.dump() << "\n";
  out_.flush();
}

namespace {
struct Series {
  std::string name, color;
  std::vector<std::pair<double, double>> pts;
};
}  // namespace

void write_loss_plot(const std::string& metrics_path, const std::string& svg_path, const std::string& title) {
  Series train{"train loss", "#1f77b4", {}}, val{"val loss", "#d62728", {}};
  std::ifstream in(metrics_path);
  for (std::string line; std::getline(in, line);) {
    try {
      const auto j = nlohmann::json::parse(line);
      const double step = j.value("step", 0.0);
      if (j.contains("loss")) train.pts.emplace_back(step, j["loss"].get<double>());
      if (j.contains("val_loss")) val.pts.emplace_back(step, j["val_loss"].get<double>());
    } catch (const std::exception&) {
    }
  }
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const Series* s : {&train, &val})
    for (auto [x, y] : s->pts)
      if (std::isfinite(y)) {
        x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
  if (x0 > x1) return;  // nothing to draw yet
  if (x1 == x0) x1 = x0 + 1;
  if (y1 - y0 < 1e-9) y1 = y0 + 1;
  const double W = 720, H = 420, L = 60, R = 20, T = 40, B = 50;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::ostringstream svg;
  svg << fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">)", W, H)
      << "\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << fmt::format(R"(<text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>)", W / 2, title) << "\n";
  for (int i = 0; i <= 5; ++i) {  // grid and axis labels
    const double y = y0 + (y1 - y0) * i / 5, x = x0 + (x1 - x0) * i / 5;
    svg << fmt::format(R"(<line x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}" stroke="#ddd"/>)", L, py(y), W - R, py(y))
        << fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end">{:.3f}</text>)", L - 5, py(y) + 4, y)
        << fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{:.0f}</text>)", px(x), H - B + 18, x) << "\n";
  }
  svg << fmt::format(R"(<text x="{}" y="{}" text-anchor="middle">step</text>)", W / 2, H - 12) << "\n";
  int legend = 0;
  for (const Series* s : {&train, &val}) {
    if (s->pts.empty()) continue;
    svg << "<polyline fill=\"none\" stroke=\"" << s->color << "\" stroke-width=\"1.5\" points=\"";
    for (auto [x, y] : s->pts)
      if (std::isfinite(y)) svg << fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    svg << "\"/>\n"
        << fmt::format(R"(<text x="{}" y="{}" fill="{}">{}</text>)", W - R - 110, T + 16 + 16 * legend++, s->color, s->name)
        << "\n";
  }
  svg << "</svg>\n";
  const std::string tmp = svg_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << svg.str();
  }
  std::filesystem::rename(tmp, svg_path);
}

}  // namespace attn
