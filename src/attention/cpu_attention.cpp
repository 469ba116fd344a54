#include "attention/cpu_attention.h"
#include "core/aligned_vector.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/eigen_maps.h"
#include "core/error.h"
#include "core/rng.h"

namespace attn {

void check_cpu_attention_options(const AttentionOptions& opts) {
  if (opts.impl == "flash") fail("attention.impl = \"flash\" is only available on the cuda backend");
  ATTN_CHECK(opts.impl == "naive", "attention.impl = \"{}\" is not available on the cpu backend (use \"naive\")",
             opts.impl);
  ATTN_CHECK(opts.sliding_window >= 0, "attention.sliding_window = {} must be >= 0", opts.sliding_window);
  ATTN_CHECK(opts.softcap >= 0.0f && std::isfinite(opts.softcap), "attention.softcap = {} must be >= 0",
             opts.softcap);
  ATTN_CHECK(!opts.document_mask || opts.eot_token >= 0,
             "attention.document_mask needs the end-of-text token id (eot_token = {})", opts.eot_token);
}

void check_attention_shape(const AttentionShape& s) {
  ATTN_CHECK(s.B > 0 && s.T > 0 && s.n_head > 0 && s.n_kv_head > 0 && s.head_dim > 0,
             "attention: bad shape B={} T={} n_head={} n_kv_head={} head_dim={}", s.B, s.T, s.n_head,
             s.n_kv_head, s.head_dim);
  ATTN_CHECK(s.n_head % s.n_kv_head == 0, "attention: n_kv_head = {} must divide n_head = {}", s.n_kv_head,
             s.n_head);
}

namespace {

// Which keys a query sees: row i sees j in [lo(i), hi(i)] (causal and window) with the
// same document id (document mask).
struct Visibility {
  int T;
  bool causal;
  int window;
  const int* doc;  // null: no document mask
  int lo(int i) const { return window > 0 ? std::max(0, i - window + 1) : 0; }
  int hi(int i) const { return causal ? i : T - 1; }
  bool same_doc(int i, int j) const { return doc == nullptr || doc[i] == doc[j]; }
};

// Row b of a packed (B, T, (H + 2 Hkv) D) buffer (qkv or dqkv) seen as per-head (T x D)
// matrices with row stride (H + 2 Hkv) D: query head h, key head g, value head g.
// E is `const S` for inputs, `S` for gradients.
template <typename E>
struct PackedHeads {
  using S = std::remove_const_t<E>;
  using Map = std::conditional_t<std::is_const_v<E>, ConstStridedMatMap<S>, StridedMatMap<S>>;
  E* row;
  const AttentionShape& s;
  PackedHeads(E* buf, const AttentionShape& shape, int b)
      : row(buf + static_cast<size_t>(b) * shape.T * shape.qkv_dim()), s(shape) {}
  Map head(int i) const {
    return Map(row + static_cast<size_t>(i) * s.head_dim, s.T, s.head_dim, Eigen::OuterStride<>(s.qkv_dim()));
  }
  Map q(int h) const { return head(h); }
  Map k(int g) const { return head(s.n_head + g); }
  Map v(int g) const { return head(s.n_head + s.n_kv_head + g); }
};

template <typename S>
struct Scratch {
  AlignedVector<S> a, b;
  std::vector<int> doc;
};

template <typename S>
Scratch<S>& thread_scratch(int T) {
  thread_local Scratch<S> s;  // grows once, reused by every later call on this thread
  const size_t tt = static_cast<size_t>(T) * T;
  if (s.a.size() < tt) s.a.resize(tt), s.b.resize(tt);
  if (s.doc.size() < static_cast<size_t>(T)) s.doc.resize(T);
  return s;
}

void check_call(const AttentionShape& shape, const AttentionOptions& opts, const int32_t* inputs,
                const DropoutState& dropout) {
  check_cpu_attention_options(opts);
  check_attention_shape(shape);
  ATTN_CHECK(dropout.p >= 0.0f && dropout.p < 1.0f, "attention dropout p = {} must be in [0, 1)", dropout.p);
  ATTN_CHECK(!opts.document_mask || inputs != nullptr, "attention.document_mask needs the input tokens");
}

// The pre-mask score transform of the forward: s -> s - slope (i - j), then soft-capping.
template <typename S>
inline S transform_score(S s, int i, int j, S slope, S cap) {
  s -= slope * static_cast<S>(i - j);
  if (cap > S(0)) s = cap * std::tanh(s / cap);
  return s;
}

// Fills doc[0..T) for row b: doc(t) = number of eot among inputs[b, 0..t-1].
inline const int* document_ids(int* doc, const int32_t* inputs, int b, int T, const AttentionOptions& opts) {
  if (!opts.document_mask) return nullptr;
  const int32_t* row = inputs + static_cast<size_t>(b) * T;
  int d = 0;
  for (int t = 0; t < T; ++t) {
    doc[t] = d;
    d += row[t] == opts.eot_token;
  }
  return doc;
}

// dst = dropout(src) as a (T, T) block of head (b, h): keep ? src / (1 - p) : 0.
template <typename S>
void dropout_probs(S* dst, const S* src, int T, size_t head_index, const DropoutState& dr) {
  const S scale = S(1) / (S(1) - static_cast<S>(dr.p));
  const size_t base = head_index * T * T, n = static_cast<size_t>(T) * T;
  for (size_t e = 0; e < n; ++e) dst[e] = dropout_keep(dr.key, base + e, dr.p) ? src[e] * scale : S(0);
}

}  // namespace

template <typename S>
void naive_attention_forward(S* y, S* P, const S* qkv, const int32_t* inputs, const AttentionShape& shape,
                             const AttentionOptions& opts, const DropoutState& dropout, S* lse) {
  check_call(shape, opts, inputs, dropout);
  const int B = shape.B, T = shape.T, H = shape.n_head, Hkv = shape.n_kv_head, D = shape.head_dim;
  const int C = H * D, group = H / Hkv;
  const S scale = S(1) / std::sqrt(static_cast<S>(D)), cap = static_cast<S>(opts.softcap);
  const bool drop = dropout.p > 0.0f;
  using Strided = Eigen::OuterStride<>;

#pragma omp parallel for schedule(dynamic, 1)
  for (int task = 0; task < B * Hkv; ++task) {
    const int b = task / Hkv, g = task % Hkv;
    Scratch<S>& scr = thread_scratch<S>(T);
    const Visibility vis{T, opts.causal, opts.sliding_window, document_ids(scr.doc.data(), inputs, b, T, opts)};
    const PackedHeads<const S> in(qkv, shape, b);
    const auto K = in.k(g), V = in.v(g);
    for (int h = g * group; h < (g + 1) * group; ++h) {
      const size_t head = static_cast<size_t>(b) * H + h;
      const S slope = opts.alibi ? static_cast<S>(alibi_slope(h, H)) : S(0);
      const auto Q = in.q(h);
      MatMap<S> Ph(P + head * T * T, T, T);
      Ph.noalias() = (scale * Q) * K.transpose();
      for (int i = 0; i < T; ++i) {
        S* r = Ph.data() + static_cast<size_t>(i) * T;
        const int lo = vis.lo(i), hi = vis.hi(i);
        S mx = -std::numeric_limits<S>::infinity();
        for (int j = lo; j <= hi; ++j) {
          if (!vis.same_doc(i, j)) continue;
          r[j] = transform_score(r[j], i, j, slope, cap);
          mx = std::max(mx, r[j]);
        }
        S sum = 0;
        for (int j = 0; j < T; ++j) {
          if (j < lo || j > hi || !vis.same_doc(i, j)) {
            r[j] = S(0);
          } else {
            r[j] = std::exp(r[j] - mx);
            sum += r[j];
          }
        }
        const S inv = S(1) / sum;  // the diagonal is always visible: sum >= 1
        if (lse) lse[head * T + i] = mx + std::log(sum);
        for (int j = lo; j <= hi; ++j) r[j] *= inv;
      }
      StridedMatMap<S> Y(y + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * D, T, D, Strided(C));
      if (drop) {
        dropout_probs(scr.a.data(), Ph.data(), T, head, dropout);
        Y.noalias() = MatMap<S>(scr.a.data(), T, T) * V;
      } else {
        Y.noalias() = Ph * V;
      }
    }
  }
}

template <typename S>
void naive_attention_backward(S* dqkv, const S* dy, const S* qkv, const S* P, const int32_t* inputs,
                              const AttentionShape& shape, const AttentionOptions& opts,
                              const DropoutState& dropout) {
  check_call(shape, opts, inputs, dropout);
  const int B = shape.B, T = shape.T, H = shape.n_head, Hkv = shape.n_kv_head, D = shape.head_dim;
  const int C = H * D, group = H / Hkv;
  const S scale = S(1) / std::sqrt(static_cast<S>(D)), cap = static_cast<S>(opts.softcap);
  const bool drop = dropout.p > 0.0f;
  using Strided = Eigen::OuterStride<>;

#pragma omp parallel for schedule(dynamic, 1)
  for (int task = 0; task < B * Hkv; ++task) {
    const int b = task / Hkv, g = task % Hkv;
    Scratch<S>& scr = thread_scratch<S>(T);
    const Visibility vis{T, opts.causal, opts.sliding_window, document_ids(scr.doc.data(), inputs, b, T, opts)};
    const PackedHeads<const S> in(qkv, shape, b);
    const PackedHeads<S> grad(dqkv, shape, b);
    const auto K = in.k(g), V = in.v(g);
    auto dK = grad.k(g), dV = grad.v(g);
    dK.setZero();
    dV.setZero();
    MatMap<S> A(scr.a.data(), T, T), dS(scr.b.data(), T, T);
    for (int h = g * group; h < (g + 1) * group; ++h) {
      const size_t head = static_cast<size_t>(b) * H + h;
      const S slope = opts.alibi ? static_cast<S>(alibi_slope(h, H)) : S(0);
      const auto Q = in.q(h);
      auto dQ = grad.q(h);
      ConstStridedMatMap<S> dY(dy + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * D, T, D,
                               Strided(C));
      ConstMatMap<S> Ph(P + head * T * T, T, T);
      // dV += Pd^T dy;  dPd = dy V^T;  dP = dropout_backward(dPd)
      if (drop) {
        dropout_probs(A.data(), Ph.data(), T, head, dropout);
        dV.noalias() += A.transpose() * dY;
      } else {
        dV.noalias() += Ph.transpose() * dY;
      }
      dS.noalias() = dY * V.transpose();
      if (drop) dropout_probs(dS.data(), dS.data(), T, head, dropout);
      // softmax backward: dS = P * (dP - rowsum(P * dP))
      for (int i = 0; i < T; ++i) {
        const S* p = Ph.data() + static_cast<size_t>(i) * T;
        S* d = dS.data() + static_cast<size_t>(i) * T;
        S dot = 0;
        for (int j = 0; j < T; ++j) dot += p[j] * d[j];
        for (int j = 0; j < T; ++j) d[j] = p[j] * (d[j] - dot);
      }
      // soft-capping backward: d s_raw = d s_capped * (1 - tanh^2(s_raw / cap)), s_raw recomputed
      if (cap > S(0)) {
        A.noalias() = (scale * Q) * K.transpose();
        for (int i = 0; i < T; ++i) {
          for (int j = vis.lo(i); j <= vis.hi(i); ++j) {
            const S th = std::tanh((A(i, j) - slope * static_cast<S>(i - j)) / cap);
            dS(i, j) *= S(1) - th * th;
          }
        }
      }
      // dQ = dS K / sqrt(D);  dK += dS^T Q / sqrt(D)
      dQ.noalias() = (scale * dS) * K;
      dK.noalias() += (scale * dS.transpose()) * Q;
    }
  }
}

template void naive_attention_forward<float>(float*, float*, const float*, const int32_t*, const AttentionShape&,
                                             const AttentionOptions&, const DropoutState&, float*);
template void naive_attention_forward<double>(double*, double*, const double*, const int32_t*,
                                              const AttentionShape&, const AttentionOptions&, const DropoutState&,
                                              double*);
template void naive_attention_backward<float>(float*, const float*, const float*, const float*, const int32_t*,
                                              const AttentionShape&, const AttentionOptions&, const DropoutState&);
template void naive_attention_backward<double>(double*, const double*, const double*, const double*,
                                               const int32_t*, const AttentionShape&, const AttentionOptions&,
                                               const DropoutState&);

}  // namespace attn
