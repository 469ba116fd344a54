#include "model/param_layout.h"

#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace attn {

namespace {
size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }
}  // namespace

ParamLayout::ParamLayout(const GPTConfig& cfg) : cfg_(cfg) {
  const int64_t C = cfg.n_embd, Vp = cfg.padded_vocab_size, T = cfg.block_size;
  const int64_t QKV = cfg.qkv_dim();
  wte_ = add("wte", {Vp, C}, ParamKind::Embedding, -1);
  wpe_ = add("wpe", {T, C}, ParamKind::Embedding, -1);
  for (int l = 0; l < cfg.n_layer; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    LayerParams lp{};
    lp.ln1_w = add(p + "ln_1.weight", {C}, ParamKind::NormWeight, l);
    lp.ln1_b = add(p + "ln_1.bias", {C}, ParamKind::NormBias, l);
    lp.qkv_w = add(p + "attn.c_attn.weight", {QKV, C}, ParamKind::Matrix, l);
    lp.qkv_b = add(p + "attn.c_attn.bias", {QKV}, ParamKind::Bias, l);
    lp.attproj_w = add(p + "attn.c_proj.weight", {C, C}, ParamKind::Matrix, l);
    lp.attproj_b = add(p + "attn.c_proj.bias", {C}, ParamKind::Bias, l);
    lp.ln2_w = add(p + "ln_2.weight", {C}, ParamKind::NormWeight, l);
    lp.ln2_b = add(p + "ln_2.bias", {C}, ParamKind::NormBias, l);
    lp.fc_w = add(p + "mlp.c_fc.weight", {4 * C, C}, ParamKind::Matrix, l);
    lp.fc_b = add(p + "mlp.c_fc.bias", {4 * C}, ParamKind::Bias, l);
    lp.fcproj_w = add(p + "mlp.c_proj.weight", {C, 4 * C}, ParamKind::Matrix, l);
    lp.fcproj_b = add(p + "mlp.c_proj.bias", {C}, ParamKind::Bias, l);
    layers_.push_back(lp);
  }
  lnf_w_ = add("ln_f.weight", {C}, ParamKind::NormWeight, -1);
  lnf_b_ = add("ln_f.bias", {C}, ParamKind::NormBias, -1);
  total_ = align_up(total_, kAlign);
}

int ParamLayout::add(const std::string& name, std::vector<int64_t> shape, ParamKind kind, int layer) {
  ParamTensor t;
  t.name = name;
  t.numel = std::accumulate(shape.begin(), shape.end(), size_t{1},
                            [](size_t a, int64_t b) { return a * static_cast<size_t>(b); });
  t.shape = std::move(shape);
  t.kind = kind;
  t.layer = layer;
  t.offset = align_up(total_, kAlign);
  total_ = t.offset + t.numel;
  tensors_.push_back(std::move(t));
  return static_cast<int>(tensors_.size()) - 1;
}

size_t ParamLayout::num_parameters() const {
  size_t n = 0;
  for (const auto& t : tensors_) n += t.numel;
  return n;
}

const ParamTensor& ParamLayout::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return t;
  fail("no parameter named '{}'", name);
}

std::pair<size_t, size_t> ParamLayout::layer_span(int l) const {
  const LayerParams& lp = layers_.at(l);
  const ParamTensor& first = tensors_[lp.ln1_w];
  const ParamTensor& last = tensors_[lp.fcproj_b];
  return {first.offset, last.offset + last.numel};
}

void init_gpt2_params(const ParamLayout& layout, uint64_t seed, float* params) {
  std::fill(params, params + layout.total(), 0.0f);
  const float resid_std = 0.02f / std::sqrt(2.0f * static_cast<float>(layout.config().n_layer));
  for (size_t i = 0; i < layout.tensors().size(); ++i) {
    const ParamTensor& t = layout.tensors()[i];
    float* p = params + t.offset;
    if (t.kind == ParamKind::NormWeight) {
      std::fill(p, p + t.numel, 1.0f);
    } else if (t.kind == ParamKind::Matrix || t.kind == ParamKind::Embedding) {
      const bool residual = t.name.find("c_proj.weight") != std::string::npos;
      const float stddev = residual ? resid_std : 0.02f;
      const uint64_t key = stream_key(seed, 0x1417, i);
      // Box-Muller on counter-based uniforms: the same values on every platform.
      for (size_t j = 0; j < t.numel; j += 2) {
        const double u1 = (static_cast<double>(random_u64(key, j) >> 11) + 1.0) * 0x1.0p-53;
        const double u2 = static_cast<double>(random_u64(key, j + 1) >> 11) * 0x1.0p-53;
        const double r = std::sqrt(-2.0 * std::log(u1));
        p[j] = static_cast<float>(stddev * r * std::cos(2.0 * M_PI * u2));
        if (j + 1 < t.numel) p[j + 1] = static_cast<float>(stddev * r * std::sin(2.0 * M_PI * u2));
      }
    }
  }
}

}  // namespace attn
