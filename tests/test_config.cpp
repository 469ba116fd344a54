// Config: parsing, overrides, and the errors a user gets for bad keys, types and values.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "test_support.h"

#include <filesystem>
#include <fstream>

#include "config/config.h"
#include "core/error.h"
#include "core/precision.h"
#include "train/trainer.h"

using namespace attn;

namespace {

std::string write_temp(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() / "attn_test_config";
  std::filesystem::create_directories(dir);
  const auto p = dir / name;
  std::ofstream(p) << text;
  return p.string();
}

using attn::testing::error_of;

}  // namespace

TEST(Config, ParsesSectionsAndOverrides) {
  const std::string path = write_temp("ok.toml", R"(
[model]
n_layer = 6
n_head = 6
n_embd = 384
dropout = 0.2
[attention]
impl = "naive"
[data]
inputs = ["a.txt", "b"]
tokenizer = "char"
[optimizer]
lr = 1e-3
)");
  const Config c = load_config(path, {"--model.n_layer=2", "--device.backend=cpu", "--training.out_dir=\"x y\""});
  EXPECT_EQ(c.model.n_layer, 2);
  EXPECT_EQ(c.model.n_head, 6);
  EXPECT_DOUBLE_EQ(c.model.dropout, 0.2);
  EXPECT_DOUBLE_EQ(c.attn_dropout(), 0.2);
  EXPECT_EQ(c.data.inputs.size(), 2u);
  EXPECT_EQ(c.device.backend, "cpu");
  EXPECT_EQ(c.training.out_dir, "x y");
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 1e-3);
  EXPECT_EQ(c.origin.at("model.n_layer"), "command line");
  EXPECT_EQ(c.origin.at("model.n_head"), path);
}

TEST(Config, EffectiveConfigRoundTrips) {
  Config c = load_config("", {"--model.n_layer=3", "--data.inputs=[\"q\"]", "--attention.softcap=30.0"});
  Config d;
  apply_toml_text(d, to_toml(c), "effective");
  validate(d);
  EXPECT_EQ(to_toml(c), to_toml(d));
  EXPECT_EQ(d.model.n_layer, 3);
  EXPECT_EQ(d.data.inputs, std::vector<std::string>{"q"});
  EXPECT_FLOAT_EQ(d.attention.softcap, 30.0f);
}

TEST(Config, UnknownKeyNamesKeyAndFile) {
  const std::string path = write_temp("unknown.toml", "[model]\nn_layr = 4\n");
  const std::string msg = error_of([&] { load_config(path); });
  EXPECT_NE(msg.find("model.n_layr"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { load_config(write_temp("sec.toml", "[modle]\nn_layer = 4\n")); }).find("modle"),
            std::string::npos);
}

TEST(Config, WrongTypeNamesKeyAndType) {
  const std::string path = write_temp("type.toml", "[model]\nn_layer = \"four\"\n");
  const std::string msg = error_of([&] { load_config(path); });
  EXPECT_NE(msg.find("model.n_layer"), std::string::npos) << msg;
  EXPECT_NE(msg.find("integer"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(error_of([] { load_config("", {"--training.batch_size=1.5"}); }).find("training.batch_size"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_config("", {"--logging.jsonl=1"}); }).find("boolean"), std::string::npos);
}

TEST(Config, ImpossibleValuesAreRefused) {
  const std::string path = write_temp("bad.toml", "[model]\nn_embd = 100\nn_head = 3\n");
  const std::string msg = error_of([&] { load_config(path); });
  EXPECT_NE(msg.find("divisible"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  auto refuses = [](std::vector<std::string> ov, const char* key) {
    const std::string m = error_of([&] { load_config("", ov); });
    EXPECT_NE(m.find(key), std::string::npos) << "expected an error naming " << key << ", got: '" << m << "'";
  };
  refuses({"--training.seq_len=128", "--model.block_size=64"}, "training.seq_len");
  refuses({"--model.n_kv_head=3", "--model.n_head=4"}, "model.n_kv_head");
  refuses({"--attention.impl=\"fast\""}, "attention.impl");
  refuses({"--device.precision=fp16"}, "device.precision");
  refuses({"--model.dropout=1.0"}, "model.dropout");
  refuses({"--optimizer.lr=-1"}, "optimizer.lr");
  refuses({"--schedule.min_lr=1.0"}, "schedule.min_lr");
  refuses({"--training.batch_size=0"}, "training.batch_size");
  refuses({"--device.backend=tpu"}, "device.backend must be \"auto\", \"cpu\" or \"cuda\" (got \"tpu\")");
  refuses({"--schedule.decay=\"linear\""}, "schedule.decay must be \"cosine\" or \"constant\"");
  // data.tokenizer / data.val_split: the lists `attnlab prepare` checks (data/prepare.h)
  refuses({"--data.tokenizer=\"wordpiece\""}, "data.tokenizer must be \"bpe\", \"char\" or \"gpt2\" (got \"wordpiece\")");
  refuses({"--data.val_split=\"head\""}, "data.val_split must be \"auto\", \"documents\" or \"tail\" (got \"head\")");
}

// device.cuda_graph: on by default, off from a file or the command line, a boolean only (the
// error names the key), carried to the backend by backend_options.
TEST(Config, CudaGraphKey) {
  EXPECT_TRUE(load_config("", {}).device.cuda_graph);
  const Config off = load_config(write_temp("graph.toml", "[device]\ncuda_graph = false\n"));
  EXPECT_FALSE(off.device.cuda_graph);
  EXPECT_FALSE(backend_options(off, -1, 1, 8).cuda_graph);
  EXPECT_TRUE(backend_options(load_config("", {}), -1, 1, 8).cuda_graph);
  EXPECT_FALSE(load_config("", {"--device.cuda_graph=false"}).device.cuda_graph);
  for (const char* bad : {"--device.cuda_graph=1", "--device.cuda_graph=yes", "--device.cuda_graph=\"true\""}) {
    const std::string msg = error_of([&] { load_config("", {bad}); });
    EXPECT_NE(msg.find("device.cuda_graph"), std::string::npos) << bad << ": " << msg;
    EXPECT_NE(msg.find("boolean"), std::string::npos) << bad << ": " << msg;
  }
  EXPECT_TRUE(load_config("", {}).device.matmul_autotune);
  EXPECT_FALSE(backend_options(load_config("", {"--device.matmul_autotune=false"}), -1, 1, 8).matmul_autotune);
  EXPECT_NE(error_of([] { load_config("", {"--device.matmul_autotune=2"}); }).find("device.matmul_autotune"),
            std::string::npos);
  Config round;
  apply_toml_text(round, to_toml(off), "effective");
  EXPECT_FALSE(round.device.cuda_graph);
}

// device.precision: the three names, one mapping (core/precision.h); tf32 is fp32 storage
// with TF32 matmuls; anything else is refused naming the key and the choices.
TEST(Config, PrecisionNamesMapToStorageAndMatmuls) {
  EXPECT_EQ(load_config("", {"--device.precision=tf32"}).device.precision, "tf32");
  EXPECT_EQ(load_config("", {"--device.precision=fp32"}).device.precision, "fp32");
  EXPECT_EQ(load_config("", {"--device.precision=bf16"}).device.precision, "bf16");
  ASSERT_TRUE(parse_precision("tf32").has_value());
  EXPECT_EQ(*parse_precision("tf32"), Precision::TF32);
  EXPECT_EQ(activation_dtype(Precision::TF32), DType::F32);
  EXPECT_EQ(activation_dtype(Precision::FP32), DType::F32);
  EXPECT_EQ(activation_dtype(Precision::BF16), DType::BF16);
  EXPECT_TRUE(tf32_matmuls(Precision::TF32));
  EXPECT_FALSE(tf32_matmuls(Precision::FP32));
  EXPECT_FALSE(tf32_matmuls(Precision::BF16));
  for (const char* bad : {"TF32", "tf16", "fp16", ""}) {
    EXPECT_FALSE(parse_precision(bad).has_value()) << bad;
    const std::string m = error_of([&] { load_config("", {fmt::format("--device.precision=\"{}\"", bad)}); });
    EXPECT_NE(m.find("device.precision"), std::string::npos) << m;
    EXPECT_NE(m.find("\"fp32\", \"tf32\", \"bf16\" or \"fp8\""), std::string::npos) << m;
  }
}

// fp8: bf16 storage with fp8 linear-layer matmuls; refused on the CPU backend and for widths
// cuBLASLt's fp8 matmuls cannot take (not multiples of 16), each naming the key.
TEST(Config, Fp8PrecisionIsValidatedInOnePlace) {
  EXPECT_EQ(load_config("", {"--device.precision=fp8", "--device.backend=cuda"}).device.precision, "fp8");
  ASSERT_TRUE(parse_precision("fp8").has_value());
  EXPECT_EQ(*parse_precision("fp8"), Precision::FP8);
  EXPECT_EQ(activation_dtype(Precision::FP8), DType::BF16);
  EXPECT_TRUE(fp8_matmuls(Precision::FP8));
  EXPECT_FALSE(fp8_matmuls(Precision::BF16));
  EXPECT_FALSE(tf32_matmuls(Precision::FP8));
  const std::string cpu = error_of([] { load_config("", {"--device.precision=fp8", "--device.backend=cpu"}); });
  EXPECT_NE(cpu.find("device.precision"), std::string::npos) << cpu;
  EXPECT_NE(cpu.find("cuda"), std::string::npos) << cpu;
  const std::string width = error_of([] {
    load_config("", {"--device.precision=fp8", "--device.backend=cuda", "--model.n_embd=72", "--model.n_head=4"});
  });
  EXPECT_NE(width.find("model.n_embd"), std::string::npos) << width;
  EXPECT_NE(width.find("multiple of 16"), std::string::npos) << width;
  // the same width is fine in bf16
  EXPECT_NO_THROW(load_config("", {"--device.precision=bf16", "--model.n_embd=72", "--model.n_head=4"}));
}

TEST(Config, MalformedInputsAreRefused) {
  EXPECT_NE(error_of([] { load_config("/nonexistent/x.toml"); }).find("/nonexistent/x.toml"), std::string::npos);
  const std::string path = write_temp("syntax.toml", "[model\nn_layer = 4\n");
  EXPECT_NE(error_of([&] { load_config(path); }).find("invalid TOML"), std::string::npos);
  EXPECT_NE(error_of([] { load_config("", {"--nodot=3"}); }).find("nodot"), std::string::npos);
}

TEST(Config, ShippedConfigsAreValid) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(ATTN_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".toml" || e.path().filename().string().rfind("grid", 0) == 0) continue;
    EXPECT_NO_THROW(load_config(e.path().string())) << e.path();
    ++n;
  }
  EXPECT_GE(n, 3);
}
