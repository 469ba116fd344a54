#include "train/report.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/text_file.h"
#include "train/figures.h"

namespace fs = std::filesystem;

namespace attn {

namespace {

struct FigureSpec {
  const char* file;
  const char* caption;
};

// What each kind of folder holds: how to recognise its results.csv, the plot.py subcommand, its figures.
struct ReportKind {
  const char* csv_header_start;
  const char* plot_kind;
  const char* title;
  std::vector<FigureSpec> figures;
};

const std::vector<ReportKind>& report_kinds() {
  static const std::vector<ReportKind> kinds = {
      {"cell,variant,", "ablate", "attention ablation",
       {{"throughput.png",
         "Training throughput (tokens/s of the median step) against sequence length. Right: speedup over the "
         "grid's first variant at the lengths both ran. An × marks a cell that ran out of memory or failed."},
        {"memory.png",
         "Peak device memory of a training step. Right: the first variant's peak divided by each variant's "
         "(how many times less memory it needs)."},
        {"pareto.png",
         "Throughput against peak memory; each point is labelled with its sequence length. Dashed: the Pareto "
         "front among the variants at one length (no other variant there has both less memory and more "
         "throughput)."}}},
      {"mode,cache,", "generate", "generation benchmark",
       {{"tokens_per_s.png", "Decode throughput (generated tokens/s) against context length."},
        {"cache_memory.png", "KV cache size against context length."}}},
  };
  return kinds;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64(const std::string& bytes) {
  static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {  // 3 bytes -> 4 characters of 6 bits
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += {abc[v >> 18], abc[(v >> 12) & 63], abc[(v >> 6) & 63], abc[v & 63]};
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint8_t(bytes[i]) << 16;
    out += {abc[v >> 18], abc[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += {abc[v >> 18], abc[(v >> 12) & 63], abc[(v >> 6) & 63], '='};
  }
  return out;
}

// The width to show a PNG at: its pixels at plot.py's 150 dpi as 96 CSS px per inch, so that every
// figure's text has the same size on the page (max-width still fits it to the column).
int css_width(const std::string& png) {
  if (png.size() < 24) return 0;
  const int pixels = (uint8_t(png[16]) << 24) | (uint8_t(png[17]) << 16) | (uint8_t(png[18]) << 8) | uint8_t(png[19]);
  return pixels * 96 / 150;
}

// A markdown table (results.md) as an HTML table; columns whose separator ends in ':' are numbers.
std::string html_table(const std::string& markdown) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(markdown);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line.front() != '|') continue;
    std::vector<std::string> cells;
    std::istringstream parts(line.substr(1));
    for (std::string c; std::getline(parts, c, '|');) {
      while (!c.empty() && c.front() == ' ') c.erase(0, 1);
      while (!c.empty() && c.back() == ' ') c.pop_back();
      cells.push_back(c);
    }
    rows.push_back(cells);
  }
  if (rows.size() < 2) return "<p>results.md has no table.</p>\n";
  std::vector<bool> numeric;
  for (const auto& c : rows[1]) numeric.push_back(!c.empty() && c.back() == ':');
  std::string out = "<table class=\"results\">\n<thead><tr>";
  for (const auto& h : rows[0]) out += "<th>" + escape(h) + "</th>";
  out += "</tr></thead>\n<tbody>\n";
  for (size_t r = 2; r < rows.size(); ++r) {
    const std::vector<std::string>& row = rows[r];
    size_t filled = row.size();  // a row that ends in empty cells (a failed cell's error) spans them
    while (filled > 1 && row[filled - 1].empty()) --filled;
    out += "<tr>";
    for (size_t c = 0; c < filled; ++c) {
      const bool last = c + 1 == filled && filled < row.size();
      out += fmt::format("<td{}{}>{}</td>", last ? fmt::format(" colspan=\"{}\"", row.size() - c) : "",
                         !last && c < numeric.size() && numeric[c] ? " class=\"num\"" : "", escape(row[c]));
    }
    out += "</tr>\n";
  }
  return out + "</tbody>\n</table>\n";
}

std::string environment_rows(const nlohmann::json& env) {
  auto text = [&](const char* key) { return env.contains(key) ? env[key].get<std::string>() : std::string(); };
  auto row = [](const std::string& k, const std::string& v) {
    return fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", escape(k), escape(v));
  };
  if (env.is_null()) return row("environment", "not recorded (no env.json in this folder)");
  const bool cpu = text("backend") == "cpu";
  std::string gpus;
  for (const auto& g : env.value("gpus", nlohmann::json::array()))
    gpus += fmt::format("{}{} ({}), driver {}", gpus.empty() ? "" : "; ", g.value("name", "?"), g.value("memory", "?"),
                        g.value("driver", "?"));
  std::string out = row("backend", cpu ? "cpu: measured on the CPU, no GPU was used" : text("backend"));
  out += row("GPU", gpus.empty() ? "none found (no nvidia-smi output)" : gpus);
  out += row("CUDA", fmt::format("{}; {}",
                                 text("cuda_driver").empty() ? "no CUDA driver found"
                                                             : "the driver supports CUDA " + text("cuda_driver"),
                                 text("cuda_toolkit").empty() ? "attnlab built without CUDA"
                                                              : "attnlab built with CUDA toolkit " + text("cuda_toolkit")));
  out += row("CPU", fmt::format("{} ({} threads)", text("cpu"), env.value("cpu_threads", 0)));
  out += row("commit", text("commit"));
  out += row("host", text("host"));
  out += row("date", text("date"));
  out += row("working directory", text("cwd"));
  return out;
}

// The page's own check, run when it has loaded (see report.h).
const char* kPageCheckScript = R"js(
(function () {
  var problems = [];
  window.addEventListener('error', function (e) {
    var t = e.target;
    if (t && t !== window && t.tagName) problems.push('did not load: ' + t.tagName.toLowerCase() + ' ' + (t.alt || t.src || t.href || ''));
    else problems.push('script error: ' + e.message);
  }, true);
  var consoleError = console.error;
  console.error = function () {
    problems.push('console error: ' + Array.prototype.join.call(arguments, ' '));
    consoleError.apply(console, arguments);
  };
  function describe(el) {
    var text = (el.getAttribute('alt') || el.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 50);
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' "' + text + '"';
  }
  function outside(r, box) {
    return r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5;
  }
  window.addEventListener('load', function () {
    var root = document.documentElement, viewport = {left: 0, right: root.clientWidth, top: -1e9, bottom: 1e9};
    if (root.scrollWidth > root.clientWidth) problems.push('the page is wider than the viewport');
    for (var i = 0; i < document.images.length; ++i) {
      var img = document.images[i];
      if (!img.complete || img.naturalWidth === 0) problems.push('image did not load: ' + describe(img));
    }
    var all = document.body.querySelectorAll('*');
    for (var j = 0; j < all.length; ++j) {
      var el = all[j];
      if (el.closest('#page-check')) continue;
      var r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      if (outside(r, viewport)) problems.push('leaves the viewport: ' + describe(el));
      var fig = el.parentElement ? el.parentElement.closest('figure') : null;
      if (fig && outside(r, fig.getBoundingClientRect())) problems.push('leaves its figure: ' + describe(el));
      var style = getComputedStyle(el);
      if ((style.overflowX !== 'visible' && el.scrollWidth > el.clientWidth + 1) ||
          (style.overflowY !== 'visible' && el.scrollHeight > el.clientHeight + 1))
        problems.push('clipped: ' + describe(el));
    }
    var out = document.getElementById('page-check');
    out.setAttribute('data-status', problems.length ? 'problems' : 'ok');
    out.textContent = problems.length ? 'page check found problems:\n' + problems.join('\n') : 'page check: ok';
    out.hidden = problems.length === 0;
  });
})();
)js";

const char* kStyle = R"css(
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 14px; color: #222; max-width: 1180px; margin: 0 auto; padding: 8px 20px 40px; }
h1 { font-size: 22px; margin: 12px 0 4px; } h2 { font-size: 17px; margin: 26px 0 8px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; } th, td { padding: 3px 9px; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
table.results { width: 100%; font-size: 13px; } table.results th { background: #f3f3f3; } td.num { text-align: right; white-space: nowrap; }
table.env th { font-weight: normal; color: #666; white-space: nowrap; }
pre { background: #f6f6f6; padding: 8px 10px; white-space: pre-wrap; overflow-wrap: anywhere; }
figure { margin: 18px 0 26px; } figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: #444; margin-top: 6px; } .note { color: #8a5a00; }
#page-check { color: #b00020; border: 1px solid #b00020; background: #fff4f4; }
)css";

}  // namespace

std::string write_report(const std::string& dir_name, bool draw_figures) {
  const fs::path dir(dir_name);
  const fs::path csv = dir / "results.csv";
  ATTN_CHECK(fs::exists(csv), "report: {} has no results.csv (give the --out folder of ablate or bench-generate)",
             dir_name);
  const std::string header = read_text_file(csv.string());
  const ReportKind* kind = nullptr;
  for (const ReportKind& k : report_kinds())
    if (header.rfind(k.csv_header_start, 0) == 0) kind = &k;
  ATTN_CHECK(kind != nullptr, "report: {} is neither an ablate nor a bench-generate results.csv", csv.string());
  if (draw_figures) {  // asked for: data plot.py cannot read is an error, a missing matplotlib a warning
    const FigureStatus s = run_plot_script({kind->plot_kind, dir.string()});
    ATTN_CHECK(s != FigureStatus::failed, "report: {}", figure_status_text(s, csv.string()));
    if (s == FigureStatus::no_matplotlib) fmt::print(stderr, "warning: {}\n", figure_status_text(s, csv.string()));
  }

  nlohmann::json env;
  if (fs::exists(dir / "env.json")) {
    try {
      env = nlohmann::json::parse(read_text_file((dir / "env.json").string()));
    } catch (const nlohmann::json::exception& e) {
      fail("report: {} is not valid JSON: {}", (dir / "env.json").string(), e.what());
    }
  }
  const std::string name = fs::absolute(dir).lexically_normal().filename().string();
  std::string page = fmt::format(
      "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>attnlab {}: {}</title>\n"
      "<script>{}</script>\n<style>{}</style>\n</head>\n<body>\n<h1>attnlab {}: {}</h1>\n",
      kind->title, escape(name), kPageCheckScript, kStyle, kind->title, escape(name));
  page += "<pre id=\"page-check\" hidden></pre>\n<h2>Command</h2>\n<pre>" +
          escape(env.is_object() && env.contains("command") ? env["command"].get<std::string>()
                                                            : std::string("not recorded (no env.json)")) +
          "</pre>\n<h2>Environment</h2>\n<table class=\"env\">\n" + environment_rows(env) + "</table>\n";
  page += "<h2>Results</h2>\n" +
          (fs::exists(dir / "results.md") ? html_table(read_text_file((dir / "results.md").string()))
                                          : std::string("<p class=\"note\">no results.md</p>\n"));
  page += "<h2>Figures</h2>\n";
  for (const FigureSpec& f : kind->figures) {
    const fs::path png = dir / f.file;
    if (!fs::exists(png)) {
      page += fmt::format("<p class=\"note\">{} was not drawn: matplotlib was missing or there was no finished "
                          "cell; <code>attnlab report {}</code> draws it again from results.csv.</p>\n",
                          f.file, escape(dir_name));
      continue;
    }
    const std::string bytes = read_text_file(png.string());
    page += fmt::format("<figure>\n<img alt=\"{}\" style=\"width: {}px\" src=\"data:image/png;base64,{}\">\n"
                        "<figcaption>{}</figcaption>\n</figure>\n",
                        f.file, css_width(bytes), base64(bytes), escape(f.caption));
  }
  page += "<h2>Data</h2>\n<p>The figures and the table are drawn from <a href=\"results.csv\">results.csv</a>"
          " (also <a href=\"results.md\">results.md</a>, <a href=\"env.json\">env.json</a>).</p>\n</body>\n</html>\n";
  const fs::path out = dir / "report.html", tmp = dir / "report.html.tmp";
  write_text_file(tmp.string(), page);
  fs::rename(tmp, out);
  return out.string();
}

}  // namespace attn
