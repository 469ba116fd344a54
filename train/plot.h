// A small self-contained SVG line/scatter plot: the loss plot of a run and the ablation
// plots draw through it. No dependencies; the output starts with <svg and is plain XML.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace attn {

struct PlotSeries {
  std::string name, color;  // color "" = from the default palette by position
  std::vector<std::pair<double, double>> points;
  bool lines = true;     // polyline through the points in order
  bool markers = false;  // a dot at each point
};

struct PlotAxes {
  std::string title, x_label, y_label;
  bool log2_x = false;  // x positions on a log2 scale, ticks at the data's x values
};

// The SVG text; "" when no series has a finite point.
std::string plot_svg(const PlotAxes& axes, const std::vector<PlotSeries>& series);
// Writes svg to path atomically (path.tmp, then rename); does nothing for "".
void write_svg_file(const std::string& path, const std::string& svg);

}  // namespace attn
