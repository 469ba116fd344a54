// float64 references for the CUDA kernels and the whole GPT: small, plain loops, the math
// of the issue written once. (To be deduplicated with the CPU layers once those are merged.)
// Row-major everywhere; N = B * T rows.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "model/dropout_sites.h"
#include "model/gpt_config.h"
#include "model/param_layout.h"

namespace ref {

using Vec = std::vector<double>;

// The dropout rule of model/dropout_sites.h: 0 or 1/(1-p) (1 when p == 0).
inline double drop_mult(uint64_t key, uint64_t index, double p) {
  if (p <= 0.0) return 1.0;
  return attn::dropout_keep(key, index, static_cast<float>(p)) ? 1.0 / (1.0 - p) : 0.0;
}

// ---- embedding ---------------------------------------------------------------------------
inline void encoder_forward(Vec& out, const std::vector<int32_t>& tok, const Vec& wte, const Vec& wpe, int B, int T,
                            int C, double p, uint64_t key) {
  out.assign(static_cast<size_t>(B) * T * C, 0.0);
  for (int n = 0; n < B * T; ++n)
    for (int c = 0; c < C; ++c) {
      const size_t i = static_cast<size_t>(n) * C + c;
      out[i] = (wte[static_cast<size_t>(tok[n]) * C + c] + wpe[static_cast<size_t>(n % T) * C + c]) * drop_mult(key, i, p);
    }
}
// dwte, dwpe += ...
inline void encoder_backward(Vec& dwte, Vec& dwpe, const Vec& dout, const std::vector<int32_t>& tok, int B, int T,
                             int C, double p, uint64_t key) {
  for (int n = 0; n < B * T; ++n)
    for (int c = 0; c < C; ++c) {
      const size_t i = static_cast<size_t>(n) * C + c;
      const double d = dout[i] * drop_mult(key, i, p);
      dwte[static_cast<size_t>(tok[n]) * C + c] += d;
      dwpe[static_cast<size_t>(n % T) * C + c] += d;
    }
}

// ---- layernorm (eps 1e-5) -------------------------------------------------------------------
inline void layernorm_forward(Vec& out, Vec& mean, Vec& rstd, const Vec& x, const Vec& w, const Vec& b, int N,
                              int C) {
  out.assign(static_cast<size_t>(N) * C, 0.0);
  mean.assign(N, 0.0);
  rstd.assign(N, 0.0);
  for (int n = 0; n < N; ++n) {
    const double* xr = &x[static_cast<size_t>(n) * C];
    double m = 0.0, v = 0.0;
    for (int c = 0; c < C; ++c) m += xr[c];
    m /= C;
    for (int c = 0; c < C; ++c) v += (xr[c] - m) * (xr[c] - m);
    const double r = 1.0 / std::sqrt(v / C + 1e-5);
    for (int c = 0; c < C; ++c) out[static_cast<size_t>(n) * C + c] = (xr[c] - m) * r * w[c] + b[c];
    mean[n] = m;
    rstd[n] = r;
  }
}
// dx, dw, db += ...
inline void layernorm_backward(Vec& dx, Vec& dw, Vec& db, const Vec& dout, const Vec& x, const Vec& w, int N, int C) {
  Vec out, mean, rstd, b(C, 0.0);
  layernorm_forward(out, mean, rstd, x, w, b, N, C);
  for (int n = 0; n < N; ++n) {
    const size_t base = static_cast<size_t>(n) * C;
    double gm = 0.0, gnm = 0.0;
    for (int c = 0; c < C; ++c) {
      const double norm = (x[base + c] - mean[n]) * rstd[n];
      const double g = w[c] * dout[base + c];
      gm += g, gnm += g * norm;
      dw[c] += dout[base + c] * norm;
      db[c] += dout[base + c];
    }
    gm /= C, gnm /= C;
    for (int c = 0; c < C; ++c) {
      const double norm = (x[base + c] - mean[n]) * rstd[n];
      dx[base + c] += (w[c] * dout[base + c] - gm - norm * gnm) * rstd[n];
    }
  }
}

// ---- GELU (tanh) -------------------------------------------------------------------------------
inline double gelu(double x) {
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}
inline double gelu_grad(double x) {
  const double k = std::sqrt(2.0 / M_PI);
  const double t = std::tanh(k * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
}

// ---- linear: out (N, OC) = x (N, IC) W^T + b, W (OC, IC) -------------------------------------------
inline void linear_forward(Vec& out, const Vec& x, const Vec& W, const double* b, int N, int IC, int OC) {
  out.assign(static_cast<size_t>(N) * OC, 0.0);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) {
      double s = b ? b[o] : 0.0;
      for (int i = 0; i < IC; ++i) s += x[static_cast<size_t>(n) * IC + i] * W[static_cast<size_t>(o) * IC + i];
      out[static_cast<size_t>(n) * OC + o] = s;
    }
}
// dx = dout W (overwritten); dW += dout^T x; db += colsum(dout) (when db)
inline void linear_backward(Vec& dx, double* dW, double* db, const Vec& dout, const Vec& x, const Vec& W, int N,
                            int IC, int OC) {
  dx.assign(static_cast<size_t>(N) * IC, 0.0);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) {
      const double d = dout[static_cast<size_t>(n) * OC + o];
      if (d == 0.0) continue;
      for (int i = 0; i < IC; ++i) {
        dx[static_cast<size_t>(n) * IC + i] += d * W[static_cast<size_t>(o) * IC + i];
        if (dW) dW[static_cast<size_t>(o) * IC + i] += d * x[static_cast<size_t>(n) * IC + i];
      }
      if (db) db[o] += d;
    }
}

// ---- attention (attention/attention.h): qkv (B,T,(H+2Hkv)D) -> y (B,T,H D) -----------------------
struct AttnShape {
  int B, T, H, Hkv, D;
  bool causal;
  int qkv() const { return (H + 2 * Hkv) * D; }
};
// head index in the qkv row: q heads [0, H), k heads [H, H+Hkv), v heads [H+Hkv, H+2Hkv)
inline size_t qkv_index(const AttnShape& s, int b, int t, int head, int d) {
  return (static_cast<size_t>(b) * s.T + t) * s.qkv() + static_cast<size_t>(head) * s.D + d;
}

// P (B,H,T,T) before dropout is returned in P when non-null.
inline void attention_forward(Vec& y, const Vec& qkv, const AttnShape& s, double p, uint64_t key, Vec* Pout = nullptr) {
  const int G = s.H / s.Hkv;
  y.assign(static_cast<size_t>(s.B) * s.T * s.H * s.D, 0.0);
  if (Pout) Pout->assign(static_cast<size_t>(s.B) * s.H * s.T * s.T, 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.D));
  std::vector<double> row(s.T);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h) {
      const int g = h / G;
      for (int i = 0; i < s.T; ++i) {
        const int len = s.causal ? i + 1 : s.T;
        double m = -INFINITY;
        for (int j = 0; j < len; ++j) {
          double dot = 0.0;
          for (int d = 0; d < s.D; ++d) dot += qkv[qkv_index(s, b, i, h, d)] * qkv[qkv_index(s, b, j, s.H + g, d)];
          row[j] = dot * scale;
          m = std::max(m, row[j]);
        }
        double sum = 0.0;
        for (int j = 0; j < len; ++j) sum += (row[j] = std::exp(row[j] - m));
        const size_t rbase = ((static_cast<size_t>(b) * s.H + h) * s.T + i) * s.T;
        for (int j = 0; j < len; ++j) {
          const double pj = row[j] / sum;
          if (Pout) (*Pout)[rbase + j] = pj;
          const double pd = pj * drop_mult(key, rbase + j, p);
          for (int d = 0; d < s.D; ++d)
            y[(static_cast<size_t>(b) * s.T + i) * s.H * s.D + static_cast<size_t>(h) * s.D + d] +=
                pd * qkv[qkv_index(s, b, j, s.H + s.Hkv + g, d)];
        }
      }
    }
}

// dqkv (overwritten) from dy.
inline void attention_backward(Vec& dqkv, const Vec& qkv, const Vec& dy, const AttnShape& s, double p, uint64_t key) {
  const int G = s.H / s.Hkv;
  Vec y, P;
  attention_forward(y, qkv, s, p, key, &P);
  dqkv.assign(qkv.size(), 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.D));
  std::vector<double> dP(s.T);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h) {
      const int g = h / G;
      for (int i = 0; i < s.T; ++i) {
        const int len = s.causal ? i + 1 : s.T;
        const size_t rbase = ((static_cast<size_t>(b) * s.H + h) * s.T + i) * s.T;
        const size_t ybase = (static_cast<size_t>(b) * s.T + i) * s.H * s.D + static_cast<size_t>(h) * s.D;
        double rowsum = 0.0;
        for (int j = 0; j < len; ++j) {
          const double mult = drop_mult(key, rbase + j, p);
          double dpd = 0.0;
          for (int d = 0; d < s.D; ++d) {
            dpd += dy[ybase + d] * qkv[qkv_index(s, b, j, s.H + s.Hkv + g, d)];
            dqkv[qkv_index(s, b, j, s.H + s.Hkv + g, d)] += P[rbase + j] * mult * dy[ybase + d];  // dV
          }
          dP[j] = dpd * mult;
          rowsum += dP[j] * P[rbase + j];
        }
        for (int j = 0; j < len; ++j) {
          const double ds = P[rbase + j] * (dP[j] - rowsum) * scale;
          for (int d = 0; d < s.D; ++d) {
            dqkv[qkv_index(s, b, i, h, d)] += ds * qkv[qkv_index(s, b, j, s.H + g, d)];      // dQ
            dqkv[qkv_index(s, b, j, s.H + g, d)] += ds * qkv[qkv_index(s, b, i, h, d)];      // dK
          }
        }
      }
    }
}

// ---- classifier: losses per row; dlogits = (softmax - onehot) * dloss over the first V columns ------
inline void classifier(Vec& losses, Vec& dlogits, const Vec& logits, const std::vector<int32_t>& targets, int N, int V,
                       int Vp, double dloss) {
  losses.assign(N, 0.0);
  dlogits.assign(static_cast<size_t>(N) * Vp, 0.0);
  for (int n = 0; n < N; ++n) {
    if (targets[n] < 0) continue;
    const double* row = &logits[static_cast<size_t>(n) * Vp];
    double m = -INFINITY, s = 0.0;
    for (int j = 0; j < V; ++j) m = std::max(m, row[j]);
    for (int j = 0; j < V; ++j) s += std::exp(row[j] - m);
    const double lse = m + std::log(s);
    losses[n] = lse - row[targets[n]];
    for (int j = 0; j < V; ++j)
      dlogits[static_cast<size_t>(n) * Vp + j] = (std::exp(row[j] - lse) - (j == targets[n] ? 1.0 : 0.0)) * dloss;
  }
}

// ---- AdamW on one element ------------------------------------------------------------------------
inline void adamw(double& p, double& m, double& v, double grad, double lr, double b1, double b2, double eps, double wd,
                  double mult, int64_t t) {
  const double g = grad * mult;
  m = b1 * m + (1 - b1) * g;
  v = b2 * v + (1 - b2) * g * g;
  const double mhat = m / (1 - std::pow(b1, static_cast<double>(t)));
  const double vhat = v / (1 - std::pow(b2, static_cast<double>(t)));
  p -= lr * (mhat / (std::sqrt(vhat) + eps) + wd * p);
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
  const int N = B * T, C = cfg.n_embd, QKV = cfg.qkv_dim(), V = cfg.vocab_size, Vp = cfg.padded_vocab_size;
  const int L = cfg.n_layer;
  const double pd = dr.train ? cfg.dropout : 0.0, pa = dr.train ? cfg.attn_dropout : 0.0;
  auto slice = [&](int idx) {
    const attn::ParamTensor& t = layout.get(idx);
    return Vec(params.begin() + t.offset, params.begin() + t.offset + t.numel);
  };
  auto G = [&](int idx) { return grads->data() + layout.get(idx).offset; };
  const AttnShape as{B, T, cfg.n_head, cfg.n_kv_head, cfg.head_dim(), true};
  namespace site = attn::dropout_site;

  struct Acts { Vec x, ln1, qkv, atty, proj1, mid, ln2, fch, fcg, proj2; };
  std::vector<Acts> a(L);
  Vec x0;
  encoder_forward(x0, tok, slice(layout.wte()), slice(layout.wpe()), B, T, C, pd, dr.key(site::kEmbedding));
  Vec x = x0, mean, rstd;
  for (int l = 0; l < L; ++l) {
    const attn::LayerParams& lp = layout.layer(l);
    Acts& A = a[l];
    A.x = x;
    layernorm_forward(A.ln1, mean, rstd, x, slice(lp.ln1_w), slice(lp.ln1_b), N, C);
    const Vec qkv_b = slice(lp.qkv_b), ap_b = slice(lp.attproj_b), fc_b = slice(lp.fc_b), fp_b = slice(lp.fcproj_b);
    linear_forward(A.qkv, A.ln1, slice(lp.qkv_w), qkv_b.data(), N, C, QKV);
    attention_forward(A.atty, A.qkv, as, pa, dr.key(site::attention_probs(l)));
    linear_forward(A.proj1, A.atty, slice(lp.attproj_w), ap_b.data(), N, C, C);
    A.mid = x;
    const uint64_t k1 = dr.key(site::attention_branch(l));
    for (size_t i = 0; i < A.mid.size(); ++i) A.mid[i] += A.proj1[i] * drop_mult(k1, i, pd);
    layernorm_forward(A.ln2, mean, rstd, A.mid, slice(lp.ln2_w), slice(lp.ln2_b), N, C);
    linear_forward(A.fch, A.ln2, slice(lp.fc_w), fc_b.data(), N, C, 4 * C);
    A.fcg = A.fch;
    for (double& v : A.fcg) v = gelu(v);
    linear_forward(A.proj2, A.fcg, slice(lp.fcproj_w), fp_b.data(), N, 4 * C, C);
    x = A.mid;
    const uint64_t k2 = dr.key(site::mlp_branch(l));
    for (size_t i = 0; i < x.size(); ++i) x[i] += A.proj2[i] * drop_mult(k2, i, pd);
  }
  Vec lnf, logits;
  layernorm_forward(lnf, mean, rstd, x, slice(layout.lnf_w()), slice(layout.lnf_b()), N, C);
  linear_forward(logits, lnf, slice(layout.wte()), nullptr, N, C, Vp);
  if (logits_out) *logits_out = logits;
  int count = 0;
  for (int n = 0; n < N; ++n) count += tgt[n] != -1;
  Vec losses, dlogits;
  classifier(losses, dlogits, logits, tgt, N, V, Vp, count ? grad_scale / count : 0.0);
  double loss = 0.0;
  for (double l : losses) loss += l;
  loss = count ? loss / count : 0.0;
  if (!grads) return loss;

  // backward
  Vec dlnf, dx(static_cast<size_t>(N) * C, 0.0);
  linear_backward(dlnf, G(layout.wte()), nullptr, dlogits, lnf, slice(layout.wte()), N, C, Vp);
  {
    Vec dw(C, 0.0), db(C, 0.0);
    layernorm_backward(dx, dw, db, dlnf, x, slice(layout.lnf_w()), N, C);
    for (int c = 0; c < C; ++c) G(layout.lnf_w())[c] += dw[c], G(layout.lnf_b())[c] += db[c];
  }
  for (int l = L - 1; l >= 0; --l) {
    const attn::LayerParams& lp = layout.layer(l);
    Acts& A = a[l];
    // MLP branch
    Vec dbr = dx;
    const uint64_t k2 = dr.key(site::mlp_branch(l));
    for (size_t i = 0; i < dbr.size(); ++i) dbr[i] *= drop_mult(k2, i, pd);
    Vec dfcg, dln2;
    linear_backward(dfcg, G(lp.fcproj_w), G(lp.fcproj_b), dbr, A.fcg, slice(lp.fcproj_w), N, 4 * C, C);
    for (size_t i = 0; i < dfcg.size(); ++i) dfcg[i] *= gelu_grad(A.fch[i]);
    linear_backward(dln2, G(lp.fc_w), G(lp.fc_b), dfcg, A.ln2, slice(lp.fc_w), N, C, 4 * C);
    {
      Vec dw(C, 0.0), db(C, 0.0);
      layernorm_backward(dx, dw, db, dln2, A.mid, slice(lp.ln2_w), N, C);
      for (int c = 0; c < C; ++c) G(lp.ln2_w)[c] += dw[c], G(lp.ln2_b)[c] += db[c];
    }
    // attention branch
    dbr = dx;
    const uint64_t k1 = dr.key(site::attention_branch(l));
    for (size_t i = 0; i < dbr.size(); ++i) dbr[i] *= drop_mult(k1, i, pd);
    Vec datty, dqkv, dln1;
    linear_backward(datty, G(lp.attproj_w), G(lp.attproj_b), dbr, A.atty, slice(lp.attproj_w), N, C, C);
    attention_backward(dqkv, A.qkv, datty, as, pa, dr.key(site::attention_probs(l)));
    linear_backward(dln1, G(lp.qkv_w), G(lp.qkv_b), dqkv, A.ln1, slice(lp.qkv_w), N, C, QKV);
    {
      Vec dw(C, 0.0), db(C, 0.0);
      layernorm_backward(dx, dw, db, dln1, A.x, slice(lp.ln1_w), N, C);
      for (int c = 0; c < C; ++c) G(lp.ln1_w)[c] += dw[c], G(lp.ln1_b)[c] += db[c];
    }
  }
  {
    const size_t nwte = layout.get(layout.wte()).numel, nwpe = layout.get(layout.wpe()).numel;
    Vec dwte(nwte, 0.0), dwpe(nwpe, 0.0);
    encoder_backward(dwte, dwpe, dx, tok, B, T, C, pd, dr.key(site::kEmbedding));
    for (size_t i = 0; i < nwte; ++i) G(layout.wte())[i] += dwte[i];
    for (size_t i = 0; i < nwpe; ++i) G(layout.wpe())[i] += dwpe[i];
  }
  return loss;
}

}  // namespace ref
