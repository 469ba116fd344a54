// `attnlab ablate` on the CPU backend: a 2x2 grid of tiny models runs cell by cell (each a
// separate process) and leaves results.csv, results.md and the SVG plots; a failing cell is
// recorded with its error and the sweep goes on.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

class Ablate : public ::testing::Test {
 protected:
  fs::path root;
  void SetUp() override {
    root = fs::temp_directory_path() / ("attn_ablate_" + std::to_string(std::random_device{}()));
    fs::create_directories(root);
    std::ofstream(root / "tiny.toml") << "[model]\nn_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 8\n"
                                         "[training]\nbatch_size = 2\n[device]\nbackend = \"cpu\"\nthreads = 1\n";
  }
  void TearDown() override { fs::remove_all(root); }

  int ablate(const std::string& grid_toml) {
    std::ofstream(root / "grid.toml") << grid_toml;
    const std::string cmd = std::string(ATTN_BINARY) + " ablate -c " + (root / "tiny.toml").string() + " --grid " +
                            (root / "grid.toml").string() + " --out " + (root / "out").string() + " > " +
                            (root / "log").string() + " 2>&1";
    const int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

TEST_F(Ablate, TwoByTwoGridWritesTheReport) {
  ASSERT_EQ(0, ablate("tokens_per_batch = 32\nsteps = 2\nwarmup = 1\nvocab_size = 64\n"
                      "[grid]\ntraining.seq_len = [8, 16]\nmodel.n_layer = [1, 2]\n"))
      << slurp(root / "log");
  const auto csv = lines_of(slurp(root / "out" / "results.csv"));
  ASSERT_EQ(csv.size(), 5u) << slurp(root / "out" / "results.csv");  // header + 4 cells
  for (size_t i = 1; i < csv.size(); ++i) EXPECT_NE(csv[i].find(",ok,"), std::string::npos) << csv[i];
  // batch = tokens_per_batch / seq_len; seq_len 16 > block_size 8 overrides block_size
  int short_rows = 0, long_rows = 0;
  for (size_t i = 1; i < csv.size(); ++i) {
    short_rows += csv[i].find("naive,8,4,fp32,ok") != std::string::npos;
    if (csv[i].find("naive,16,2,fp32,ok") != std::string::npos) {
      long_rows += 1;
      EXPECT_NE(csv[i].find("--model.block_size=16"), std::string::npos) << csv[i];
    }
  }
  EXPECT_EQ(short_rows, 2);
  EXPECT_EQ(long_rows, 2);
  const std::string md = slurp(root / "out" / "results.md");
  EXPECT_EQ(md.rfind("| variant | seq_len | batch | precision | tokens/s", 0), 0u) << md;
  EXPECT_EQ(lines_of(md).size(), 6u) << md;
  for (const char* svg : {"throughput.svg", "memory.svg", "pareto.svg"}) {
    const std::string s = slurp(root / "out" / svg);
    EXPECT_EQ(s.rfind("<svg", 0), 0u) << svg;
    EXPECT_NE(s.find("</svg>"), std::string::npos) << svg;
  }
  EXPECT_NE(slurp(root / "out" / "pareto.svg").find("Pareto front"), std::string::npos);
}

TEST_F(Ablate, AFailingCellIsRecordedAndTheSweepGoesOn) {
  ASSERT_EQ(0, ablate("steps = 1\nwarmup = 0\nvocab_size = 64\n[grid]\nattention.impl = [\"bogus\", \"naive\"]\n"))
      << slurp(root / "log");
  const auto csv = lines_of(slurp(root / "out" / "results.csv"));
  ASSERT_EQ(csv.size(), 3u) << slurp(root / "out" / "results.csv");
  EXPECT_NE(csv[1].find("bogus"), std::string::npos) << csv[1];
  EXPECT_NE(csv[1].find(",error,"), std::string::npos) << csv[1];
  EXPECT_NE(csv[1].find("attention.impl must be"), std::string::npos) << csv[1];  // the cell's own error line
  EXPECT_NE(csv[2].find(",ok,"), std::string::npos) << csv[2];
  EXPECT_NE(slurp(root / "out" / "results.md").find("error: "), std::string::npos);
}

TEST_F(Ablate, ABadGridIsOneLineError) {
  EXPECT_EQ(1, ablate("stepz = 1\n[grid]\nattention.impl = [\"naive\"]\n"));
  EXPECT_NE(slurp(root / "log").find("unknown key 'stepz'"), std::string::npos) << slurp(root / "log");
}

}  // namespace
