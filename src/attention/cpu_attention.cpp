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

void check_attention_shape(const AttentionShape& s) {
  ATTN_CHECK(s.B > 0 && s.T > 0 && s.n_head > 0 && s.n_kv_head > 0 && s.head_dim > 0,
             "attention: bad shape B={} T={} n_head={} n_kv_head={} head_dim={}", s.B, s.T, s.n_head,
             s.n_kv_head, s.head_dim);
  ATTN_CHECK(s.n_head % s.n_kv_head == 0, "attention: n_kv_head = {} must divide n_head = {}", s.n_kv_head,
             s.n_head);
}

// counts[k][b, t] = number of counted_tokens(opts)[k] among inputs[b, 0..t-1].
VariantArgs host_variant_args(const AttentionOptions& opts, const int32_t* inputs, int B, int T,
                              std::vector<std::vector<int32_t>>& store) {
  VariantArgs a = variant_args(opts);
  std::vector<const int32_t*> ptrs;
  for (const int token : counted_tokens(opts)) {
    std::vector<int32_t>& c = store.emplace_back(static_cast<size_t>(B) * T);
    for (int b = 0; b < B; ++b) {
      const int32_t* row = inputs + static_cast<size_t>(b) * T;
      for (int t = 0, n = 0; t < T; ++t) {
        c[static_cast<size_t>(b) * T + t] = n;  // tokens among row[0..t-1]
        n += row[t] == token;
      }
    }
    ptrs.push_back(c.data());
  }
  set_token_counts(a, opts, ptrs.data());
  return a;
}

namespace {

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
};

template <typename S>
Scratch<S>& thread_scratch(int T) {
  thread_local Scratch<S> s;  // grows once, reused by every later call on this thread
  const size_t tt = static_cast<size_t>(T) * T;
  if (s.a.size() < tt) s.a.resize(tt), s.b.resize(tt);
  return s;
}

void check_call(const AttentionShape& shape, const AttentionOptions& opts, const int32_t* inputs,
                const DropoutState& dropout) {
  check_attention_shape(shape);  // the options: attention/registry.h, by the callers' backends
  ATTN_CHECK(!opts.document_mask || opts.eot_token >= 0,
             "attention.document_mask needs the end-of-text token id (eot_token = {})", opts.eot_token);
  ATTN_CHECK(dropout.p >= 0.0f && dropout.p < 1.0f, "attention dropout p = {} must be in [0, 1)", dropout.p);
  ATTN_CHECK(!opts.document_mask || inputs != nullptr, "attention.document_mask needs the input tokens");
}

// The score modifications of the variants (kernels/variants/alibi.h, softcap.h), in S:
// s -> s + slope (j - i), then cap tanh(s / cap); *dfac = d s_out / d s_in.
template <typename S>
inline S modify_score(S s, int i, int j, S slope, S cap, S* dfac) {
  *dfac = S(1);
  s = Alibi::apply(s, slope, i, j);
  return cap > S(0) ? Softcap::apply(s, cap, S(1) / cap, dfac) : s;
}

// dst = dropout(src) as a (T, T) block of head (b, h): keep ? src / (1 - p) : 0.
template <typename S>
void dropout_probs(S* dst, const S* src, int T, size_t head_index, const DropoutState& dr) {
  const S scale = S(1) / (S(1) - static_cast<S>(dr.p));
  const size_t base = head_index * T * T, n = static_cast<size_t>(T) * T;
  for (size_t e = 0; e < n; ++e) dst[e] = dropout_keep(dr.key, base + e, dr.p) ? src[e] * scale : S(0);
}

// What the forward and the backward both derive from a call beyond its shape: the score scale and
// cap, whether dropout is on, and the variants' arguments (args points into counts: not copyable).
template <typename S>
struct NaiveCall {
  S scale, cap;
  bool drop;
  std::vector<std::vector<int32_t>> counts;
  VariantArgs args;
  NaiveCall(const AttentionShape& shape, const AttentionOptions& opts, const int32_t* inputs,
            const DropoutState& dropout)
      : scale(S(1) / std::sqrt(static_cast<S>(shape.head_dim))), cap(static_cast<S>(opts.softcap)),
        drop(dropout.p > 0.0f), args(host_variant_args(opts, inputs, shape.B, shape.T, counts)) {}
  NaiveCall(const NaiveCall&) = delete;
  NaiveCall& operator=(const NaiveCall&) = delete;
};

// kv_head(b, g, mask, in, scratch) for every (sequence b, kv head g), in parallel: mask gives row
// i's visible keys [key_lo(i), key_hi(i)], in is sequence b's packed q/k/v, scratch this thread's.
// The query heads of kv head g are g * group .. (g + 1) * group - 1, group = n_head / n_kv_head.
template <typename S, typename KvHead>
void for_each_kv_head(const AttentionShape& shape, const VariantArgs& args, const S* qkv, const KvHead& kv_head) {
  const int T = shape.T, Hkv = shape.n_kv_head;
#pragma omp parallel for schedule(dynamic, 1)
  for (int task = 0; task < shape.B * Hkv; ++task) {
    const int b = task / Hkv, g = task % Hkv;
    kv_head(b, g, VariantMask(args, b, T), PackedHeads<const S>(qkv, shape, b), thread_scratch<S>(T));
  }
}

}  // namespace

template <typename S>
void naive_attention_forward(S* y, S* P, const S* qkv, const int32_t* inputs, const AttentionShape& shape,
                             const AttentionOptions& opts, const DropoutState& dropout, S* lse) {
  check_call(shape, opts, inputs, dropout);
  const NaiveCall<S> call(shape, opts, inputs, dropout);
  const int T = shape.T, H = shape.n_head, D = shape.head_dim, C = H * D, group = H / shape.n_kv_head;
  using In = PackedHeads<const S>;
  const auto kv_head = [&](int b, int g, const VariantMask& mask, const In& in, Scratch<S>& scr) {
    const auto K = in.k(g), V = in.v(g);
    for (int h = g * group; h < (g + 1) * group; ++h) {
      const size_t head = static_cast<size_t>(b) * H + h;
      const S slope = opts.alibi ? Alibi::slope<S>(h, H) : S(0);
      const auto Q = in.q(h);
      MatMap<S> Ph(P + head * T * T, T, T);
      Ph.noalias() = (call.scale * Q) * K.transpose();
      for (int i = 0; i < T; ++i) {
        S* r = Ph.data() + static_cast<size_t>(i) * T;
        const int lo = mask.key_lo(i), hi = mask.key_hi(i);
        S mx = -std::numeric_limits<S>::infinity(), unused;
        for (int j = lo; j <= hi; ++j) {
          r[j] = modify_score(r[j], i, j, slope, call.cap, &unused);
          mx = std::max(mx, r[j]);
        }
        S sum = 0;
        for (int j = 0; j < T; ++j) {
          if (j < lo || j > hi) {
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
      StridedMatMap<S> Y(y + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * D, T, D,
                         Eigen::OuterStride<>(C));
      if (call.drop) {
        dropout_probs(scr.a.data(), Ph.data(), T, head, dropout);
        Y.noalias() = MatMap<S>(scr.a.data(), T, T) * V;
      } else {
        Y.noalias() = Ph * V;
      }
    }
  };
  for_each_kv_head(shape, call.args, qkv, kv_head);
}

template <typename S>
void naive_attention_backward(S* dqkv, const S* dy, const S* qkv, const S* P, const int32_t* inputs,
                              const AttentionShape& shape, const AttentionOptions& opts,
                              const DropoutState& dropout) {
  check_call(shape, opts, inputs, dropout);
  const NaiveCall<S> call(shape, opts, inputs, dropout);
  const int T = shape.T, H = shape.n_head, D = shape.head_dim, C = H * D, group = H / shape.n_kv_head;
  using In = PackedHeads<const S>;
  const auto kv_head = [&](int b, int g, const VariantMask& mask, const In& in, Scratch<S>& scr) {
    const PackedHeads<S> grad(dqkv, shape, b);
    const auto K = in.k(g), V = in.v(g);
    auto dK = grad.k(g), dV = grad.v(g);
    dK.setZero();
    dV.setZero();
    MatMap<S> A(scr.a.data(), T, T), dS(scr.b.data(), T, T);
    for (int h = g * group; h < (g + 1) * group; ++h) {
      const size_t head = static_cast<size_t>(b) * H + h;
      const S slope = opts.alibi ? Alibi::slope<S>(h, H) : S(0);
      const auto Q = in.q(h);
      auto dQ = grad.q(h);
      ConstStridedMatMap<S> dY(dy + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * D, T, D,
                               Eigen::OuterStride<>(C));
      ConstMatMap<S> Ph(P + head * T * T, T, T);
      // dV += Pd^T dy;  dPd = dy V^T;  dP = dropout_backward(dPd)
      if (call.drop) {
        dropout_probs(A.data(), Ph.data(), T, head, dropout);
        dV.noalias() += A.transpose() * dY;
      } else {
        dV.noalias() += Ph.transpose() * dY;
      }
      dS.noalias() = dY * V.transpose();
      if (call.drop) dropout_probs(dS.data(), dS.data(), T, head, dropout);
      // softmax backward: dS = P * (dP - rowsum(P * dP))
      for (int i = 0; i < T; ++i) {
        const S* p = Ph.data() + static_cast<size_t>(i) * T;
        S* d = dS.data() + static_cast<size_t>(i) * T;
        S dot = 0;
        for (int j = 0; j < T; ++j) dot += p[j] * d[j];
        for (int j = 0; j < T; ++j) d[j] = p[j] * (d[j] - dot);
      }
      // soft-capping backward: d s_raw = d s_capped * (1 - tanh^2(s_raw / cap)), s_raw recomputed
      if (call.cap > S(0)) {
        A.noalias() = (call.scale * Q) * K.transpose();
        for (int i = 0; i < T; ++i) {
          for (int j = mask.key_lo(i); j <= mask.key_hi(i); ++j) {
            S dfac;
            modify_score(A(i, j), i, j, slope, call.cap, &dfac);
            dS(i, j) *= dfac;
          }
        }
      }
      // dQ = dS K / sqrt(D);  dK += dS^T Q / sqrt(D)
      dQ.noalias() = (call.scale * dS) * K;
      dK.noalias() += (call.scale * dS.transpose()) * Q;
    }
  };
  for_each_kv_head(shape, call.args, qkv, kv_head);
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
