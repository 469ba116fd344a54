#include "config/config.h"

#include <array>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <variant>

#include <toml++/toml.h>

#include "attention/registry.h"
#include "core/choices.h"
#include "core/error.h"
#include "core/precision.h"
#include "data/prepare.h"

namespace attn {

namespace {

using FieldPtr = std::variant<int*, int64_t*, double*, float*, bool*, std::string*, std::vector<std::string>*>;
struct Field {
  const char* key;  // "section.name"
  FieldPtr ptr;
};

// The schema: every key a config may set, bound to its place in Config.
std::vector<Field> fields(Config& c) {
  auto& a = c.attention;
  return {
      {"model.n_layer", &c.model.n_layer},
      {"model.n_head", &c.model.n_head},
      {"model.n_kv_head", &c.model.n_kv_head},
      {"model.n_embd", &c.model.n_embd},
      {"model.block_size", &c.model.block_size},
      {"model.vocab_pad_to", &c.model.vocab_pad_to},
      {"model.dropout", &c.model.dropout},
      {"model.attn_dropout", &c.model.attn_dropout},
      {"attention.impl", &a.impl},
      {"attention.causal", &a.causal},
      {"attention.sliding_window", &a.sliding_window},
      {"attention.document_mask", &a.document_mask},
      {"attention.alibi", &a.alibi},
      {"attention.softcap", &a.softcap},
      {"attention.deterministic", &a.deterministic},
      {"attention.prefix_lm", &a.prefix_lm},
      {"attention.prefix_len", &a.prefix_len},
      {"data.prefix_token", &a.prefix_token},
      {"data.dir", &c.data.dir},
      {"data.inputs", &c.data.inputs},
      {"data.tokenizer", &c.data.tokenizer},
      {"data.vocab_size", &c.data.vocab_size},
      {"data.val_fraction", &c.data.val_fraction},
      {"data.val_split", &c.data.val_split},
      {"data.gpt2_vocab", &c.data.gpt2_vocab},
      {"data.jsonl_key", &c.data.jsonl_key},
      {"optimizer.lr", &c.optimizer.lr},
      {"optimizer.beta1", &c.optimizer.beta1},
      {"optimizer.beta2", &c.optimizer.beta2},
      {"optimizer.eps", &c.optimizer.eps},
      {"optimizer.weight_decay", &c.optimizer.weight_decay},
      {"optimizer.grad_clip", &c.optimizer.grad_clip},
      {"schedule.decay", &c.schedule.decay},
      {"schedule.warmup_iters", &c.schedule.warmup_iters},
      {"schedule.decay_iters", &c.schedule.decay_iters},
      {"schedule.min_lr", &c.schedule.min_lr},
      {"training.batch_size", &c.training.batch_size},
      {"training.seq_len", &c.training.seq_len},
      {"training.grad_accum", &c.training.grad_accum},
      {"training.max_iters", &c.training.max_iters},
      {"training.eval_interval", &c.training.eval_interval},
      {"training.eval_iters", &c.training.eval_iters},
      {"training.log_interval", &c.training.log_interval},
      {"training.seed", &c.training.seed},
      {"training.out_dir", &c.training.out_dir},
      {"checkpoint.interval", &c.checkpoint.interval},
      {"checkpoint.keep", &c.checkpoint.keep},
      {"checkpoint.save_best", &c.checkpoint.save_best},
      {"logging.jsonl", &c.logging.jsonl},
      {"logging.plot", &c.logging.plot},
      {"logging.progress", &c.logging.progress},
      {"device.backend", &c.device.backend},
      {"device.precision", &c.device.precision},
      {"device.threads", &c.device.threads},
      {"device.cuda_graph", &c.device.cuda_graph},
      {"device.matmul_autotune", &c.device.matmul_autotune},
      {"distributed.nproc", &c.distributed.nproc},
      {"distributed.bucket_mb", &c.distributed.bucket_mb},
      {"distributed.zero", &c.distributed.zero},
      {"distributed.timeout_s", &c.distributed.timeout_s},
      {"sample.num_samples", &c.sample.num_samples},
      {"sample.max_new_tokens", &c.sample.max_new_tokens},
      {"sample.temperature", &c.sample.temperature},
      {"sample.top_k", &c.sample.top_k},
      {"sample.top_p", &c.sample.top_p},
      {"sample.prompt", &c.sample.prompt},
      {"sample.seed", &c.sample.seed},
  };
}

const char* type_name(const FieldPtr& p) {
  struct V {
    const char* operator()(int*) const { return "an integer"; }
    const char* operator()(int64_t*) const { return "an integer"; }
    const char* operator()(double*) const { return "a number"; }
    const char* operator()(float*) const { return "a number"; }
    const char* operator()(bool*) const { return "a boolean (true/false)"; }
    const char* operator()(std::string*) const { return "a string"; }
    const char* operator()(std::vector<std::string>*) const { return "a list of strings"; }
  };
  return std::visit(V{}, p);
}

const char* node_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "a list";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}

// Stores `node` into the field; returns false when the TOML type does not fit.
bool assign(const FieldPtr& ptr, const toml::node& node) {
  if (auto p = std::get_if<int*>(&ptr)) {
    auto v = node.value_exact<int64_t>();
    if (!v || *v < std::numeric_limits<int>::min() || *v > std::numeric_limits<int>::max()) return false;
    **p = static_cast<int>(*v);
  } else if (auto p = std::get_if<int64_t*>(&ptr)) {
    auto v = node.value_exact<int64_t>();
    if (!v) return false;
    **p = *v;
  } else if (auto p = std::get_if<double*>(&ptr)) {
    if (!node.is_number()) return false;
    **p = *node.value<double>();
  } else if (auto p = std::get_if<float*>(&ptr)) {
    if (!node.is_number()) return false;
    **p = static_cast<float>(*node.value<double>());
  } else if (auto p = std::get_if<bool*>(&ptr)) {
    auto v = node.value_exact<bool>();
    if (!v) return false;
    **p = *v;
  } else if (auto p = std::get_if<std::string*>(&ptr)) {
    auto v = node.value_exact<std::string>();
    if (!v) return false;
    **p = *v;
  } else if (auto p = std::get_if<std::vector<std::string>*>(&ptr)) {
    std::vector<std::string> out;
    if (auto s = node.value_exact<std::string>()) {
      out.push_back(*s);
    } else if (auto arr = node.as_array()) {
      for (const auto& el : *arr) {
        auto s2 = el.value_exact<std::string>();
        if (!s2) return false;
        out.push_back(*s2);
      }
    } else {
      return false;
    }
    **p = std::move(out);
  }
  return true;
}

void set_key(Config& cfg, const std::string& key, const toml::node& node, const std::string& source) {
  for (const Field& f : fields(cfg)) {
    if (key != f.key) continue;
    if (!assign(f.ptr, node))
      fail("{}: {} must be {}, got {}", source, key, type_name(f.ptr), node_type_name(node));
    cfg.origin[key] = source;
    return;
  }
  const std::string section = key.substr(0, key.find('.'));
  std::string known;
  for (const Field& f : fields(cfg))
    if (std::string(f.key).rfind(section + ".", 0) == 0) known += (known.empty() ? "" : ", ") + std::string(f.key);
  if (known.empty()) {
    fail("{}: unknown config section '{}' (sections: model, attention, data, optimizer, schedule, "
         "training, checkpoint, logging, device, distributed, sample)", source, section);
  }
  fail("{}: unknown config key '{}' (keys of [{}]: {})", source, key, section, known);
}

void apply_table(Config& cfg, const toml::table& root, const std::string& source) {
  for (const auto& [section, node] : root) {
    const std::string s(section.str());
    const toml::table* tbl = node.as_table();
    if (!tbl) fail("{}: top-level key '{}' must be a [section] table", source, s);
    for (const auto& [key, value] : *tbl) set_key(cfg, s + "." + std::string(key.str()), value, source);
  }
}

std::string where(const Config& cfg, const std::string& key) {
  auto it = cfg.origin.find(key);
  return it == cfg.origin.end() ? std::string("default") : it->second;
}

}  // namespace

void apply_toml_text(Config& cfg, const std::string& text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    fail("{}:{}:{}: invalid TOML: {}", source, e.source().begin.line, e.source().begin.column, e.description());
  }
  apply_table(cfg, root, source);
}

void apply_overrides(Config& cfg, const std::vector<std::string>& overrides) {
  for (std::string ov : overrides) {
    if (ov.rfind("--", 0) == 0) ov = ov.substr(2);
    const auto eq = ov.find('=');
    if (eq == std::string::npos || ov.find('.') == std::string::npos || ov.find('.') > eq)
      fail("command line: '{}' is not an override of the form --section.key=value", ov);
    const std::string key = ov.substr(0, eq), value = ov.substr(eq + 1);
    toml::table parsed;
    try {
      parsed = toml::parse("v = " + value);
    } catch (const toml::parse_error&) {
      // A bare word (not TOML syntax) is taken as a string: --device.backend=cpu.
      parsed = toml::table{{"v", value}};
    }
    set_key(cfg, key, *parsed.get("v"), "command line");
  }
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  Config cfg;
  if (!path.empty()) {
    std::ifstream in(path);
    ATTN_CHECK(in.good(), "config file '{}' cannot be opened", path);
    std::stringstream ss;
    ss << in.rdbuf();
    apply_toml_text(cfg, ss.str(), path);
  }
  apply_overrides(cfg, overrides);
  validate(cfg);
  return cfg;
}

bool resume_may_override(const std::string& key) {
  static const char* const kKeys[] = {"training.max_iters", "training.eval_interval", "training.eval_iters",
                                      "training.log_interval", "training.out_dir"};
  static const char* const kSections[] = {"checkpoint.", "logging.", "device.", "distributed.", "sample."};
  for (const char* k : kKeys)
    if (key == k) return true;
  for (const char* sec : kSections)
    if (key.rfind(sec, 0) == 0) return true;
  return false;
}

Config load_resume_config(const std::string& run_config_path, const std::vector<std::string>& overrides) {
  std::ifstream in(run_config_path);
  ATTN_CHECK(in.good(), "--resume: {} does not exist (no run was started in that training.out_dir)", run_config_path);
  std::stringstream ss;
  ss << in.rdbuf();
  Config run;
  apply_toml_text(run, ss.str(), run_config_path);
  const std::string saved = to_toml(run);
  for (const std::string& ov : overrides) {
    const std::string bare = ov.rfind("--", 0) == 0 ? ov.substr(2) : ov;
    const std::string key = bare.substr(0, bare.find('='));
    if (resume_may_override(key)) continue;
    Config changed = run;
    apply_overrides(changed, {ov});
    if (to_toml(changed) == saved) continue;  // the run's own value, repeated: harmless
    fail("--resume: {} would change {} of the run in {}: a resumed run keeps its data, model, optimizer and "
         "schedule; only training.max_iters, eval/log intervals, checkpoint.*, logging.*, device.* and "
         "distributed.* may change (train into a new training.out_dir instead)",
         bare, key, run_config_path);
  }
  apply_overrides(run, overrides);
  validate(run);
  return run;
}

void validate(const Config& c) {
  auto require = [&](bool ok, const char* key, const std::string& problem) {
    if (!ok) fail("{}: {} {}", where(c, key), key, problem);
  };
  const auto& m = c.model;
  require(m.n_layer >= 1, "model.n_layer", fmt::format("must be >= 1 (got {})", m.n_layer));
  require(m.n_head >= 1, "model.n_head", fmt::format("must be >= 1 (got {})", m.n_head));
  require(m.n_embd >= 1, "model.n_embd", fmt::format("must be >= 1 (got {})", m.n_embd));
  require(m.n_embd % m.n_head == 0, "model.n_embd",
          fmt::format("({}) must be divisible by model.n_head ({})", m.n_embd, m.n_head));
  const int kv = m.n_kv_head == 0 ? m.n_head : m.n_kv_head;
  require(kv >= 1 && m.n_head % kv == 0, "model.n_kv_head",
          fmt::format("({}) must divide model.n_head ({})", m.n_kv_head, m.n_head));
  require(m.block_size >= 1, "model.block_size", fmt::format("must be >= 1 (got {})", m.block_size));
  require(m.vocab_pad_to >= 1, "model.vocab_pad_to", "must be >= 1");
  require(m.dropout >= 0 && m.dropout < 1, "model.dropout", fmt::format("must be in [0, 1) (got {})", m.dropout));
  require(m.attn_dropout < 1, "model.attn_dropout", fmt::format("must be < 1 (got {})", m.attn_dropout));

  const auto& a = c.attention;
  const OptionProblem ap = attention_option_problem(a);  // the rules of attention/registry.h
  require(ap.key.empty(), ap.key.c_str(), ap.problem);

  const auto& d = c.data;
  require(is_one_of(d.tokenizer, kTokenizerNames), "data.tokenizer",
          fmt::format("must be {} (got \"{}\")", or_list(kTokenizerNames, true), d.tokenizer));
  require(is_one_of(d.val_split, kValSplitNames), "data.val_split",
          fmt::format("must be {} (got \"{}\")", or_list(kValSplitNames, true), d.val_split));
  require(!d.jsonl_key.empty(), "data.jsonl_key", "must name the text field of .jsonl inputs");
  require(d.tokenizer != "bpe" || d.vocab_size >= 257, "data.vocab_size", fmt::format("must be >= 257 for BPE (got {})", d.vocab_size));
  require(d.val_fraction > 0 && d.val_fraction < 1, "data.val_fraction", "must be in (0, 1)");
  require(!d.dir.empty(), "data.dir", "must name the prepared dataset directory");

  const auto& o = c.optimizer;
  require(o.lr > 0, "optimizer.lr", fmt::format("must be > 0 (got {})", o.lr));
  require(o.beta1 >= 0 && o.beta1 < 1, "optimizer.beta1", "must be in [0, 1)");
  require(o.beta2 >= 0 && o.beta2 < 1, "optimizer.beta2", "must be in [0, 1)");
  require(o.eps > 0, "optimizer.eps", "must be > 0");
  require(o.weight_decay >= 0, "optimizer.weight_decay", "must be >= 0");
  require(o.grad_clip >= 0, "optimizer.grad_clip", "must be >= 0 (0 = off)");

  const auto& s = c.schedule;
  constexpr std::array<std::string_view, 2> kDecayNames{"cosine", "constant"};
  require(is_one_of(s.decay, kDecayNames), "schedule.decay", fmt::format("must be {}", or_list(kDecayNames, true)));
  require(s.warmup_iters >= 0, "schedule.warmup_iters", "must be >= 0");
  require(s.decay_iters >= 0, "schedule.decay_iters", "must be >= 0");
  require(s.min_lr >= 0 && s.min_lr <= o.lr, "schedule.min_lr",
          fmt::format("must be in [0, optimizer.lr] (got {}, lr {})", s.min_lr, o.lr));

  const auto& t = c.training;
  require(t.batch_size >= 1, "training.batch_size", fmt::format("must be >= 1 (got {})", t.batch_size));
  require(t.seq_len >= 0, "training.seq_len", "must be >= 0 (0 = model.block_size)");
  require(c.seq_len() <= m.block_size, "training.seq_len",
          fmt::format("({}) must be <= model.block_size ({})", c.seq_len(), m.block_size));
  require(t.grad_accum >= 1, "training.grad_accum", "must be >= 1");
  require(t.max_iters >= 0, "training.max_iters", "must be >= 0");
  require(t.eval_interval >= 0, "training.eval_interval", "must be >= 0 (0 = only at the end)");
  require(t.eval_iters >= 1, "training.eval_iters", "must be >= 1");
  require(t.log_interval >= 1, "training.log_interval", "must be >= 1");
  require(!t.out_dir.empty(), "training.out_dir", "must not be empty");

  require(c.checkpoint.interval >= 0, "checkpoint.interval", "must be >= 0 (0 = only at the end)");
  require(c.checkpoint.keep >= 1, "checkpoint.keep", "must be >= 1");

  const auto& dv = c.device;
  constexpr std::array<std::string_view, 3> kBackendNames{"auto", "cpu", "cuda"};
  require(is_one_of(dv.backend, kBackendNames), "device.backend",
          fmt::format("must be {} (got \"{}\")", or_list(kBackendNames, true), dv.backend));
  require(parse_precision(dv.precision).has_value(), "device.precision",
          fmt::format("must be {} (got \"{}\")", kPrecisionChoices, dv.precision));
  require(dv.threads >= 0, "device.threads", "must be >= 0 (0 = all cores)");
  if (const std::optional<Precision> p = parse_precision(dv.precision); p && fp8_matmuls(*p)) {
    // fp8 runs on Hopper tensor cores through cuBLASLt (backend/cuda_fp8.h), whose fp8 matmuls
    // need every dimension a multiple of 16: the linear layers' widths C, 3C-ish (QKV) and 4C.
    require(dv.backend != "cpu", "device.precision",
            "= \"fp8\" needs the cuda backend (fp8 tensor cores); on the CPU use --device.precision=fp32");
    const int qkv = m.n_embd + 2 * kv * (m.n_embd / m.n_head);
    require(m.n_embd % 16 == 0 && qkv % 16 == 0, "model.n_embd",
            fmt::format("({}, QKV width {}) must be a multiple of 16 with device.precision = \"fp8\" "
                        "(cuBLASLt fp8 matmuls)",
                        m.n_embd, qkv));
  }

  const DistributedSection& ds = c.distributed;
  require(ds.nproc >= 1, "distributed.nproc", fmt::format("must be >= 1 (got {})", ds.nproc));
  require(ds.bucket_mb >= 1, "distributed.bucket_mb", fmt::format("must be >= 1 (got {})", ds.bucket_mb));
  require(ds.zero == 0 || ds.zero == 1, "distributed.zero", fmt::format("must be 0 or 1 (got {})", ds.zero));
  require(ds.timeout_s >= 1, "distributed.timeout_s", fmt::format("must be >= 1 (got {})", ds.timeout_s));

  const auto& sp = c.sample;
  require(sp.num_samples >= 1, "sample.num_samples", "must be >= 1");
  require(sp.max_new_tokens >= 0, "sample.max_new_tokens", "must be >= 0");
  require(sp.temperature >= 0, "sample.temperature", "must be >= 0 (0 = greedy)");
  require(sp.top_k >= 0, "sample.top_k", "must be >= 0 (0 = off)");
  require(sp.top_p > 0 && sp.top_p <= 1, "sample.top_p", "must be in (0, 1]");
}

std::vector<std::pair<std::string, std::string>> config_values(const Config& cfg_in) {
  Config cfg = cfg_in;  // fields() needs mutable pointers
  std::vector<std::pair<std::string, std::string>> out;
  for (const Field& f : fields(cfg)) {
    std::string text = std::visit(
        [](auto* p) -> std::string {
          using T = std::remove_pointer_t<decltype(p)>;
          if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            std::string joined;
            for (const auto& s : *p) joined += (joined.empty() ? "" : ",") + s;
            return joined;
          } else if constexpr (std::is_same_v<T, std::string>) {
            return *p;
          } else if constexpr (std::is_same_v<T, bool>) {
            return *p ? "true" : "false";
          } else {
            return fmt::format("{}", *p);
          }
        },
        f.ptr);
    out.emplace_back(f.key, std::move(text));
  }
  return out;
}

std::string to_toml(const Config& cfg_in) {
  Config cfg = cfg_in;  // fields() needs mutable pointers
  toml::table root;
  for (const Field& f : fields(cfg)) {
    const std::string key = f.key;
    const std::string section = key.substr(0, key.find('.')), name = key.substr(key.find('.') + 1);
    if (!root.contains(section)) root.insert(section, toml::table{});
    toml::table& t = *root[section].as_table();
    std::visit(
        [&](auto* p) {
          using T = std::remove_pointer_t<decltype(p)>;
          if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            toml::array arr;
            for (const auto& s : *p) arr.push_back(s);
            t.insert(name, arr);
          } else if constexpr (std::is_same_v<T, int>) {
            t.insert(name, static_cast<int64_t>(*p));
          } else if constexpr (std::is_same_v<T, float>) {
            t.insert(name, static_cast<double>(*p));
          } else {
            t.insert(name, *p);
          }
        },
        f.ptr);
  }
  std::stringstream ss;
  ss << toml::toml_formatter(root) << "\n";
  return ss.str();
}

}  // namespace attn

namespace attn {
GPTConfig make_gpt_config(const Config& cfg, int vocab_size) {
  GPTConfig g;
  g.vocab_size = vocab_size;
  const int pad = cfg.model.vocab_pad_to;
  g.padded_vocab_size = (vocab_size + pad - 1) / pad * pad;
  g.block_size = cfg.model.block_size;
  g.n_layer = cfg.model.n_layer;
  g.n_head = cfg.model.n_head;
  g.n_kv_head = cfg.model.n_kv_head == 0 ? cfg.model.n_head : cfg.model.n_kv_head;
  g.n_embd = cfg.model.n_embd;
  g.dropout = static_cast<float>(cfg.model.dropout);
  g.attn_dropout = static_cast<float>(cfg.attn_dropout());
  return g;
}
}  // namespace attn
