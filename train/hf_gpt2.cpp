#include "train/hf_gpt2.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "attention/registry.h"
#include "config/config.h"
#include "core/error.h"
#include "data/gpt2_tokenizer.h"
#include "data/tokenizer.h"
#include "io/safetensors.h"
#include "io/text_file.h"
#include "model/param_layout.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace attn {

namespace {

// Our tensor name -> HF's, without the "transformer." prefix: wte/wpe gain ".weight".
std::string hf_name(const ParamTensor& t) {
  if (t.name == "wte" || t.name == "wpe") return t.name + ".weight";
  return t.name;
}

// The HF shape of one of our tensors: wte cut to the real vocabulary, block matrices
// transposed to Conv1D's (in, out).
std::vector<int64_t> hf_shape(const ParamTensor& t, const GPTConfig& g) {
  if (t.name == "wte") return {g.vocab_size, g.n_embd};
  if (t.kind == ParamKind::Matrix) return {t.shape[1], t.shape[0]};
  return t.shape;
}

// dst (cols, rows) = src (rows, cols)^T, both row-major.
void transpose(const float* src, int64_t rows, int64_t cols, float* dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
}

// The configurations GPT2's attention (causal softmax(q k^T / sqrt(D)) over every earlier
// position, one K/V per query head) cannot express, each named by its key.
void check_expressible_as_gpt2(const Config& cfg, const GPTConfig& g) {
  ATTN_CHECK(g.n_kv_head == g.n_head,
             "export-hf: model.n_kv_head = {} < model.n_head = {}: GPT2 has no grouped-query attention", g.n_kv_head,
             g.n_head);
  for (const auto& [key, value] : variants_on(cfg.attention))  // the registry's variants
    fail("export-hf: {} = {}: GPT2's attention is plain causal attention over every earlier position", key, value);
}

constexpr const char* kReadme =
    "This is an attnlab checkpoint exported for HF transformers' GPT2LMHeadModel\n"
    "(model.safetensors, fp32, and config.json; load with GPT2LMHeadModel.from_pretrained(dir)).\n"
    "\n"
    "The tokenizer is attnlab's own (tokenizer.json, written by `attnlab prepare`), NOT GPT-2's:\n"
    "the token ids mean nothing to GPT2Tokenizer. Encode text with attnlab, or use the ids directly.\n"
    "attnlab_config.toml is the config the model was trained with; `attnlab import-hf` reads it back.\n";

}  // namespace

HfExportSummary export_hf_gpt2(const std::string& ckpt, const std::string& out_dir) {
  const std::string dir = resolve_checkpoint(ckpt);
  const Config cfg = load_config(checkpoint_config_path(dir));
  const std::string tokenizer_path = checkpoint_tokenizer_path(dir);
  const auto tokenizer = load_tokenizer(tokenizer_path);
  const GPTConfig g = make_gpt_config(cfg, tokenizer->vocab_size());
  check_expressible_as_gpt2(cfg, g);
  const ParamLayout layout(g);
  const CheckpointData ck = load_checkpoint(dir, layout);

  // One buffer holding every tensor in HF layout, then views into it.
  std::vector<std::vector<float>> storage;
  std::vector<TensorView> views;
  storage.reserve(layout.tensors().size());
  for (const ParamTensor& t : layout.tensors()) {
    const std::vector<int64_t> shape = hf_shape(t, g);
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    std::vector<float> data(n);
    const float* src = ck.params.data() + t.offset;
    if (t.kind == ParamKind::Matrix)
      transpose(src, t.shape[0], t.shape[1], data.data());
    else
      std::memcpy(data.data(), src, n * sizeof(float));  // wte: the first vocab_size rows
    storage.push_back(std::move(data));
    views.push_back({"transformer." + hf_name(t), shape, storage.back().data()});
  }

  fs::create_directories(out_dir);
  const fs::path out(out_dir);
  // HF's loader refuses safetensors without format metadata ("pt", "tf", "flax", "mlx").
  write_safetensors((out / "model.safetensors").string(), views, {{"format", "pt"}});

  nlohmann::ordered_json js;
  js["architectures"] = {"GPT2LMHeadModel"};
  js["model_type"] = "gpt2";
  js["vocab_size"] = g.vocab_size;
  js["n_positions"] = g.block_size;
  js["n_ctx"] = g.block_size;
  js["n_embd"] = g.n_embd;
  js["n_layer"] = g.n_layer;
  js["n_head"] = g.n_head;
  js["n_inner"] = 4 * g.n_embd;
  js["activation_function"] = "gelu_new";  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), ours
  js["layer_norm_epsilon"] = 1e-5;
  js["resid_pdrop"] = cfg.model.dropout;  // the config's doubles: 0.1, not float 0.1's 0.10000000149
  js["embd_pdrop"] = cfg.model.dropout;
  js["attn_pdrop"] = cfg.attn_dropout();
  js["initializer_range"] = 0.02;
  js["scale_attn_weights"] = true;
  js["scale_attn_by_inverse_layer_idx"] = false;
  js["reorder_and_upcast_attn"] = false;
  js["tie_word_embeddings"] = true;
  js["use_cache"] = true;
  // GPT2Config defaults both to 50256, which is outside a small vocabulary: always set them.
  const int eot = tokenizer->eot_id();
  js["bos_token_id"] = eot >= 0 ? nlohmann::ordered_json(eot) : nlohmann::ordered_json(nullptr);
  js["eos_token_id"] = eot >= 0 ? nlohmann::ordered_json(eot) : nlohmann::ordered_json(nullptr);
  js["torch_dtype"] = "float32";
  write_text_file(out / "config.json", js.dump(2) + "\n");

  fs::copy_file(tokenizer_path, out / "tokenizer.json", fs::copy_options::overwrite_existing);
  write_text_file(out / "attnlab_config.toml", ck.config_toml);
  write_text_file(out / "README.txt", kReadme);

  HfExportSummary s;
  s.vocab_size = g.vocab_size, s.n_layer = g.n_layer, s.n_head = g.n_head, s.n_embd = g.n_embd;
  s.n_positions = g.block_size;
  for (const TensorView& v : views) {
    size_t n = 1;
    for (int64_t d : v.shape) n *= static_cast<size_t>(d);
    s.num_parameters += n;
  }
  return s;
}

namespace {

// A config.json value with a default when absent (HF's GPT2Config defaults).
template <typename T>
T json_value(const nlohmann::json& js, const char* key, T fallback, const std::string& path) {
  if (!js.contains(key) || js[key].is_null()) return fallback;
  try {
    return js[key].get<T>();
  } catch (const std::exception&) {
    fail("'{}': \"{}\" has the wrong type ({})", path, key, js[key].dump());
  }
}

int required_int(const nlohmann::json& js, const char* key, const std::string& path) {
  ATTN_CHECK(js.contains(key) && js[key].is_number_integer() && js[key].get<int64_t>() > 0,
             "'{}': \"{}\" is missing or not a positive integer", path, key);
  return js[key].get<int>();
}

// config.json of a GPT2LMHeadModel: only what computes our function is accepted; each refusal
// names the key.
struct HfGpt2Config {
  int vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_positions = 0;
  double resid_pdrop = 0.1, attn_pdrop = 0.1;
  bool tied = true;
};

HfGpt2Config read_hf_config(const std::string& cfg_path) {
  nlohmann::json js;
  try {
    js = nlohmann::json::parse(read_text_file(cfg_path));
  } catch (const nlohmann::json::exception& e) {
    fail("'{}' is not valid JSON: {}", cfg_path, e.what());
  }
  ATTN_CHECK(js.is_object(), "'{}' is not a JSON object", cfg_path);
  const std::string model_type = json_value<std::string>(js, "model_type", "", cfg_path);
  ATTN_CHECK(model_type == "gpt2", "'{}': model_type \"{}\" is not \"gpt2\"", cfg_path, model_type);
  const std::string act = json_value<std::string>(js, "activation_function", "gelu_new", cfg_path);
  ATTN_CHECK(act == "gelu_new" || act == "gelu_pytorch_tanh",
             "'{}': activation_function \"{}\": attnlab's GELU is the tanh approximation (gelu_new)", cfg_path, act);
  const double eps = json_value<double>(js, "layer_norm_epsilon", 1e-5, cfg_path);
  ATTN_CHECK(std::abs(eps - 1e-5) <= 1e-12, "'{}': layer_norm_epsilon {} differs from attnlab's 1e-5", cfg_path, eps);
  ATTN_CHECK(json_value<bool>(js, "scale_attn_weights", true, cfg_path),
             "'{}': scale_attn_weights = false: attnlab scales scores by 1/sqrt(head_dim)", cfg_path);
  ATTN_CHECK(!json_value<bool>(js, "scale_attn_by_inverse_layer_idx", false, cfg_path),
             "'{}': scale_attn_by_inverse_layer_idx = true is not supported", cfg_path);
  ATTN_CHECK(!json_value<bool>(js, "add_cross_attention", false, cfg_path),
             "'{}': add_cross_attention = true is not supported", cfg_path);
  HfGpt2Config c;
  c.tied = json_value<bool>(js, "tie_word_embeddings", true, cfg_path);
  c.vocab = required_int(js, "vocab_size", cfg_path);
  c.n_embd = required_int(js, "n_embd", cfg_path);
  c.n_layer = required_int(js, "n_layer", cfg_path);
  c.n_head = required_int(js, "n_head", cfg_path);
  c.n_positions = required_int(js, "n_positions", cfg_path);
  const int n_inner = json_value<int>(js, "n_inner", 4 * c.n_embd, cfg_path);
  ATTN_CHECK(n_inner == 4 * c.n_embd, "'{}': n_inner = {}: attnlab's MLP is 4 * n_embd = {} wide", cfg_path, n_inner,
             4 * c.n_embd);
  ATTN_CHECK(c.n_embd % c.n_head == 0, "'{}': n_embd = {} is not a multiple of n_head = {}", cfg_path, c.n_embd,
             c.n_head);
  c.resid_pdrop = json_value<double>(js, "resid_pdrop", 0.1, cfg_path);
  c.attn_pdrop = json_value<double>(js, "attn_pdrop", 0.1, cfg_path);
  return c;
}

// The run config: our own export's when it came along, else the defaults; the model from config.json.
Config imported_run_config(const fs::path& in, const HfGpt2Config& hf, const std::string& out_run_dir) {
  const fs::path ours = in / "attnlab_config.toml";
  Config cfg = fs::exists(ours) ? load_config(ours.string()) : load_config("");
  cfg.model.n_layer = hf.n_layer, cfg.model.n_head = hf.n_head, cfg.model.n_kv_head = 0;
  cfg.model.n_embd = hf.n_embd, cfg.model.block_size = hf.n_positions;
  cfg.model.dropout = hf.resid_pdrop;
  cfg.model.attn_dropout = hf.attn_pdrop;
  static_cast<VariantOptions&>(cfg.attention) = VariantOptions{};  // GPT2: plain causal, no variant
  cfg.training.out_dir = out_run_dir;
  validate(cfg);
  return cfg;
}

// The tokenizer: given, or ours shipped with the export, or HF's vocab.json + merges.txt (saved as
// ours in the run); its vocabulary must be the model's. Empty: none found.
std::string imported_tokenizer(const fs::path& in, const std::string& given, const std::string& out_run_dir, int vocab,
                               const std::string& cfg_path) {
  std::string tok_path = given;
  if (tok_path.empty() && fs::exists(in / "tokenizer.json")) {
    try {
      load_tokenizer((in / "tokenizer.json").string());
      tok_path = (in / "tokenizer.json").string();
    } catch (const Error&) {  // an HF tokenizer.json outside GPT-2's family: not usable here
    }
  }
  if (tok_path.empty() && has_gpt2_vocab_files(in.string())) {
    fs::create_directories(out_run_dir);
    tok_path = (fs::path(out_run_dir) / "tokenizer.json").string();
    load_gpt2_tokenizer(in.string()).save(tok_path);
  }
  if (!tok_path.empty()) {
    const auto tok = load_tokenizer(tok_path);
    ATTN_CHECK(tok->vocab_size() == vocab, "import-hf: tokenizer '{}' has {} tokens but '{}' has vocab_size {}",
               tok_path, tok->vocab_size(), cfg_path, vocab);
  }
  return tok_path;
}

// Tensors of the file that are not parameters of ours: the LM head when it is wte's matrix (we tie
// them), and the causal-mask buffers older transformers versions saved. Anything else is refused.
void check_extra_tensors(const SafetensorsFile& file, const std::set<std::string>& used, const std::string& prefix,
                         const HfGpt2Config& hf, const std::string& st_path, const std::string& cfg_path) {
  ATTN_CHECK(hf.tied || file.tensors.count("lm_head.weight"),
             "'{}': tie_word_embeddings = false but '{}' has no lm_head.weight", cfg_path, st_path);
  for (const auto& [name, t] : file.tensors) {
    if (used.count(name)) continue;
    if (name == "lm_head.weight") {
      const LoadedTensor& wte = file.tensors.at(prefix + "wte.weight");
      ATTN_CHECK(t.shape == wte.shape && t.data == wte.data,
                 "'{}': lm_head.weight differs from {}wte.weight (tie_word_embeddings = {}): attnlab ties the LM head "
                 "to the token embedding",
                 st_path, prefix, hf.tied ? "true" : "false");
      continue;
    }
    const auto ends_with = [&](const std::string& s) {
      return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    if (ends_with(".attn.bias") || ends_with(".attn.masked_bias")) continue;
    fail("'{}': unexpected tensor '{}' (not part of a GPT2LMHeadModel with n_layer = {})", st_path, name, hf.n_layer);
  }
}

}  // namespace

std::string import_hf_gpt2(const std::string& hf_dir, const std::string& out_run_dir,
                           const std::string& tokenizer_path) {
  const fs::path in(hf_dir);
  const std::string cfg_path = (in / "config.json").string();
  const std::string st_path = (in / "model.safetensors").string();
  ATTN_CHECK(fs::exists(cfg_path), "import-hf: '{}' has no config.json", hf_dir);
  ATTN_CHECK(fs::exists(st_path), "import-hf: '{}' has no model.safetensors (only safetensors files are read)",
             hf_dir);
  const HfGpt2Config hf = read_hf_config(cfg_path);
  const Config cfg = imported_run_config(in, hf, out_run_dir);
  const std::string tok_path = imported_tokenizer(in, tokenizer_path, out_run_dir, hf.vocab, cfg_path);

  // Every parameter of ours from its HF tensor (Conv1D matrices transposed to (out, in)).
  const GPTConfig g = make_gpt_config(cfg, hf.vocab);
  const ParamLayout layout(g);
  const SafetensorsFile file = read_safetensors(st_path);
  std::string prefix;
  if (file.tensors.count("transformer.wte.weight"))
    prefix = "transformer.";
  else
    ATTN_CHECK(file.tensors.count("wte.weight"), "'{}' has no tensor 'transformer.wte.weight' (nor 'wte.weight')",
               st_path);
  std::vector<float> params(layout.total(), 0.0f);
  std::set<std::string> used;
  for (const ParamTensor& t : layout.tensors()) {
    const std::string name = prefix + hf_name(t);
    const auto it = file.tensors.find(name);
    ATTN_CHECK(it != file.tensors.end(), "'{}' has no tensor '{}'", st_path, name);
    const std::vector<int64_t> want = hf_shape(t, g);
    ATTN_CHECK(it->second.shape == want, "'{}': tensor '{}' has shape {} but config.json implies {}", st_path, name,
               shape_string(it->second.shape), shape_string(want));
    float* dst = params.data() + t.offset;
    if (t.kind == ParamKind::Matrix)
      transpose(it->second.data.data(), want[0], want[1], dst);  // (in, out) -> (out, in)
    else
      std::copy(it->second.data.begin(), it->second.data.end(), dst);  // wte: padding rows stay 0
    used.insert(name);
  }
  check_extra_tensors(file, used, prefix, hf, st_path, cfg_path);

  TrainState state;
  return save_checkpoint(out_run_dir, layout, params.data(), nullptr, nullptr, state, to_toml(cfg), tok_path, 1);
}

}  // namespace attn
