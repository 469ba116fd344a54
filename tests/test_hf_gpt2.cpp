// export-hf / import-hf (train/hf_gpt2.*): the round trip is bitwise, the HF file holds the
// Conv1D (in, out) transposes and the un-padded vocabulary, what GPT2 cannot express is
// refused naming the key, and bad HF files name the tensor/key at fault. The numerical
// check against HF GPT2's math is tests/hf_gpt2_reference.py (ctest hf_gpt2_reference).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "data/char_tokenizer.h"
#include "data/gpt2_tokenizer.h"
#include "io/safetensors.h"
#include "model/param_layout.h"
#include "test_support.h"
#include "train/checkpoint.h"
#include "train/hf_gpt2.h"

namespace fs = std::filesystem;
using namespace attn;
using attn::testing::error_of;
using attn::testing::TempDir;

namespace {

// A checkpoint of a small random model: vocab 11 padded to 16, 2 layers, 3 heads of 4.
struct RandomCheckpoint {
  TempDir tmp{"hf_gpt2"};
  Config cfg;
  GPTConfig gpt;
  std::vector<float> params;
  std::string run_dir;

  explicit RandomCheckpoint(const std::vector<std::string>& overrides = {}) {
    std::vector<std::string> ov = {"model.n_layer=2", "model.n_head=3", "model.n_embd=12", "model.block_size=9",
                                   "model.vocab_pad_to=16"};
    ov.insert(ov.end(), overrides.begin(), overrides.end());
    cfg = load_config("", ov);
    const std::string tok_path = tmp.file("tokenizer.json");
    CharTokenizer(std::vector<char32_t>{U'a', U'b', U'c', U'd', U'e', U'f', U'g', U'h', U'i', U'j', U'\n'})
        .save(tok_path);
    gpt = make_gpt_config(cfg, 11);
    const ParamLayout layout(gpt);
    params.assign(layout.total(), 0.0f);
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (const ParamTensor& t : layout.tensors())  // every element distinct and nonzero, padding rows included
      for (size_t i = 0; i < t.numel; ++i) params[t.offset + i] = nd(rng);
    run_dir = tmp.file("run");
    save_checkpoint(run_dir, layout, params.data(), nullptr, nullptr, TrainState{}, to_toml(cfg), tok_path, 1);
  }
  std::string path(const std::string& name) const { return tmp.file(name); }
};

void rewrite_safetensors(const std::string& path, const SafetensorsFile& f) {
  std::vector<TensorView> views;
  for (const auto& [name, t] : f.tensors) views.push_back({name, t.shape, t.data.data()});
  write_safetensors(path, views, {{"format", "pt"}});
}

void edit_config_json(const std::string& path, const std::string& key, const nlohmann::json& value) {
  nlohmann::json js = nlohmann::json::parse(std::ifstream(path));
  js[key] = value;
  std::ofstream(path) << js.dump(2);
}

}  // namespace

TEST(HfGpt2, ExportedFileHasHfNamesConv1dLayoutAndRealVocab) {
  RandomCheckpoint ck;
  const std::string hf = ck.path("hf");
  export_hf_gpt2(ck.run_dir, hf);
  const SafetensorsFile f = read_safetensors(hf + "/model.safetensors");
  EXPECT_EQ(f.metadata.at("format"), "pt");
  const ParamLayout layout(ck.gpt);
  EXPECT_EQ(f.tensors.size(), layout.tensors().size());
  // wte: the 11 real rows of the 16.
  const LoadedTensor& wte = f.tensors.at("transformer.wte.weight");
  ASSERT_EQ(wte.shape, (std::vector<int64_t>{11, 12}));
  for (size_t i = 0; i < wte.data.size(); ++i) ASSERT_EQ(wte.data[i], ck.params[layout.get(layout.wte()).offset + i]);
  // c_attn: ours (3C, C) = (out, in); HF's Conv1D (C, 3C) = (in, out): W_hf[i][o] = W_ours[o][i].
  const ParamTensor& qkv = layout.get(layout.layer(1).qkv_w);
  const LoadedTensor& c_attn = f.tensors.at("transformer.h.1.attn.c_attn.weight");
  ASSERT_EQ(c_attn.shape, (std::vector<int64_t>{12, 36}));
  for (int i = 0; i < 12; ++i)
    for (int o = 0; o < 36; ++o) ASSERT_EQ(c_attn.data[i * 36 + o], ck.params[qkv.offset + o * 12 + i]) << i << "," << o;
  EXPECT_EQ(f.tensors.at("transformer.h.0.mlp.c_proj.weight").shape, (std::vector<int64_t>{48, 12}));
  EXPECT_EQ(f.tensors.at("transformer.h.0.mlp.c_fc.weight").shape, (std::vector<int64_t>{12, 48}));

  const nlohmann::json js = nlohmann::json::parse(std::ifstream(hf + "/config.json"));
  EXPECT_EQ(js.at("model_type"), "gpt2");
  EXPECT_EQ(js.at("vocab_size"), 11);
  EXPECT_EQ(js.at("n_positions"), 9);
  EXPECT_EQ(js.at("n_head"), 3);
  EXPECT_EQ(js.at("activation_function"), "gelu_new");
  EXPECT_TRUE(js.at("eos_token_id").is_null());  // the char tokenizer has no end-of-text token
  EXPECT_TRUE(fs::exists(hf + "/tokenizer.json"));
  EXPECT_TRUE(fs::exists(hf + "/README.txt"));
}

TEST(HfGpt2, ExportThenImportIsBitwiseIdentical) {
  RandomCheckpoint ck;
  export_hf_gpt2(ck.run_dir, ck.path("hf"));
  const std::string dir = import_hf_gpt2(ck.path("hf"), ck.path("back"), "");
  const Config back_cfg = load_config(checkpoint_config_path(dir));
  EXPECT_EQ(back_cfg.model.vocab_pad_to, 16);  // came back through attnlab_config.toml
  EXPECT_EQ(back_cfg.training.out_dir, ck.path("back"));
  const ParamLayout layout(ck.gpt);
  const CheckpointData back = load_checkpoint(resolve_checkpoint(ck.path("back")), layout);
  EXPECT_TRUE(back.m.empty());
  EXPECT_FALSE(back.tokenizer_path.empty());
  const ParamTensor& wte = layout.get(layout.wte());
  const size_t real_end = wte.offset + static_cast<size_t>(ck.gpt.vocab_size) * ck.gpt.n_embd;
  for (const ParamTensor& t : layout.tensors())
    for (size_t i = t.offset; i < t.offset + t.numel; ++i) {
      if (i >= real_end && i < wte.offset + wte.numel)
        ASSERT_EQ(back.params[i], 0.0f) << "wte padding row element " << i;  // never read; HF has no such rows
      else
        ASSERT_EQ(std::memcmp(&back.params[i], &ck.params[i], sizeof(float)), 0) << t.name << " element " << i - t.offset;
    }
}

TEST(HfGpt2, ExportRefusesWhatGpt2CannotExpress) {
  EXPECT_NE(error_of([] {
              RandomCheckpoint ck({"model.n_kv_head=1"});
              export_hf_gpt2(ck.run_dir, ck.path("hf"));
            }).find("model.n_kv_head"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              RandomCheckpoint ck({"attention.alibi=true"});
              export_hf_gpt2(ck.run_dir, ck.path("hf"));
            }).find("attention.alibi"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              RandomCheckpoint ck({"attention.softcap=30.0"});
              export_hf_gpt2(ck.run_dir, ck.path("hf"));
            }).find("attention.softcap"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              RandomCheckpoint ck({"attention.sliding_window=4"});
              export_hf_gpt2(ck.run_dir, ck.path("hf"));
            }).find("attention.sliding_window"),
            std::string::npos);
}

TEST(HfGpt2, ImportReadsHubNamingWithLmHeadAndMaskBuffers) {
  RandomCheckpoint ck;
  const std::string hf = ck.path("hf");
  export_hf_gpt2(ck.run_dir, hf);
  SafetensorsFile f = read_safetensors(hf + "/model.safetensors");
  SafetensorsFile hub;
  for (auto& [name, t] : f.tensors) hub.tensors[name.substr(std::string("transformer.").size())] = t;
  hub.tensors["lm_head.weight"] = hub.tensors.at("wte.weight");
  hub.tensors["h.0.attn.bias"] = LoadedTensor{{1, 1, 9, 9}, std::vector<float>(81, 1.0f)};
  rewrite_safetensors(hf + "/model.safetensors", hub);
  const std::string dir = import_hf_gpt2(hf, ck.path("back"), "");
  const ParamLayout layout(ck.gpt);
  const CheckpointData back = load_checkpoint(dir, layout);
  const ParamTensor& fc = layout.get(layout.layer(1).fc_w);
  for (size_t i = fc.offset; i < fc.offset + fc.numel; ++i) ASSERT_EQ(back.params[i], ck.params[i]);
}

TEST(HfGpt2, ImportErrorsNameTheTensorOrKey) {
  RandomCheckpoint ck;
  const std::string hf = ck.path("hf");
  export_hf_gpt2(ck.run_dir, hf);
  const SafetensorsFile good = read_safetensors(hf + "/model.safetensors");
  const std::string cfg_json = hf + "/config.json";
  const std::string cfg_text = [&] {
    std::ifstream in(cfg_json);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  auto import_error = [&] { return error_of([&] { import_hf_gpt2(hf, ck.path("out"), ""); }); };
  auto restore = [&] {
    rewrite_safetensors(hf + "/model.safetensors", good);
    std::ofstream(cfg_json) << cfg_text;
  };

  SafetensorsFile f = good;
  f.tensors.erase("transformer.h.1.mlp.c_fc.bias");
  rewrite_safetensors(hf + "/model.safetensors", f);
  EXPECT_NE(import_error().find("no tensor 'transformer.h.1.mlp.c_fc.bias'"), std::string::npos) << import_error();
  restore();

  f = good;
  f.tensors["transformer.h.0.attn.c_proj.weight"].shape = {6, 24};
  rewrite_safetensors(hf + "/model.safetensors", f);
  std::string e = import_error();
  EXPECT_NE(e.find("transformer.h.0.attn.c_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[6, 24]"), std::string::npos) << e;
  EXPECT_NE(e.find("[12, 12]"), std::string::npos) << e;
  restore();

  f = good;
  f.tensors["lm_head.weight"] = f.tensors.at("transformer.wte.weight");
  f.tensors["lm_head.weight"].data[3] += 1.0f;
  rewrite_safetensors(hf + "/model.safetensors", f);
  EXPECT_NE(import_error().find("lm_head.weight differs"), std::string::npos) << import_error();
  restore();

  f = good;
  f.tensors["transformer.h.2.ln_1.weight"] = f.tensors.at("transformer.h.1.ln_1.weight");
  rewrite_safetensors(hf + "/model.safetensors", f);
  EXPECT_NE(import_error().find("unexpected tensor 'transformer.h.2.ln_1.weight'"), std::string::npos)
      << import_error();
  restore();

  edit_config_json(cfg_json, "model_type", "llama");
  EXPECT_NE(import_error().find("model_type \"llama\""), std::string::npos) << import_error();
  restore();

  edit_config_json(cfg_json, "activation_function", "relu");
  EXPECT_NE(import_error().find("activation_function \"relu\""), std::string::npos) << import_error();
  restore();

  edit_config_json(cfg_json, "n_embd", 24);  // n_inner (48) no longer 4 * n_embd
  EXPECT_NE(import_error().find("n_inner = 48"), std::string::npos) << import_error();
  edit_config_json(cfg_json, "n_inner", nullptr);  // every tensor now has the wrong shape
  EXPECT_NE(import_error().find("'transformer.wte.weight' has shape [11, 12] but config.json implies [11, 24]"),
            std::string::npos)
      << import_error();
  restore();

  edit_config_json(cfg_json, "vocab_size", 12);  // the shipped tokenizer has 11
  EXPECT_NE(import_error().find("has 11 tokens"), std::string::npos) << import_error();
  restore();

  fs::remove(cfg_json);
  EXPECT_NE(import_error().find("has no config.json"), std::string::npos) << import_error();
  restore();

  EXPECT_NO_THROW(import_hf_gpt2(hf, ck.path("out"), ""));  // restore() put everything back
}

// An HF GPT2 directory with GPT-2's vocabulary files (vocab.json + merges.txt, as on the
// hub) imports with GPT-2's tokenizer, and `sample` encodes and decodes with it.
TEST(HfGpt2, ImportKeepsGpt2TokenizerAndSampleUsesIt) {
  const std::string vocab = attn::testing::shared_data("data/gpt2");
  if (vocab.empty()) GTEST_SKIP() << "GPT-2 vocabulary not found (../shared/data/gpt2)";
  TempDir tmp("hf_gpt2tok");
  const Config cfg = load_config("", {"model.n_layer=1", "model.n_head=2", "model.n_embd=8", "model.block_size=16",
                                      "model.dropout=0.0", "device.backend=\"cpu\""});
  const Gpt2Tokenizer gpt2 = load_gpt2_tokenizer(vocab);
  gpt2.save(tmp.file("tokenizer.json"));
  const ParamLayout layout(make_gpt_config(cfg, gpt2.vocab_size()));
  std::vector<float> params(layout.total());
  init_gpt2_params(layout, 3, params.data());
  save_checkpoint(tmp.file("run"), layout, params.data(), nullptr, nullptr, TrainState{}, to_toml(cfg),
                  tmp.file("tokenizer.json"), 1);
  export_hf_gpt2(tmp.file("run"), tmp.file("hf"));
  fs::remove(tmp.file("hf/tokenizer.json"));
  fs::remove(tmp.file("hf/attnlab_config.toml"));
  fs::copy_file(fs::path(vocab) / "encoder.json", tmp.file("hf/vocab.json"));
  fs::copy_file(fs::path(vocab) / "vocab.bpe", tmp.file("hf/merges.txt"));
  const std::string ckpt = import_hf_gpt2(tmp.file("hf"), tmp.file("back"), "");
  const auto tok = load_tokenizer(ckpt + "/tokenizer.json");
  EXPECT_EQ(tok->type(), "gpt2");
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<int32_t>{15496, 995}));

  const std::string cmd = std::string(ATTN_BINARY) + " sample --checkpoint " + tmp.file("back") +
                          " --prompt 'Hello world' --sample.max_new_tokens=4 --sample.num_samples=1 --device.backend=\"cpu\" > " +
                          tmp.file("out.txt") + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << [&] { std::ifstream in(tmp.file("out.txt")); return std::string((std::istreambuf_iterator<char>(in)), {}); }();
  std::ifstream in(tmp.file("out.txt"));
  const std::string out((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(out.find("Hello world"), std::string::npos) << out;
}
