// `attnlab ablate` on the CPU backend: a 2x2 grid of tiny models runs cell by cell (each a
// separate process) and leaves results.csv, results.md, env.json and report.html (the figures
// and the page in a browser: test_report.cpp); a failing cell is recorded with its error and the
// sweep goes on.
#include <fmt/format.h>
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

  int ablate(const std::string& grid_toml, const std::string& extra = "") {
    std::ofstream(root / "grid.toml") << grid_toml;
    const std::string cmd = std::string(ATTN_BINARY) + " ablate -c " + (root / "tiny.toml").string() + " --grid " +
                            (root / "grid.toml").string() + " --out " + (root / "out").string() + extra + " > " +
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
  EXPECT_NE(slurp(root / "out" / "env.json").find("\"backend\": \"cpu\""), std::string::npos);
  EXPECT_NE(slurp(root / "out" / "report.html").find("<td>naive</td>"), std::string::npos);
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

TEST_F(Ablate, NoRunnableCellIsAFailure) {  // used to say "0 of 1 cells ran" and exit 0
  EXPECT_EQ(1, ablate("steps = 1\nwarmup = 0\nvocab_size = 64\n[grid]\nattention.impl = [\"bogus\"]\n"));
  EXPECT_NE(slurp(root / "log").find("error: ablate: none of the 1 cells ran"), std::string::npos) << slurp(root / "log");
}

// The precision axis: fp32, tf32 and bf16 are one row each of one table. On the CPU only
// fp32 runs; tf32 and bf16 are rows with their cell's error line naming device.precision.
TEST_F(Ablate, PrecisionAxisFp32Tf32Bf16IsOneTable) {
  ASSERT_EQ(0, ablate("steps = 1\nwarmup = 0\nvocab_size = 64\n"
                      "[grid]\ndevice.precision = [\"fp32\", \"tf32\", \"bf16\"]\n"))
      << slurp(root / "log");
  const auto csv = lines_of(slurp(root / "out" / "results.csv"));
  ASSERT_EQ(csv.size(), 4u) << slurp(root / "out" / "results.csv");  // header + 3 cells
  EXPECT_NE(csv[1].find(",fp32,ok,"), std::string::npos) << csv[1];
  for (const auto& [row, p] : {std::pair{2, "tf32"}, std::pair{3, "bf16"}}) {
    EXPECT_NE(csv[row].find(fmt::format(",{},error,", p)), std::string::npos) << csv[row];
    EXPECT_NE(csv[row].find("device.precision = "), std::string::npos) << csv[row];
    EXPECT_NE(csv[row].find("needs the cuda backend"), std::string::npos) << csv[row];
  }
  const auto md = lines_of(slurp(root / "out" / "results.md"));
  ASSERT_EQ(md.size(), 5u) << slurp(root / "out" / "results.md");  // header, rule, 3 rows
  EXPECT_NE(md[2].find("| fp32 |"), std::string::npos) << md[2];
  EXPECT_NE(md[3].find("| tf32 | error: device.precision"), std::string::npos) << md[3];
  EXPECT_NE(md[4].find("| bf16 | error: device.precision"), std::string::npos) << md[4];
}

// Prefix-LM runs in the grid beside causal attention (the variant list of configs/grid_attention.toml).
TEST_F(Ablate, PrefixLmBesideCausal) {
  ASSERT_EQ(0, ablate("tokens_per_batch = 16\nsteps = 2\nwarmup = 1\nvocab_size = 64\n"
                      "[grid]\ntraining.seq_len = [8]\n"
                      "[[variant]]\nname = \"causal\"\n"
                      "[[variant]]\nname = \"prefix_lm\"\nattention.prefix_lm = true\nattention.prefix_len = 4\n"))
      << slurp(root / "log");
  const auto csv = lines_of(slurp(root / "out" / "results.csv"));
  ASSERT_EQ(csv.size(), 3u) << slurp(root / "out" / "results.csv");
  EXPECT_EQ(csv[1].find("cell_00,causal,8,2,fp32,ok"), 0u) << csv[1];
  EXPECT_EQ(csv[2].find("cell_01,prefix_lm,8,2,fp32,ok"), 0u) << csv[2];
  EXPECT_NE(csv[2].find("--attention.prefix_lm=true"), std::string::npos) << csv[2];
}

// [[variant]] tables: named rows crossed with the axes (the variant varying slowest), each
// with its own overrides; [[torch]] peers: one process per seq_len, here a stand-in script
// that prints the JSON line torch_gpt.py would, and runs out of memory at seq_len 16.
TEST_F(Ablate, NamedVariantsAndTorchPeers) {
  std::ofstream(root / "peer.sh") << "for a in \"$@\"; do echo \"arg $a\"; done\n"
                                     "case \"$*\" in *'--seq 16'*) echo 'torch.OutOfMemoryError: CUDA out of memory.'; "
                                     "exit 1;; esac\n"
                                     "echo '{\"who\": \"pytorch\", \"tokens_per_s\": 1234.4, \"step_ms\": 2.5, "
                                     "\"peak_bytes\": 1073741824, \"loss_last\": 4.25, \"mfu\": 0.5}'\n";
  ASSERT_EQ(0, ablate("tokens_per_batch = 32\nsteps = 1\nwarmup = 0\nvocab_size = 64\n"
                      "python = \"/bin/sh\"\ntorch_script = \"" + (root / "peer.sh").string() + "\"\n"
                      "[grid]\ntraining.seq_len = [8, 16]\n"
                      "[[variant]]\nname = \"one-layer\"\nmodel.n_layer = 1\n"
                      "[[variant]]\nname = \"two+layers\"\nmodel.n_layer = 2\nattention.impl = \"naive\"\n"
                      "[[torch]]\nname = \"torch.compile+flash\"\nsdpa = \"flash\"\ncompile = true\n"))
      << slurp(root / "log");
  const auto csv = lines_of(slurp(root / "out" / "results.csv"));
  ASSERT_EQ(csv.size(), 7u) << slurp(root / "out" / "results.csv");  // header + 2 x 2 cells + 2 peer rows
  EXPECT_EQ(csv[1].find("cell_00,one-layer,8,4,fp32,ok"), 0u) << csv[1];
  EXPECT_EQ(csv[2].find("cell_01,one-layer,16,2,fp32,ok"), 0u) << csv[2];
  EXPECT_EQ(csv[3].find("cell_02,two+layers,8,4,fp32,ok"), 0u) << csv[3];
  EXPECT_NE(csv[3].find("--model.n_layer=2"), std::string::npos) << csv[3];
  EXPECT_EQ(csv[1].find("--model.n_layer=2"), std::string::npos) << csv[1];
  EXPECT_EQ(csv[5].find("cell_04,torch.compile+flash,8,4,bf16,ok,1234.4,2.500,0.5000,1.0000"), 0u) << csv[5];
  EXPECT_EQ(csv[6].find("cell_05,torch.compile+flash,16,2,bf16,oom"), 0u) << csv[6];
  // the peer got the model shape and the batch of the grid
  const std::string peer_log = slurp(root / "out" / "cells" / "cell_04.log");
  for (const char* arg : {"arg --sdpa\narg flash\n", "arg --compile\narg 1\n", "arg --batch\narg 4\n",
                          "arg --seq\narg 8\n", "arg --n_embd\narg 16\n", "arg --n_head\narg 2\n"})
    EXPECT_NE(peer_log.find(arg), std::string::npos) << arg << peer_log;
  const std::string md = slurp(root / "out" / "results.md");
  EXPECT_NE(md.find("| torch.compile+flash | 8 | 4 | bf16 | 1234 | 2.5 | 50.0% | 1.00 | n/a |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("| torch.compile+flash | 16 | 2 | bf16 | OOM |"), std::string::npos) << md;
}

// A peer's precision (torch_gpt.py --precision) is passed on and labels its rows; a value
// torch_gpt.py does not take is one error line naming the peer and the key.
TEST_F(Ablate, TorchPeerPrecisionIsPassedOnAndChecked) {
  std::ofstream(root / "peer.sh") << "for a in \"$@\"; do echo \"arg $a\"; done\n"
                                     "echo '{\"who\": \"pytorch\", \"tokens_per_s\": 10.0, \"step_ms\": 2.5, "
                                     "\"peak_bytes\": 1073741824, \"loss_last\": 4.25, \"mfu\": 0.5}'\n";
  const std::string head = "tokens_per_batch = 32\nsteps = 1\nwarmup = 0\nvocab_size = 64\n"
                           "python = \"/bin/sh\"\ntorch_script = \"" + (root / "peer.sh").string() + "\"\n"
                           "[grid]\ntraining.seq_len = [8]\n"
                           "[[torch]]\nname = \"torch eager fp32\"\nsdpa = \"efficient\"\n";
  ASSERT_EQ(0, ablate(head + "precision = \"fp32\"\n")) << slurp(root / "log");
  const auto csv = lines_of(slurp(root / "out" / "results.csv"));
  ASSERT_EQ(csv.size(), 3u) << slurp(root / "out" / "results.csv");
  EXPECT_EQ(csv[2].find("cell_01,torch eager fp32,8,4,fp32,ok"), 0u) << csv[2];
  EXPECT_NE(slurp(root / "out" / "cells" / "cell_01.log").find("arg --precision\narg fp32\n"), std::string::npos);
  EXPECT_EQ(1, ablate(head + "precision = \"fp16\"\n"));
  EXPECT_NE(slurp(root / "log").find("[[torch]] 'torch eager fp32': precision = \"fp16\""), std::string::npos)
      << slurp(root / "log");
}

TEST_F(Ablate, AVariantWithAnArrayIsOneLineError) {
  EXPECT_EQ(1, ablate("[grid]\ntraining.seq_len = [8]\n[[variant]]\nname = \"x\"\nmodel.n_layer = [1, 2]\n"));
  EXPECT_NE(slurp(root / "log").find("[[variant]] 'x': model.n_layer is an array"), std::string::npos)
      << slurp(root / "log");
}

TEST_F(Ablate, ABadGridIsOneLineError) {
  EXPECT_EQ(1, ablate("stepz = 1\n[grid]\nattention.impl = [\"naive\"]\n"));
  EXPECT_NE(slurp(root / "log").find("unknown key 'stepz'"), std::string::npos) << slurp(root / "log");
}

}  // namespace

// --resume keeps the measured cells of an interrupted sweep and runs only the missing ones: a
// cell whose row is kept is not run again (its log is not rewritten), a missing one is.
TEST_F(Ablate, ResumeKeepsMeasuredCellsAndRunsTheRest) {
  const std::string grid = "tokens_per_batch = 32\nsteps = 1\nwarmup = 0\nvocab_size = 64\n"
                           "[grid]\ntraining.seq_len = [8, 16]\n";
  ASSERT_EQ(0, ablate(grid)) << slurp(root / "log");
  const fs::path out = root / "out";
  auto csv = lines_of(slurp(out / "results.csv"));
  ASSERT_EQ(csv.size(), 3u);
  // Pretend the sweep stopped after the first cell, with a marker in its row to recognise it.
  const std::string kept = csv[1].substr(0, csv[1].find(",ok,")) + ",ok,12345.0" +
                           csv[1].substr(csv[1].find(',', csv[1].find(",ok,") + 4));
  std::ofstream(out / "results.csv", std::ios::trunc) << csv[0] << "\n" << kept << "\n";
  fs::remove(out / "cells" / "cell_01.log");
  std::ofstream(out / "cells" / "cell_00.log", std::ios::trunc) << "untouched";
  ASSERT_EQ(0, ablate(grid, " --resume")) << slurp(root / "log");
  csv = lines_of(slurp(out / "results.csv"));
  ASSERT_EQ(csv.size(), 3u) << slurp(out / "results.csv");
  EXPECT_NE(csv[1].find(",ok,12345.0,"), std::string::npos) << csv[1];  // kept, not re-measured
  EXPECT_NE(csv[2].find(",ok,"), std::string::npos) << csv[2];          // run now
  EXPECT_EQ(slurp(out / "cells" / "cell_00.log"), "untouched");
  EXPECT_TRUE(fs::exists(out / "cells" / "cell_01.log"));
  // Without --resume everything runs again.
  ASSERT_EQ(0, ablate(grid)) << slurp(root / "log");
  EXPECT_EQ(slurp(out / "results.csv").find("12345.0"), std::string::npos);
}
