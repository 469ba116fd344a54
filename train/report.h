// `attnlab report DIR`: one self-contained HTML page, DIR/report.html, for the output folder of
// `attnlab ablate` or `attnlab bench-generate`: the table (results.md), the figures (drawn again
// from results.csv by scripts/plot.py and embedded as data: URIs, so the page travels alone),
// the environment and the exact command (env.json). A script in the page checks it when it is
// opened and lists in #page-check the images that did not load, script errors and console
// errors, and the elements whose box leaves the viewport or their figure (headless Chromium
// reads it in the tests; a reader sees the list in red).
#pragma once
#include <string>

namespace attn {

// Returns the page's path. Throws attn::Error when DIR has no results.csv of either kind, or
// when plot.py fails on it (a corrupt results.csv); without matplotlib: a warning, no figures.
// draw_figures = false embeds the PNGs already in DIR (the caller has just drawn them).
std::string write_report(const std::string& dir, bool draw_figures = true);

}  // namespace attn
