// float64 references for the CUDA kernels and the whole GPT: thin adapters over the CPU
// backend's own code (model/cpu_layers.h, attention/cpu_attention.h, model/adamw.h and
// CpuGPT<double>), so the math is written once and the CPU backend is the reference.
// Row-major everywhere; N = B * T rows.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "attention/cpu_attention.h"
#include "core/rng.h"
#include "model/adamw.h"
#include "model/cpu_layers.h"
#include "model/dropout_sites.h"
#include "model/gpt_config.h"
#include "model/gpt_cpu.h"
#include "model/param_layout.h"

namespace ref {

using Vec = std::vector<double>;

// The dropout rule of model/dropout_sites.h: 0 or 1/(1-p) (1 when p == 0).
inline double drop_mult(uint64_t key, uint64_t index, double p) {
  if (p <= 0.0) return 1.0;
  return attn::dropout_keep(key, index, static_cast<float>(p)) ? 1.0 / (1.0 - p) : 0.0;
}

// ---- embedding (+ dropout) -------------------------------------------------------------------
inline void encoder_forward(Vec& out, const std::vector<int32_t>& tok, const Vec& wte, const Vec& wpe, int B, int T,
                            int C, double p, uint64_t key) {
  out.assign(static_cast<size_t>(B) * T * C, 0.0);
  attn::encoder_forward(out.data(), tok.data(), wte.data(), wpe.data(), B, T, C);
  attn::dropout_forward(out.data(), out.data(), out.size(), static_cast<float>(p), key);
}
// dwte, dwpe += ...
inline void encoder_backward(Vec& dwte, Vec& dwpe, const Vec& dout, const std::vector<int32_t>& tok, int B, int T,
                             int C, double p, uint64_t key) {
  Vec d(dout.size());
  attn::dropout_backward(d.data(), dout.data(), d.size(), static_cast<float>(p), key);
  attn::encoder_backward(dwte.data(), dwpe.data(), d.data(), tok.data(), B, T, C);
}

// ---- layernorm (eps 1e-5) -------------------------------------------------------------------
inline void layernorm_forward(Vec& out, Vec& mean, Vec& rstd, const Vec& x, const Vec& w, const Vec& b, int N,
                              int C) {
  out.assign(static_cast<size_t>(N) * C, 0.0);
  mean.assign(N, 0.0);
  rstd.assign(N, 0.0);
  attn::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
}
// dx, dw, db += ...
inline void layernorm_backward(Vec& dx, Vec& dw, Vec& db, const Vec& dout, const Vec& x, const Vec& w, int N, int C) {
  Vec out, mean, rstd, b(C, 0.0);
  layernorm_forward(out, mean, rstd, x, w, b, N, C);
  attn::layernorm_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), mean.data(), rstd.data(),
                           N, C);
}

// ---- GELU (tanh) -------------------------------------------------------------------------------
inline double gelu(double x) {
  double y = 0.0;
  attn::gelu_forward(&y, &x, 1);
  return y;
}
inline double gelu_grad(double x) {
  double one = 1.0, d = 0.0;
  attn::gelu_backward(&d, &x, &one, 1);
  return d;
}

// ---- linear: out (N, OC) = x (N, IC) W^T + b, W (OC, IC) -------------------------------------------
inline void linear_forward(Vec& out, const Vec& x, const Vec& W, const double* b, int N, int IC, int OC) {
  out.assign(static_cast<size_t>(N) * OC, 0.0);
  attn::matmul_forward(out.data(), x.data(), W.data(), b, N, IC, OC);
}
// dx = dout W (overwritten); dW += dout^T x (when dW); db += colsum(dout) (when db)
inline void linear_backward(Vec& dx, double* dW, double* db, const Vec& dout, const Vec& x, const Vec& W, int N,
                            int IC, int OC) {
  dx.assign(static_cast<size_t>(N) * IC, 0.0);
  Vec scratch(dW ? 0 : static_cast<size_t>(OC) * IC);
  attn::matmul_backward(dx.data(), dW ? dW : scratch.data(), db, dout.data(), x.data(), W.data(), N, IC, OC);
}

// ---- attention (attention/attention.h): qkv (B,T,(H+2Hkv)D) -> y (B,T,H D) -----------------------
struct AttnShape {
  int B, T, H, Hkv, D;
  bool causal;
  int qkv() const { return (H + 2 * Hkv) * D; }
  attn::AttentionShape shape() const { return {B, T, H, Hkv, D}; }
  attn::AttentionOptions options() const {
    attn::AttentionOptions o;
    o.causal = causal;
    return o;
  }
};

// P (B,H,T,T) before dropout is returned in P when non-null.
inline void attention_forward(Vec& y, const Vec& qkv, const AttnShape& s, double p, uint64_t key, Vec* Pout = nullptr) {
  y.assign(static_cast<size_t>(s.B) * s.T * s.H * s.D, 0.0);
  Vec P(static_cast<size_t>(s.B) * s.H * s.T * s.T);
  attn::naive_attention_forward(y.data(), P.data(), qkv.data(), nullptr, s.shape(), s.options(),
                                attn::DropoutState{static_cast<float>(p), key});
  if (Pout) *Pout = std::move(P);
}

// dqkv (overwritten) from dy.
inline void attention_backward(Vec& dqkv, const Vec& qkv, const Vec& dy, const AttnShape& s, double p, uint64_t key) {
  Vec y, P;
  attention_forward(y, qkv, s, p, key, &P);
  dqkv.assign(qkv.size(), 0.0);
  attn::naive_attention_backward(dqkv.data(), dy.data(), qkv.data(), P.data(), nullptr, s.shape(), s.options(),
                                 attn::DropoutState{static_cast<float>(p), key});
}

// ---- classifier: losses per row; dlogits = (softmax - onehot) * dloss over the first V columns ------
inline void classifier(Vec& losses, Vec& dlogits, const Vec& logits, const std::vector<int32_t>& targets, int N, int V,
                       int Vp, double dloss) {
  losses.assign(N, 0.0);
  dlogits.assign(static_cast<size_t>(N) * Vp, 0.0);
  for (int n = 0; n < N; ++n)  // one row at a time: the mean over one counted row is its loss
    losses[n] = attn::softmax_crossentropy(dlogits.data() + static_cast<size_t>(n) * Vp,
                                           logits.data() + static_cast<size_t>(n) * Vp, &targets[n], 1, V, Vp, dloss);
}

// ---- AdamW on one element ------------------------------------------------------------------------
inline void adamw(double& p, double& m, double& v, double grad, double lr, double b1, double b2, double eps, double wd,
                  double mult, int64_t t) {
  attn::adamw_update(&p, &grad, &m, &v, 1, static_cast<float>(lr), static_cast<float>(b1), static_cast<float>(b2),
                     static_cast<float>(eps), static_cast<float>(wd), static_cast<float>(mult), t);
}

// ---- the whole GPT (nanoGPT GPT-2) -----------------------------------------------------------------
struct Dropout {
  bool train = false;
  uint64_t seed = 0;
  int64_t step = 0;
  int micro = 0;
  uint64_t key(uint64_t site) const { return attn::dropout_site::key(seed, step, micro, site); }
};

// Mean loss over counted targets; when grads != nullptr, grads += grad_scale * dloss/dparams
// (layout order). logits_out (N, Vp) when non-null.
inline double gpt_forward_backward(const attn::ParamLayout& layout, const std::vector<double>& params,
                                   const std::vector<int32_t>& tok, const std::vector<int32_t>& tgt, int B, int T,
                                   const Dropout& dr, double grad_scale, std::vector<double>* grads,
                                   Vec* logits_out = nullptr) {
  const attn::GPTConfig& cfg = layout.config();
  attn::CpuGPT<double> model(cfg, attn::AttentionOptions{}, B, T);
  std::copy(params.begin(), params.end(), model.params());
  model.zero_grad();
  const double loss = model.forward(tok.data(), tgt.data(), B, T, attn::StepContext{dr.seed, dr.step, dr.micro, dr.train});
  if (logits_out) logits_out->assign(model.logits(), model.logits() + static_cast<size_t>(B) * T * cfg.padded_vocab_size);
  if (!grads) return loss;
  model.backward(grad_scale);
  for (size_t i = 0; i < grads->size(); ++i) (*grads)[i] += model.grads()[i];
  return loss;
}

}  // namespace ref
