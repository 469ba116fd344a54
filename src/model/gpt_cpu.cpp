#include "model/gpt_cpu.h"

#include <algorithm>
#include <cmath>

#include "attention/cpu_attention.h"
#include "attention/registry.h"
#include "core/error.h"
#include "model/cpu_layers.h"
#include "model/dropout_sites.h"

namespace attn {

void validate_gpt_config(const GPTConfig& c) {
  ATTN_CHECK(c.vocab_size > 0, "model.vocab_size = {} must be > 0", c.vocab_size);
  ATTN_CHECK(c.padded_vocab_size >= c.vocab_size, "model.padded_vocab_size = {} must be >= vocab_size = {}",
             c.padded_vocab_size, c.vocab_size);
  ATTN_CHECK(c.block_size > 0, "model.block_size = {} must be > 0", c.block_size);
  ATTN_CHECK(c.n_layer > 0, "model.n_layer = {} must be > 0", c.n_layer);
  ATTN_CHECK(c.n_head > 0, "model.n_head = {} must be > 0", c.n_head);
  ATTN_CHECK(c.n_embd > 0 && c.n_embd % c.n_head == 0, "model.n_embd = {} must be a positive multiple of n_head = {}",
             c.n_embd, c.n_head);
  ATTN_CHECK(c.n_kv_head > 0 && c.n_head % c.n_kv_head == 0, "model.n_kv_head = {} must divide n_head = {}",
             c.n_kv_head, c.n_head);
  ATTN_CHECK(c.dropout >= 0.0f && c.dropout < 1.0f, "model.dropout = {} must be in [0, 1)", c.dropout);
  ATTN_CHECK(c.attn_dropout >= 0.0f && c.attn_dropout < 1.0f, "model.attn_dropout = {} must be in [0, 1)",
             c.attn_dropout);
}

namespace {
const GPTConfig& validated(const GPTConfig& c) {
  validate_gpt_config(c);
  return c;
}
}  // namespace

template <typename S>
CpuGPT<S>::CpuGPT(const GPTConfig& cfg, const AttentionOptions& attention, int max_batch, int max_seq)
    : cfg_(validated(cfg)), layout_(cfg), attn_(attention) {
  check_attention(attn_, AttentionUse{});
  params_.assign(layout_.total(), S(0));
  grads_.assign(layout_.total(), S(0));
  if (max_batch > 0 && max_seq > 0) ensure_capacity(max_batch, std::min(max_seq, cfg_.block_size));
}

template <typename S>
void CpuGPT<S>::init_params(uint64_t seed) {
  std::vector<float> p(layout_.total());
  init_gpt2_params(layout_, seed, p.data());
  std::copy(p.begin(), p.end(), params_.begin());
}

template <typename S>
void CpuGPT<S>::zero_grad() {
  std::fill(grads_.begin(), grads_.end(), S(0));
}

// One allocation holding every activation for (B, T): per layer ln_1 (and its mean, rstd),
// qkv, attention output y, P, x after attention, ln_2 (mean, rstd), fc pre/post GELU, x
// after the MLP; then ln_f and the logits; then scratch for the backward pass.
template <typename S>
void CpuGPT<S>::ensure_capacity(int B, int T) {
  if (B <= capB_ && T <= capT_) return;
  capB_ = std::max(B, capB_);
  capT_ = std::max(T, capT_);
  const size_t N = static_cast<size_t>(capB_) * capT_, C = cfg_.n_embd, QKV = cfg_.qkv_dim();
  const size_t att = static_cast<size_t>(capB_) * cfg_.n_head * capT_ * capT_;
  const size_t per_layer = N * C * 5 + N * 4 + N * QKV + att + N * 4 * C * 2;
  const size_t global = N * C * 2 + N * 2 + N * cfg_.padded_vocab_size;
  const size_t scratch = N * C * 3 + N * 4 * C + N * QKV;
  // Each buffer starts 64-byte aligned (16 floats of slack per buffer): see aligned_vector.h.
  const size_t buffers = 13 * cfg_.n_layer + 10;
  acts_.assign(per_layer * cfg_.n_layer + global + scratch + 16 * buffers, S(0));
  S* p = acts_.data();
  auto take = [&p](size_t n) {
    S* r = p;
    p += (n + 15) / 16 * 16;
    return r;
  };
  encoded_ = take(N * C);
  layers_.resize(cfg_.n_layer);
  for (auto& l : layers_) {
    l.ln1 = take(N * C), l.ln1_mean = take(N), l.ln1_rstd = take(N), l.qkv = take(N * QKV);
    l.atty = take(N * C), l.att = take(att), l.res2 = take(N * C);
    l.ln2 = take(N * C), l.ln2_mean = take(N), l.ln2_rstd = take(N);
    l.fch = take(N * 4 * C), l.fch_gelu = take(N * 4 * C), l.res3 = take(N * C);
  }
  lnf_ = take(N * C), lnf_mean_ = take(N), lnf_rstd_ = take(N);
  logits_ = take(N * cfg_.padded_vocab_size);
  branch_ = take(N * C), dres_ = take(N * C), dtmp_ = take(N * C), dbig_ = take(N * 4 * C), dqkv_ = take(N * QKV);
  inputs_.reserve(N);
  targets_.reserve(N);
  backward_ready_ = false;
}

template <typename S>
void CpuGPT<S>::check_tokens(const int32_t* tokens, const int32_t* targets, int B, int T) const {
  ATTN_CHECK(B > 0 && T > 0, "batch shape ({}, {}) must be positive", B, T);
  ATTN_CHECK(T <= cfg_.block_size, "sequence length T = {} exceeds model.block_size = {}", T, cfg_.block_size);
  const int V = cfg_.vocab_size;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      const int32_t id = tokens[static_cast<size_t>(b) * T + t];
      ATTN_CHECK(id >= 0 && id < V, "token id {} at ({},{}) out of range for vocab {}", id, b, t, V);
      if (targets) {
        const int32_t y = targets[static_cast<size_t>(b) * T + t];
        ATTN_CHECK(y == -1 || (y >= 0 && y < V), "target id {} at ({},{}) out of range for vocab {}", y, b, t, V);
      }
    }
}

template <typename S>
DropoutState CpuGPT<S>::dropout(float p, uint64_t site) const {
  if (!train_dropout_ || p <= 0.0f) return {};
  return {p, dropout_site::key(ctx_.seed, ctx_.step, ctx_.micro_step, site)};
}

template <typename S>
const S* CpuGPT<S>::residual_out() const {
  return layers_.back().res3;
}

template <typename S>
void CpuGPT<S>::forward_trunk(const int32_t* inputs, int B, int T) {
  const int C = cfg_.n_embd, QKV = cfg_.qkv_dim(), N = B * T;
  const size_t NC = static_cast<size_t>(N) * C;
  const S* P = params_.data();
  auto W = [&](int idx) { return P + layout_.get(idx).offset; };

  timed(OpCategory::Other, [&] { encoder_forward(encoded_, inputs, W(layout_.wte()), W(layout_.wpe()), B, T, C); });
  const DropoutState de = dropout(cfg_.dropout, dropout_site::kEmbedding);
  timed(OpCategory::Other, [&] { dropout_forward(encoded_, encoded_, NC, de.p, de.key); });

  const AttentionShape shape{B, T, cfg_.n_head, cfg_.n_kv_head, cfg_.head_dim()};
  for (int l = 0; l < cfg_.n_layer; ++l) {
    const LayerParams& lp = layout_.layer(l);
    LayerActs& a = layers_[l];
    const S* x = l == 0 ? encoded_ : layers_[l - 1].res3;
    // x = x + drop(attn.c_proj(attention(ln_1(x))))
    timed(OpCategory::Norm,
          [&] { layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, x, W(lp.ln1_w), W(lp.ln1_b), N, C); });
    timed(OpCategory::Matmul, [&] { matmul_forward(a.qkv, a.ln1, W(lp.qkv_w), W(lp.qkv_b), N, C, QKV); });
    timed(OpCategory::AttentionFwd, [&] {
      naive_attention_forward(a.atty, a.att, a.qkv, inputs, shape, attn_,
                              dropout(cfg_.attn_dropout, dropout_site::attention_probs(l)));
    });
    timed(OpCategory::Matmul, [&] { matmul_forward(branch_, a.atty, W(lp.attproj_w), W(lp.attproj_b), N, C, C); });
    const DropoutState d1 = dropout(cfg_.dropout, dropout_site::attention_branch(l));
    timed(OpCategory::Other, [&] { dropout_forward(branch_, branch_, NC, d1.p, d1.key); });
    timed(OpCategory::Other, [&] { residual_forward(a.res2, x, branch_, NC); });
    // x = x + drop(mlp.c_proj(gelu(mlp.c_fc(ln_2(x)))))
    timed(OpCategory::Norm,
          [&] { layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.res2, W(lp.ln2_w), W(lp.ln2_b), N, C); });
    timed(OpCategory::Matmul, [&] { matmul_forward(a.fch, a.ln2, W(lp.fc_w), W(lp.fc_b), N, C, 4 * C); });
    timed(OpCategory::Other, [&] { gelu_forward(a.fch_gelu, a.fch, NC * 4); });
    timed(OpCategory::Matmul,
          [&] { matmul_forward(branch_, a.fch_gelu, W(lp.fcproj_w), W(lp.fcproj_b), N, 4 * C, C); });
    const DropoutState d2 = dropout(cfg_.dropout, dropout_site::mlp_branch(l));
    timed(OpCategory::Other, [&] { dropout_forward(branch_, branch_, NC, d2.p, d2.key); });
    timed(OpCategory::Other, [&] { residual_forward(a.res3, a.res2, branch_, NC); });
  }
}

template <typename S>
S CpuGPT<S>::forward(const int32_t* inputs, const int32_t* targets, int B, int T, const StepContext& ctx) {
  check_tokens(inputs, targets, B, T);
  ensure_capacity(B, T);
  const int C = cfg_.n_embd, N = B * T, V = cfg_.vocab_size, Vp = cfg_.padded_vocab_size;
  B_ = B, T_ = T, ctx_ = ctx;
  train_dropout_ = ctx.train && (cfg_.dropout > 0.0f || cfg_.attn_dropout > 0.0f);
  inputs_.assign(inputs, inputs + N);
  backward_ready_ = false;

  forward_trunk(inputs_.data(), B, T);
  const S* P = params_.data();
  timed(OpCategory::Norm, [&] {
    layernorm_forward(lnf_, lnf_mean_, lnf_rstd_, residual_out(), P + layout_.get(layout_.lnf_w()).offset,
                      P + layout_.get(layout_.lnf_b()).offset, N, C);
  });
  timed(OpCategory::Classifier,
        [&] { lm_head_forward(logits_, lnf_, P + layout_.get(layout_.wte()).offset, N, C, V, Vp); });
  if (!targets) return S(0);
  targets_.assign(targets, targets + N);
  backward_ready_ = true;
  S loss = S(0);
  timed(OpCategory::Classifier, [&] { loss = softmax_crossentropy<S>(nullptr, logits_, targets_.data(), N, V, Vp); });
  return loss;
}

template <typename S>
void CpuGPT<S>::backward(S grad_scale) {
  ATTN_CHECK(backward_ready_, "CpuGPT::backward needs a forward with targets just before it");
  backward_ready_ = false;
  const int B = B_, T = T_, C = cfg_.n_embd, QKV = cfg_.qkv_dim(), N = B * T;
  const int V = cfg_.vocab_size, Vp = cfg_.padded_vocab_size;
  const size_t NC = static_cast<size_t>(N) * C;
  const S* P = params_.data();
  S* G = grads_.data();
  auto W = [&](int idx) { return P + layout_.get(idx).offset; };
  auto dW = [&](int idx) { return G + layout_.get(idx).offset; };

  // loss -> logits (in place) -> ln_f -> residual stream gradient dres
  timed(OpCategory::Classifier,
        [&] { softmax_crossentropy<S>(logits_, logits_, targets_.data(), N, V, Vp, grad_scale); });
  timed(OpCategory::Classifier,
        [&] { lm_head_backward(dtmp_, dW(layout_.wte()), logits_, lnf_, W(layout_.wte()), N, C, V, Vp); });
  timed(OpCategory::Other, [&] { std::fill(dres_, dres_ + NC, S(0)); });
  timed(OpCategory::Norm, [&] {
    layernorm_backward(dres_, dW(layout_.lnf_w()), dW(layout_.lnf_b()), dtmp_, residual_out(), W(layout_.lnf_w()),
                       lnf_mean_, lnf_rstd_, N, C);
  });

  const AttentionShape shape{B, T, cfg_.n_head, cfg_.n_kv_head, cfg_.head_dim()};
  for (int l = cfg_.n_layer - 1; l >= 0; --l) {
    const LayerParams& lp = layout_.layer(l);
    LayerActs& a = layers_[l];
    const S* x = l == 0 ? encoded_ : layers_[l - 1].res3;
    // MLP branch: dres is d(res3); the skip passes it to d(res2) unchanged.
    const DropoutState d2 = dropout(cfg_.dropout, dropout_site::mlp_branch(l));
    timed(OpCategory::Other, [&] { dropout_backward(dtmp_, dres_, NC, d2.p, d2.key); });
    timed(OpCategory::Matmul, [&] {
      matmul_backward(dbig_, dW(lp.fcproj_w), dW(lp.fcproj_b), dtmp_, a.fch_gelu, W(lp.fcproj_w), N, 4 * C, C);
    });
    timed(OpCategory::Other, [&] { gelu_backward(dbig_, a.fch, dbig_, NC * 4); });
    timed(OpCategory::Matmul,
          [&] { matmul_backward(dtmp_, dW(lp.fc_w), dW(lp.fc_b), dbig_, a.ln2, W(lp.fc_w), N, C, 4 * C); });
    timed(OpCategory::Norm, [&] {
      layernorm_backward(dres_, dW(lp.ln2_w), dW(lp.ln2_b), dtmp_, a.res2, W(lp.ln2_w), a.ln2_mean, a.ln2_rstd, N, C);
    });
    // attention branch: dres is now d(res2); the skip passes it to d(x).
    const DropoutState d1 = dropout(cfg_.dropout, dropout_site::attention_branch(l));
    timed(OpCategory::Other, [&] { dropout_backward(dtmp_, dres_, NC, d1.p, d1.key); });
    S* datty = dbig_;  // (N, C) fits in the (N, 4C) scratch
    timed(OpCategory::Matmul,
          [&] { matmul_backward(datty, dW(lp.attproj_w), dW(lp.attproj_b), dtmp_, a.atty, W(lp.attproj_w), N, C, C); });
    timed(OpCategory::AttentionBwd, [&] {
      naive_attention_backward(dqkv_, datty, a.qkv, a.att, inputs_.data(), shape, attn_,
                               dropout(cfg_.attn_dropout, dropout_site::attention_probs(l)));
    });
    timed(OpCategory::Matmul,
          [&] { matmul_backward(dtmp_, dW(lp.qkv_w), dW(lp.qkv_b), dqkv_, a.ln1, W(lp.qkv_w), N, C, QKV); });
    timed(OpCategory::Norm, [&] {
      layernorm_backward(dres_, dW(lp.ln1_w), dW(lp.ln1_b), dtmp_, x, W(lp.ln1_w), a.ln1_mean, a.ln1_rstd, N, C);
    });
  }
  // embedding: dres is d(encoded after dropout)
  const DropoutState de = dropout(cfg_.dropout, dropout_site::kEmbedding);
  timed(OpCategory::Other, [&] { dropout_backward(dres_, dres_, NC, de.p, de.key); });
  timed(OpCategory::Other,
        [&] { encoder_backward(dW(layout_.wte()), dW(layout_.wpe()), dres_, inputs_.data(), B, T, C); });
}

template <typename S>
void CpuGPT<S>::last_logits(const int32_t* tokens, int B, int T, S* out) {
  check_tokens(tokens, nullptr, B, T);
  ensure_capacity(B, T);
  const int C = cfg_.n_embd, N = B * T, V = cfg_.vocab_size;
  B_ = B, T_ = T, ctx_ = StepContext{};
  ctx_.train = false;
  train_dropout_ = false;
  backward_ready_ = false;
  inputs_.assign(tokens, tokens + N);
  forward_trunk(inputs_.data(), B, T);
  const S* P = params_.data();
  layernorm_forward(lnf_, lnf_mean_, lnf_rstd_, residual_out(), P + layout_.get(layout_.lnf_w()).offset,
                    P + layout_.get(layout_.lnf_b()).offset, N, C);
  // only the last position of each row: rows t = T-1 of lnf, stride T*C
  ConstStridedMatMap<S> last(lnf_ + static_cast<size_t>(T - 1) * C, B, C, Eigen::OuterStride<>(T * C));
  MatMap<S>(out, B, V).noalias() =
      last * ConstMatMap<S>(P + layout_.get(layout_.wte()).offset, V, C).transpose();
}

template class CpuGPT<float>;
template class CpuGPT<double>;

}  // namespace attn
