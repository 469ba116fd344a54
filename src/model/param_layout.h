// Where every parameter lives in the one contiguous parameter buffer.
//
// Parameters (and, with the same offsets, gradients and optimizer moments) are one
// flat float array, so that an all-reduce, a checkpoint or an optimizer step is a
// single pass over one buffer. Order (each tensor's start aligned to kAlign floats,
// gaps are zero and stay zero):
//
//   wte                 (padded_vocab, C)    token embedding, tied to the LM head
//   wpe                 (block_size, C)      learned positions
//   for l in 0..L-1:    (layer l is one contiguous span)
//     h.l.ln_1.weight   (C)          h.l.ln_1.bias   (C)
//     h.l.attn.c_attn.weight (qkv_dim, C)   h.l.attn.c_attn.bias (qkv_dim)
//     h.l.attn.c_proj.weight (C, C)         h.l.attn.c_proj.bias (C)
//     h.l.ln_2.weight   (C)          h.l.ln_2.bias   (C)
//     h.l.mlp.c_fc.weight   (4C, C)         h.l.mlp.c_fc.bias   (4C)
//     h.l.mlp.c_proj.weight (C, 4C)         h.l.mlp.c_proj.bias (C)
//   ln_f.weight (C)   ln_f.bias (C)
//
// Matrices are stored (out_features, in_features), row-major, as torch.nn.Linear does:
// y = x W^T + b. The c_attn output columns are [q heads | k heads | v heads], each
// head's head_dim features contiguous.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "model/gpt_config.h"

namespace attn {

enum class ParamKind { Embedding, Matrix, Bias, NormWeight, NormBias };

struct ParamTensor {
  std::string name;            // e.g. "h.3.attn.c_attn.weight"
  std::vector<int64_t> shape;  // row-major
  size_t offset = 0;           // in floats from the start of the buffer
  size_t numel = 0;
  ParamKind kind = ParamKind::Matrix;
  int layer = -1;              // -1 for wte/wpe/ln_f
  // AdamW weight decay applies to matrices only (nanoGPT: params with dim >= 2,
  // excluding embeddings here as the foundation issue asks).
  bool decay() const { return kind == ParamKind::Matrix; }
};

// Offsets of one layer's tensors (indices into ParamLayout::tensors).
struct LayerParams {
  int ln1_w, ln1_b, qkv_w, qkv_b, attproj_w, attproj_b, ln2_w, ln2_b, fc_w, fc_b, fcproj_w, fcproj_b;
};

class ParamLayout {
 public:
  static constexpr size_t kAlign = 64;  // floats: 256-byte aligned tensor starts

  explicit ParamLayout(const GPTConfig& cfg);

  const GPTConfig& config() const { return cfg_; }
  size_t total() const { return total_; }  // buffer length in floats, padding included
  size_t num_parameters() const;          // sum of numel (no padding; wpe/wte counted once)
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const ParamTensor& get(int index) const { return tensors_.at(index); }
  const ParamTensor& find(const std::string& name) const;  // throws attn::Error when absent

  int wte() const { return wte_; }
  int wpe() const { return wpe_; }
  int lnf_w() const { return lnf_w_; }
  int lnf_b() const { return lnf_b_; }
  const LayerParams& layer(int l) const { return layers_.at(l); }

  // Element range [begin, end) of layer l's span in the buffer (for bucketed all-reduce).
  std::pair<size_t, size_t> layer_span(int l) const;

 private:
  int add(const std::string& name, std::vector<int64_t> shape, ParamKind kind, int layer);
  GPTConfig cfg_;
  std::vector<ParamTensor> tensors_;
  std::vector<LayerParams> layers_;
  int wte_ = -1, wpe_ = -1, lnf_w_ = -1, lnf_b_ = -1;
  size_t total_ = 0;
};

// GPT-2 initialisation: N(0, 0.02) for matrices and embeddings, N(0, 0.02/sqrt(2L)) for
// the two residual projections (c_proj), zero biases, unit LayerNorm weights. Deterministic
// for a seed. `params` has layout.total() elements.
void init_gpt2_params(const ParamLayout& layout, uint64_t seed, float* params);

}  // namespace attn
