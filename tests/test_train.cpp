// End-to-end training on the CPU backend: exact resume, gradient accumulation, learning.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "config/config.h"
#include "data/prepare.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"
#include "train/figures.h"
#include "train/hf_gpt2.h"
#include "test_support.h"
#include "train/trainer.h"
#include "word_dataset.h"

using namespace attn;
namespace fs = std::filesystem;

namespace {

// A small synthetic English-like corpus (words from a fixed list, fresh order each run).
fs::path make_dataset(const fs::path& root) { return attn::testing::make_word_dataset(root, std::random_device{}()); }

Config tiny_config(const fs::path& data, const fs::path& out, std::vector<std::string> extra = {}) {
  std::vector<std::string> ov = {"--model.n_layer=2", "--model.n_head=2", "--model.n_embd=32",
                                 "--model.block_size=16", "--training.batch_size=4", "--training.max_iters=8",
                                 "--training.eval_interval=4", "--training.eval_iters=2",
                                 "--training.log_interval=1", "--checkpoint.interval=0",
                                 "--schedule.warmup_iters=2", "--optimizer.lr=3e-3", "--schedule.min_lr=3e-4",
                                 "--device.backend=cpu", "--logging.plot=true",
                                 "--data.dir=\"" + data.string() + "\"", "--training.out_dir=\"" + out.string() + "\""};
  ov.insert(ov.end(), extra.begin(), extra.end());
  return load_config("", ov);
}

// The final weights and AdamW moments of a run, tensor by tensor.
std::map<std::string, std::vector<float>> final_state(const fs::path& out) {
  std::map<std::string, std::vector<float>> all;
  const fs::path ck = resolve_checkpoint(out.string());
  for (const char* f : {"model.safetensors", "optimizer.safetensors"})
    for (auto& [name, t] : read_safetensors((ck / f).string()).tensors) all[std::string(f) + ":" + name] = t.data;
  return all;
}

std::string losses(const fs::path& out) {
  std::ifstream in(out / "metrics.jsonl");
  std::string all, line;
  while (std::getline(in, line))
    if (line.find("\"loss\"") != std::string::npos) all += line.substr(0, line.find("\"step_ms\"")) + "\n";
  return all;
}

}  // namespace

TEST(Train, ResumeIsExact) {
  const fs::path root = fs::temp_directory_path() / ("attn_resume_" + std::to_string(std::random_device{}()));
  const fs::path data = make_dataset(root);
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{}, std::vector<std::string>{"--model.dropout=0.1", "--training.grad_accum=2"}}) {
    fs::remove_all(root / "a");
    fs::remove_all(root / "b");
    const Config ca = tiny_config(data, root / "a", extra), cb = tiny_config(data, root / "b", extra);
    TrainOptions quiet;
    quiet.quiet = true;
    const TrainResult full = run_training(ca, quiet);
    EXPECT_EQ(full.step, 8);

    TrainOptions part = quiet;
    part.stop_after = 3;
    const TrainResult first = run_training(cb, part);
    EXPECT_TRUE(first.interrupted);
    EXPECT_EQ(first.step, 3);
    TrainOptions resume = quiet;
    resume.resume = true;
    const TrainResult second = run_training(cb, resume);
    EXPECT_EQ(second.step, 8);
    EXPECT_EQ(second.last_loss, full.last_loss);  // bitwise: same machine, same threads
    EXPECT_EQ(second.val_loss, full.val_loss);
    const auto sa = final_state(root / "a"), sb = final_state(root / "b");
    ASSERT_EQ(sa.size(), sb.size());
    for (const auto& [name, values] : sa) EXPECT_TRUE(values == sb.at(name)) << name << " differs after resume";
    EXPECT_EQ(losses(root / "a"), losses(root / "b"));
    // drawn when plot.py is beside this binary (the build copies it there) and matplotlib imports;
    // else warned of and skipped
    const bool can_plot = fs::exists(attn::plot_script()) &&
                          std::system("/usr/bin/python3 -c 'import matplotlib' > /dev/null 2>&1") == 0;
    if (can_plot) EXPECT_TRUE(fs::exists(root / "b" / "loss.png"));
    EXPECT_TRUE(fs::exists(root / "b" / "config.toml"));
  }
  fs::remove_all(root);
}

TEST(Train, LossDecreases) {
  const fs::path root = fs::temp_directory_path() / ("attn_learn_" + std::to_string(std::random_device{}()));
  const fs::path data = make_dataset(root);
  TrainOptions quiet;
  quiet.quiet = true;
  const Config cfg = tiny_config(data, root / "run", {"--training.max_iters=60", "--training.eval_interval=0"});
  const TrainResult r = run_training(cfg, quiet);
  // A 12-word language spelled in ~15 characters: far below the uniform ln(vocab) after 60 steps.
  EXPECT_LT(r.val_loss, 2.2) << "val loss " << r.val_loss;
  fs::remove_all(root);
}

// --init-from: the loss of step 0 is the source model's loss on the same batch (the batch
// is a pure function of (seed, step, micro-step)), from our run, from an HF GPT2 directory
// (written by export-hf, tokenizer-less like a bare HF checkpoint), and with the block
// size cropped; the optimizer and schedule start afresh at step 0.
TEST(Train, InitFromStartsAtTheSourceModelsLoss) {
  const fs::path root = fs::temp_directory_path() / ("attn_initfrom_" + std::to_string(std::random_device{}()));
  const fs::path data = make_dataset(root);
  Config src_cfg = tiny_config(data, root / "src", {"--training.max_iters=4", "--training.eval_interval=0"});
  TrainOptions quiet;
  quiet.quiet = true;
  run_training(src_cfg, quiet);
  export_hf_gpt2((root / "src").string(), (root / "hf").string());
  fs::remove(root / "hf" / "tokenizer.json");
  fs::remove(root / "hf" / "attnlab_config.toml");

  const DatasetInfo info = load_dataset_info(data.string());
  const DataLoader loader(info.train_shards, info.vocab_size);
  for (const auto& [source, block] : {std::pair{root / "src", 16}, std::pair{root / "hf", 16}, std::pair{root / "hf", 8}}) {
    SCOPED_TRACE(source.string() + " block " + std::to_string(block));
    const std::string b = std::to_string(block);
    Config cfg = tiny_config(data, root / "ft", {"--training.max_iters=1", "--training.eval_interval=0",
                                                "--model.block_size=" + b, "--training.seq_len=" + b,
                                                "--training.seed=77", "--model.dropout=0.0"});
    fs::remove_all(root / "ft");
    TrainOptions opts = quiet;
    opts.init_from = source.string();
    const TrainResult r = run_training(cfg, opts);
    EXPECT_EQ(r.step, 1);

    // The source model (block 16) on step 0's batch of the fine-tuning run.
    Config eval_cfg = load_config((fs::path(resolve_checkpoint((root / "src").string())) / "config.toml").string());
    const GPTConfig g = make_gpt_config(eval_cfg, info.vocab_size);
    auto model = make_backend(g, backend_options(eval_cfg, info.eot_id, 4, block));
    model->set_params(load_checkpoint(resolve_checkpoint((root / "src").string()), model->layout()).params.data());
    std::vector<int32_t> x(4 * block), y(x.size());
    loader.batch(77, 0, 0, 4, block, x.data(), y.data());
    const double want = model->forward_loss(Batch{x.data(), y.data(), 4, block});
    EXPECT_NEAR(r.last_loss, want, 1e-5);
  }
  // A shape that does not match is an error naming the key.
  Config wide = tiny_config(data, root / "bad", {"--model.n_embd=64"});
  TrainOptions opts = quiet;
  opts.init_from = (root / "src").string();
  EXPECT_NE(attn::testing::error_of([&] { run_training(wide, opts); }).find("model.n_embd = 64"), std::string::npos);
  Config longer = tiny_config(data, root / "bad", {"--model.block_size=32"});
  EXPECT_NE(attn::testing::error_of([&] { run_training(longer, opts); }).find("can only be cropped"), std::string::npos);
  fs::remove_all(root);
}
