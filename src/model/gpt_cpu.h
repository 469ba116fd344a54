// GPT-2 on the CPU, forward and backward by hand (model/cpu_layers.h + naive attention).
//
//   x = drop(wte[tok] + wpe[pos])
//   for each block:
//     x = x + drop(attn.c_proj(attention(ln_1(x))))
//     x = x + drop(mlp.c_proj(gelu(mlp.c_fc(ln_2(x)))))
//   logits = ln_f(x) wte^T          (tied LM head, first vocab_size columns)
//   loss = mean cross-entropy over targets != -1
//
// Parameters and gradients are flat vectors of layout().total() scalars with the offsets of
// ParamLayout. Activations live in one buffer sized for (max B, max T), allocated once
// (it grows only when a larger batch or sequence arrives) and reused every step.
// Dropout keys: model/dropout_sites.h.
#pragma once
#include <cstdint>
#include <vector>

#include "attention/attention.h"
#include "core/aligned_vector.h"
#include "core/dropout.h"
#include "core/step_profile.h"
#include "model/gpt_config.h"
#include "model/param_layout.h"

namespace attn {

// Throws attn::Error naming the field for a config the model cannot run.
void validate_gpt_config(const GPTConfig& cfg);

template <typename S>
class CpuGPT {
 public:
  CpuGPT(const GPTConfig& cfg, const AttentionOptions& attention = {}, int max_batch = 0, int max_seq = 0);
  CpuGPT(const CpuGPT&) = delete;  // activation pointers point into acts_
  CpuGPT& operator=(const CpuGPT&) = delete;

  const GPTConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }
  const AttentionOptions& attention() const { return attn_; }

  // Flat buffers of layout().total() scalars.
  S* params() { return params_.data(); }
  const S* params() const { return params_.data(); }
  S* grads() { return grads_.data(); }
  const S* grads() const { return grads_.data(); }
  size_t num_scalars() const { return params_.size(); }

  // GPT-2 initialisation (init_gpt2_params, computed in float and converted).
  void init_params(uint64_t seed);
  void zero_grad();

  // Runs the model on inputs (B, T) and stores the activations. With targets (B, T; -1 =
  // ignored) returns the mean loss; with targets == nullptr computes the logits only and
  // returns 0. Dropout is on when ctx.train and a dropout probability is > 0.
  S forward(const int32_t* inputs, const int32_t* targets, int B, int T, const StepContext& ctx);
  // grads += grad_scale * d(mean loss)/d(params) for the last forward (which had targets).
  // Consumes the stored logits (the gradient overwrites them): once per forward.
  void backward(S grad_scale = S(1));

  // Logits (B, T, padded_vocab_size) of the last forward (columns >= vocab_size unused).
  const S* logits() const { return logits_; }
  // Logits of the last position of each row, out (B, vocab_size); no dropout.
  void last_logits(const int32_t* tokens, int B, int T, S* out);

  size_t activation_bytes() const { return acts_.size() * sizeof(S); }

  // Times every named call by category (core/step_profile.h); nullptr (default): none.
  void set_op_timer(HostOpTimer* timer) { timer_ = timer; }

 private:
  struct LayerActs {
    S *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *res2, *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *res3;
  };
  void ensure_capacity(int B, int T);
  void check_tokens(const int32_t* tokens, const int32_t* targets, int B, int T) const;
  // Embedding and the blocks: leaves the final residual stream in residual_out().
  void forward_trunk(const int32_t* inputs, int B, int T);
  const S* residual_out() const;
  DropoutState dropout(float p, uint64_t site) const;

  GPTConfig cfg_;
  ParamLayout layout_;
  AttentionOptions attn_;
  AlignedVector<S> params_, grads_;

  // activations (pointers into acts_), sized for (capB_, capT_)
  AlignedVector<S> acts_;
  int capB_ = 0, capT_ = 0;
  S *encoded_ = nullptr, *lnf_ = nullptr, *lnf_mean_ = nullptr, *lnf_rstd_ = nullptr, *logits_ = nullptr;
  S *branch_ = nullptr, *dres_ = nullptr, *dtmp_ = nullptr, *dbig_ = nullptr, *dqkv_ = nullptr;
  std::vector<LayerActs> layers_;
  std::vector<int32_t> inputs_, targets_;  // copies of the last forward's batch

  // state of the last forward
  int B_ = 0, T_ = 0;
  bool backward_ready_ = false;
  StepContext ctx_{};
  bool train_dropout_ = false;
  HostOpTimer* timer_ = nullptr;
  // Runs call, timed under op (a category, or a named op of one) when a timer is set.
  template <typename F>
  void timed(const OpTag& op, F&& call) {
    if (timer_)
      timer_->time(op, std::forward<F>(call));
    else
      call();
  }
};

extern template class CpuGPT<float>;
extern template class CpuGPT<double>;

}  // namespace attn
