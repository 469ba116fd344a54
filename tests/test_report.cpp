// The figures (scripts/plot.py through matplotlib) and the report page, as a user meets them:
// `attnlab ablate` on a small CPU grid writes the table, the figures and report.html, and the
// page is opened in headless Chromium, where its own script lists images that did not load,
// script or console errors and elements that leave the viewport or their figure; `attnlab plot`
// puts two runs in one figure named by their config difference; without matplotlib training
// and ablate go on with one warning line.
// Needs python3-matplotlib and chromium (scripts/install_deps.sh); skipped where they are absent.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/text_file.h"
#include "train/figures.h"

namespace fs = std::filesystem;

namespace {

struct RunResult {
  int code = -1;
  std::string out, err;
};

std::string file_text(const fs::path& p) { return fs::exists(p) ? attn::read_text_file(p.string()) : std::string(); }

int shell(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool have_matplotlib() { return shell("/usr/bin/python3 -c 'import matplotlib' > /dev/null 2>&1") == 0; }
bool have_chromium() { return shell("chromium --version > /dev/null 2>&1") == 0; }

// A PNG's width and height from its IHDR chunk (0, 0 when the file is not a PNG).
std::pair<int, int> png_size(const fs::path& p) {
  const std::string s = file_text(p);
  if (s.size() < 24 || s.compare(1, 3, "PNG") != 0) return {0, 0};
  auto be32 = [&](size_t at) {
    return (uint8_t(s[at]) << 24) | (uint8_t(s[at + 1]) << 16) | (uint8_t(s[at + 2]) << 8) | uint8_t(s[at + 3]);
  };
  return {static_cast<int>(be32(16)), static_cast<int>(be32(20))};
}

class Report : public ::testing::Test {
 protected:
  fs::path root;
  void SetUp() override {
    root = fs::temp_directory_path() / ("attn_report_" + std::to_string(std::random_device{}()));
    fs::create_directories(root);
  }
  void TearDown() override { fs::remove_all(root); }

  RunResult run(const std::string& args, const std::string& env = "") {
    const std::string cmd = env + " " + std::string(ATTN_BINARY) + " " + args + " > " + (root / "stdout").string() +
                            " 2> " + (root / "stderr").string();
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, file_text(root / "stdout"), file_text(root / "stderr")};
  }

  // A tiny CPU ablation: two named variants x two lengths, and a variant whose cells fail.
  RunResult ablate(const std::string& env = "") {
    std::ofstream(root / "tiny.toml") << "[model]\nn_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 8\n"
                                         "[training]\nbatch_size = 2\n[device]\nbackend = \"cpu\"\nthreads = 1\n";
    std::ofstream(root / "grid.toml") << "tokens_per_batch = 32\nsteps = 2\nwarmup = 1\nvocab_size = 64\n"
                                         "[grid]\ntraining.seq_len = [8, 16]\n"
                                         "[[variant]]\nname = \"one layer\"\nmodel.n_layer = 1\n"
                                         "[[variant]]\nname = \"two layers\"\nmodel.n_layer = 2\n"
                                         "[[variant]]\nname = \"broken\"\nattention.impl = \"bogus\"\n";
    return run("ablate -c " + (root / "tiny.toml").string() + " --grid " + (root / "grid.toml").string() + " --out " +
                   (root / "out").string(),
               env);
  }

  // Opens the page in headless Chromium: the DOM after the page's check ran, and a screenshot.
  std::string open_in_chromium(const fs::path& page, const fs::path& screenshot) {
    const std::string flags = "chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir=" +
                              (root / "chrome").string() + " --virtual-time-budget=10000 --window-size=1280,2400";
    const std::string url = "file://" + fs::absolute(page).string();
    EXPECT_EQ(0, shell(flags + " --screenshot=" + screenshot.string() + " " + url + " > /dev/null 2>&1"));
    EXPECT_EQ(0, shell(flags + " --dump-dom " + url + " > " + (root / "dom.html").string() + " 2> " +
                       (root / "chrome.log").string()))
        << file_text(root / "chrome.log");
    return file_text(root / "dom.html");
  }
};

// What plot.py recorded of one figure: nothing outside the canvas, no overlapping layout text.
nlohmann::json figure_record(const fs::path& png) {
  const fs::path side = png.parent_path() / (png.stem().string() + ".plot.json");
  EXPECT_TRUE(fs::exists(side)) << side;
  if (!fs::exists(side)) return nlohmann::json::object();
  const nlohmann::json j = nlohmann::json::parse(file_text(side));
  EXPECT_TRUE(j.at("outside_canvas").empty()) << png << ": " << j.at("outside_canvas").dump();
  EXPECT_TRUE(j.at("overlapping").empty()) << png << ": " << j.at("overlapping").dump();
  const auto [w, h] = png_size(png);
  EXPECT_GT(w, 600) << png;
  EXPECT_GT(h, 300) << png;
  return j;
}

bool contains(const nlohmann::json& list, const std::string& needle) {
  for (const auto& s : list)
    if (s.get<std::string>().find(needle) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_F(Report, CpuAblationWritesFiguresAndAPageThatRendersCleanly) {
  if (!have_matplotlib() || !have_chromium()) GTEST_SKIP() << "needs python3-matplotlib and chromium";
  const RunResult r = ablate();
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  const fs::path out = root / "out";
  for (const char* f : {"results.md", "results.csv", "env.json", "report.html"}) EXPECT_TRUE(fs::exists(out / f)) << f;

  const nlohmann::json env = nlohmann::json::parse(file_text(out / "env.json"));
  EXPECT_EQ(env.at("backend"), "cpu");
  EXPECT_NE(env.at("command").get<std::string>().find("ablate -c " + (root / "tiny.toml").string()), std::string::npos)
      << env.dump();

  const nlohmann::json tps = figure_record(out / "throughput.png");
  EXPECT_EQ(tps.at("panels").size(), 2u);  // absolute and speedup over the first variant
  EXPECT_EQ(tps.at("panels")[0].at("x_ticks"), nlohmann::json({"8", "16"}));  // the measured lengths
  EXPECT_EQ(tps.at("panels")[1].at("y_label"), "speedup over one layer");
  for (const char* name : {"one layer", "two layers", "broken", "out of memory / failed"})
    EXPECT_TRUE(contains(tps.at("legend"), name)) << name << " " << tps.at("legend").dump();
  EXPECT_TRUE(contains(tps.at("data_labels"), "failed")) << tps.at("data_labels").dump();  // the failed cells marked
  const nlohmann::json mem = figure_record(out / "memory.png");
  EXPECT_EQ(mem.at("panels")[0].at("y_label"), "peak memory (MiB)");  // under 1 GiB: MiB
  const nlohmann::json pareto = figure_record(out / "pareto.png");
  EXPECT_TRUE(contains(pareto.at("legend"), "broken not shown: 8 failed, 16 failed")) << pareto.at("legend").dump();
  EXPECT_TRUE(contains(pareto.at("data_labels"), "16")) << pareto.at("data_labels").dump();  // lengths at the points

  const std::string html = file_text(out / "report.html");
  EXPECT_EQ(html.find("src=\"throughput.png\""), std::string::npos);  // embedded, not linked
  size_t embedded = 0;  // the three PNGs as data: URIs
  for (size_t at = html.find("src=\"data:image/png;base64,iVBOR"); at != std::string::npos;
       at = html.find("src=\"data:image/png;base64,iVBOR", at + 1))
    ++embedded;
  EXPECT_EQ(embedded, 3u);
  EXPECT_NE(html.find("<img alt=\"pareto.png\""), std::string::npos);
  EXPECT_NE(html.find("cpu: measured on the CPU, no GPU was used"), std::string::npos);
  EXPECT_NE(html.find("<td>two layers</td>"), std::string::npos);

  const std::string dom = open_in_chromium(out / "report.html", root / "shot.png");
  EXPECT_NE(dom.find("data-status=\"ok\""), std::string::npos)
      << (dom.find("page-check") != std::string::npos ? dom.substr(dom.find("page-check"), 2000)
                                                       : "no page check ran:\n" + dom.substr(0, 2000));
  EXPECT_EQ(png_size(root / "shot.png"), std::make_pair(1280, 2400));
  // non-empty: a good part of the screenshot is not background, in many colours (the figures)
  const std::string stats_cmd =
      "/usr/bin/python3 -c \"import sys, numpy as np, matplotlib.image as m; a = m.imread(sys.argv[1])[..., :3]; "
      "print(float((a.min(axis=2) < 0.9).mean()), len(np.unique((a * 255).astype(int).reshape(-1, 3), axis=0)))\" " +
      (root / "shot.png").string() + " > " + (root / "stats").string();
  ASSERT_EQ(shell(stats_cmd), 0);
  double ink = 0;
  int colours = 0;
  std::istringstream(file_text(root / "stats")) >> ink >> colours;
  EXPECT_GT(ink, 0.03) << file_text(root / "stats");
  EXPECT_GT(colours, 100) << file_text(root / "stats");
}

// The page's check can fail: a broken image and a box wider than the viewport are reported.
TEST_F(Report, PageCheckReportsBrokenImagesAndOverflow) {
  if (!have_matplotlib() || !have_chromium()) GTEST_SKIP() << "needs python3-matplotlib and chromium";
  ASSERT_EQ(ablate().code, 0);
  std::string html = file_text(root / "out" / "report.html");
  const size_t img = html.find("src=\"data:image/png;base64,");
  ASSERT_NE(img, std::string::npos);
  html.replace(img, 27, "src=\"no-such-figure.png?");
  html.replace(html.find("<h2>Command</h2>"), 0, "<div style=\"width: 3000px\">too wide</div>\n");
  attn::write_text_file((root / "out" / "broken.html").string(), html);
  const std::string dom = open_in_chromium(root / "out" / "broken.html", root / "shot.png");
  EXPECT_NE(dom.find("data-status=\"problems\""), std::string::npos) << dom.substr(0, 3000);
  EXPECT_NE(dom.find("did not load: img throughput.png"), std::string::npos) << dom.substr(0, 3000);
  EXPECT_NE(dom.find("leaves the viewport: div \"too wide\""), std::string::npos) << dom.substr(0, 3000);
}

// Without matplotlib (ATTN_PYTHON names no interpreter) the sweep still writes its table and
// the page, says so in one warning line, and the page says how to draw the figures later.
TEST_F(Report, AblateWithoutMatplotlibWarnsOnceAndGoesOn) {
  const RunResult r = ablate("ATTN_PYTHON=/no/such/python3");
  ASSERT_EQ(r.code, 0) << r.err;
  size_t warnings = 0;
  for (size_t at = r.err.find("warning: "); at != std::string::npos; at = r.err.find("warning: ", at + 1)) ++warnings;
  EXPECT_EQ(warnings, 1u) << r.err;
  EXPECT_NE(r.err.find("no python3 with matplotlib"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(root / "out" / "results.csv"));
  EXPECT_FALSE(fs::exists(root / "out" / "throughput.png"));
  const std::string html = file_text(root / "out" / "report.html");
  EXPECT_NE(html.find("throughput.png was not drawn"), std::string::npos) << html;
  // `attnlab report` names what is wrong with a folder that is no result, or with a corrupt results.csv
  attn::write_text_file((root / "out" / "env.json").string(), "{\"command\": ");
  const RunResult torn = run("report " + (root / "out").string());
  EXPECT_EQ(torn.code, 1);
  EXPECT_NE(torn.err.find("error: report: " + (root / "out" / "env.json").string() + " is not valid JSON"),
            std::string::npos)
      << torn.err;
  if (have_matplotlib()) {
    std::string csv = file_text(root / "out" / "results.csv");
    csv.replace(csv.find("one layer,8,"), 12, "one layer,x8,");
    attn::write_text_file((root / "out" / "results.csv").string(), csv);
    const RunResult corrupt = run("report " + (root / "out").string());
    EXPECT_EQ(corrupt.code, 1);
    EXPECT_NE(corrupt.err.find("plot.py: results.csv: seq_len = 'x8' is not a number (row cell_00)"),
              std::string::npos)
        << corrupt.err;
    EXPECT_NE(corrupt.err.find("error: report: figures failed"), std::string::npos) << corrupt.err;
  }
  // `attnlab report` names what is wrong with a folder that is no result
  const RunResult bad = run("report " + root.string());
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("error: report: " + root.string() + " has no results.csv"), std::string::npos) << bad.err;
}

// Two CPU training runs that differ in optimizer.lr: each gets its loss.png, and
// `attnlab plot a b` draws both in one figure whose legend names the difference.
TEST_F(Report, PlotTwoRunsNamesTheDifferingKey) {
  if (!have_matplotlib()) GTEST_SKIP() << "needs python3-matplotlib";
  {
    std::ofstream text(root / "text.txt");
    std::mt19937 rng(std::random_device{}());
    for (int i = 0; i < 3000; ++i) text << "lorem ipsum dolor sit amet consectetur"[rng() % 38];
  }
  const std::string common = "train -c /dev/null --model.n_layer=1 --model.n_head=2 --model.n_embd=16 "
                             "--model.block_size=16 --training.batch_size=2 --training.eval_iters=1 "
                             "--training.eval_interval=2 --training.max_iters=4 --device.backend=cpu "
                             "--data.tokenizer=char --data.inputs='[\"" + (root / "text.txt").string() +
                             "\"]' --data.dir=\"" + (root / "data").string() + "\"";
  for (const char* lr : {"0.001", "0.002"}) {
    const std::string name = lr == std::string("0.001") ? "a" : "b";
    const RunResult t = run(common + " --optimizer.lr=" + lr + " --training.out_dir=\"" +
                            (root / "runs" / name).string() + "\"");
    ASSERT_EQ(t.code, 0) << t.err;
    EXPECT_EQ(t.err.find("warning"), std::string::npos) << t.err;
    figure_record(root / "runs" / name / "loss.png");
  }
  // without matplotlib training ends normally, with one warning line and no figure
  const RunResult c = run(common + " --training.out_dir=\"" + (root / "runs" / "c").string() + "\"",
                          "ATTN_PYTHON=/no/such/python3");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.err.find("warning: figures skipped: no python3 with matplotlib"), std::string::npos) << c.err;
  EXPECT_EQ(c.err.find("warning"), c.err.rfind("warning")) << c.err;
  EXPECT_TRUE(fs::exists(root / "runs" / "c" / "metrics.jsonl"));
  EXPECT_FALSE(fs::exists(root / "runs" / "c" / "loss.png"));
  const fs::path a = root / "runs" / "a", b = root / "runs" / "b";
  const std::vector<std::string> labels = attn::run_labels({a.string(), b.string()});
  EXPECT_EQ(labels, (std::vector<std::string>{"a: optimizer.lr=0.001", "b: optimizer.lr=0.002"}));

  for (const char* x : {"step", "tokens"}) {
    const fs::path png = root / (std::string("cmp_") + x + ".png");
    const RunResult p = run("plot " + a.string() + " " + b.string() + " --out " + png.string() + " --x " + x);
    ASSERT_EQ(p.code, 0) << p.err;
    const nlohmann::json j = figure_record(png);
    EXPECT_TRUE(contains(j.at("legend"), "a: optimizer.lr=0.001")) << j.dump();
    EXPECT_TRUE(contains(j.at("legend"), "b: optimizer.lr=0.002")) << j.dump();
    EXPECT_EQ(j.at("panels")[0].at("x_label"), x == std::string("step") ? "step" : "tokens seen");
  }
  // one line errors: a directory that is no run, a run without metrics, no matplotlib
  RunResult e = run("plot " + a.string() + " " + root.string());
  EXPECT_EQ(e.code, 1);
  EXPECT_NE(e.err.find("error: plot: " + root.string() + " has no config.toml"), std::string::npos) << e.err;
  e = run("plot " + a.string() + " --out " + (root / "nowhere" / "x.png").string());
  EXPECT_EQ(e.code, 1);
  EXPECT_NE(e.err.find("error: plot: the folder of --out " + (root / "nowhere" / "x.png").string() + " does not exist"),
            std::string::npos)
      << e.err;
  fs::remove(b / "metrics.jsonl");
  e = run("plot " + a.string() + " " + b.string());
  EXPECT_EQ(e.code, 1);
  EXPECT_NE(e.err.find("has no metrics.jsonl"), std::string::npos) << e.err;
  e = run("plot " + a.string(), "ATTN_PYTHON=/no/such/python3");
  EXPECT_EQ(e.code, 1);
  EXPECT_NE(e.err.find("error: plot: figures skipped: no python3 with matplotlib"), std::string::npos) << e.err;
}

// More than three differing keys: the first three and a count; no difference: the directory's name.
TEST_F(Report, RunLabelsNameAtMostThreeKeys) {
  for (const auto& [name, toml] : {std::pair<std::string, std::string>{"x", "[model]\nn_layer = 1\n"},
                                   {"y", "[model]\nn_layer = 2\nn_head = 2\nn_embd = 64\n[optimizer]\nlr = 0.001\n"},
                                   {"z", "[model]\nn_layer = 1\n"}}) {
    fs::create_directories(root / name);
    std::ofstream(root / name / "config.toml") << toml;
  }
  const auto labels = attn::run_labels({(root / "x").string(), (root / "y").string()});
  EXPECT_EQ(labels[1], "y: model.n_layer=2, model.n_head=2, model.n_embd=64 (+1 more)");
  EXPECT_EQ(attn::run_labels({(root / "x").string(), (root / "z").string()}),
            (std::vector<std::string>{"x", "z"}));
}

// bench-generate on the CPU: its figures (tokens/s and cache size against context length, log2,
// ticks at the measured lengths) and its page.
TEST_F(Report, BenchGenerateWritesFiguresAndAPage) {
  if (!have_matplotlib()) GTEST_SKIP() << "needs python3-matplotlib";
  std::ofstream(root / "tiny.toml") << "[model]\nn_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 64\n"
                                       "[device]\nbackend = \"cpu\"\nthreads = 1\n";
  const RunResult r = run("bench-generate -c " + (root / "tiny.toml").string() +
                          " --batches 1,2 --prompt-lens 8,24 --new-tokens 8 --kv-cache fp32 --vocab-size 64 --out " +
                          (root / "gen").string());
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json tps = figure_record(root / "gen" / "tokens_per_s.png");
  EXPECT_EQ(tps.at("panels")[0].at("x_ticks"), nlohmann::json({"16", "32"}));  // prompt + new tokens
  EXPECT_TRUE(contains(tps.at("legend"), "fp32 cache, kv_heads=2, B=2")) << tps.dump();
  EXPECT_TRUE(contains(tps.at("legend"), "no cache, B=1")) << tps.dump();
  figure_record(root / "gen" / "cache_memory.png");
  const std::string html = file_text(root / "gen" / "report.html");
  EXPECT_NE(html.find("attnlab generation benchmark"), std::string::npos);
  EXPECT_NE(html.find("<img alt=\"cache_memory.png\""), std::string::npos);
  EXPECT_NE(html.find("bench-generate -c"), std::string::npos);  // the command
}
