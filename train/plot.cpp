#include "train/plot.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"

namespace attn {

namespace {
const char* palette(size_t i) {
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"};
  return colors[i % 7];
}
std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}
bool usable(double x, double y, bool log2_x) { return std::isfinite(x) && std::isfinite(y) && (!log2_x || x > 0); }
}  // namespace

std::string plot_svg(const PlotAxes& axes, const std::vector<PlotSeries>& series) {
  auto fx = [&](double x) { return axes.log2_x ? std::log2(x) : x; };
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  std::set<double> xs;
  for (const PlotSeries& s : series)
    for (auto [x, y] : s.points)
      if (usable(x, y, axes.log2_x)) {
        x0 = std::min(x0, fx(x)), x1 = std::max(x1, fx(x)), y0 = std::min(y0, y), y1 = std::max(y1, y);
        xs.insert(x);
      }
  if (x0 > x1) return "";
  if (x1 == x0) x0 -= 0.5, x1 += 0.5;
  if (y1 - y0 < 1e-9) y1 = y0 + 1;
  const double W = 720, H = 420, L = 70, R = 20, T = 40, B = 50;
  auto px = [&](double x) { return L + (fx(x) - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::ostringstream svg;
  svg << fmt::format(
             R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">)",
             W, H)
      << "\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << fmt::format(R"(<text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>)", W / 2, escape(axes.title))
      << "\n";
  for (int i = 0; i <= 5; ++i) {  // horizontal grid and y labels
    const double y = y0 + (y1 - y0) * i / 5;
    svg << fmt::format(R"(<line x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}" stroke="#ddd"/>)", L, py(y), W - R, py(y))
        << fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end">{:.4g}</text>)", L - 5, py(y) + 4, y) << "\n";
  }
  if (axes.log2_x) {  // ticks at the data's x values
    for (double x : xs)
      svg << fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{:.6g}</text>)", px(x), H - B + 18, x) << "\n";
  } else {
    for (int i = 0; i <= 5; ++i) {
      const double x = x0 + (x1 - x0) * i / 5;
      svg << fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{:.6g}</text>)", px(x), H - B + 18, x) << "\n";
    }
  }
  svg << fmt::format(R"(<text x="{}" y="{}" text-anchor="middle">{}</text>)", W / 2, H - 12, escape(axes.x_label))
      << "\n"
      << fmt::format(R"svg(<text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>)svg", H / 2,
                     H / 2, escape(axes.y_label))
      << "\n";
  int legend = 0;
  for (size_t i = 0; i < series.size(); ++i) {
    const PlotSeries& s = series[i];
    if (s.points.empty()) continue;
    const std::string color = s.color.empty() ? palette(i) : s.color;
    if (s.lines) {
      svg << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\" points=\"";
      for (auto [x, y] : s.points)
        if (usable(x, y, axes.log2_x)) svg << fmt::format("{:.1f},{:.1f} ", px(x), py(y));
      svg << "\"/>\n";
    }
    if (s.markers)
      for (auto [x, y] : s.points)
        if (usable(x, y, axes.log2_x))
          svg << fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3.5" fill="{}"/>)", px(x), py(y), color) << "\n";
    svg << fmt::format(R"(<text x="{}" y="{}" fill="{}">{}</text>)", W - R - 150, T + 16 + 16 * legend++, color,
                       escape(s.name))
        << "\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

void write_svg_file(const std::string& path, const std::string& svg) {
  if (svg.empty()) return;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    ATTN_CHECK(out.good(), "cannot write '{}'", tmp);
    out << svg;
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace attn
