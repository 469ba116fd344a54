// The GPT-2 layers on the CPU, forward and backward side by side (llm.c style).
//
// Every function works on plain row-major buffers (pointers + sizes), templated on the
// scalar: float for training, double for the gradient checks and as the float64
// reference the CUDA kernels are tested against. N is the number of rows (B*T).
//
// Gradient conventions (stated once here, repeated per function):
//   * parameter gradients (dweight, dbias, dwte, dwpe) are ACCUMULATED (+=), so that
//     micro-batches add up in one gradient buffer;
//   * input gradients are WRITTEN (=), except layernorm_backward and residual_backward,
//     whose input is the residual stream: they ACCUMULATE into it (the skip connection
//     already put the pass-through gradient there).
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/eigen_maps.h"
#include "core/rng.h"

namespace attn {

// Runs f(begin, end) over [0, n) split into one contiguous chunk per OpenMP thread
// (serially when n is small: a parallel region costs a few microseconds).
template <typename F>
void parallel_chunks(size_t n, F&& f, size_t min_chunk = 16384) {
  if (n < 2 * min_chunk) {
    f(size_t{0}, n);
    return;
  }
#pragma omp parallel
  {
#ifdef _OPENMP
    const size_t nt = static_cast<size_t>(omp_get_num_threads()), id = static_cast<size_t>(omp_get_thread_num());
#else
    const size_t nt = 1, id = 0;
#endif
    const size_t chunk = (n + nt - 1) / nt, begin = std::min(n, id * chunk), end = std::min(n, begin + chunk);
    if (begin < end) f(begin, end);
  }
}

// sum_{i < n} term(i) in double, in an order that depends on n alone (64 fixed chunks,
// added in chunk order), so the result is bitwise the same for any thread count or
// scheduling. OpenMP's reduction clause combines partial sums in completion order, which
// made resumed runs differ from uninterrupted ones in the last bits.
template <typename F>
double ordered_parallel_sum(std::ptrdiff_t n, F&& term, size_t work_per_item = 1) {
  constexpr int kChunks = 64;
  double part[kChunks] = {};
#pragma omp parallel for schedule(static) if (static_cast<size_t>(n) * work_per_item > 32768)
  for (int c = 0; c < kChunks; ++c) {
    const std::ptrdiff_t begin = n * c / kChunks, end = n * (c + 1) / kChunks;
    double s = 0;
    for (std::ptrdiff_t i = begin; i < end; ++i) s += term(i);
    part[c] = s;
  }
  double total = 0;
  for (double p : part) total += p;
  return total;
}

// ---------------------------------------------------------------------------------
// Embedding: out[b,t,:] = wte[inp[b,t],:] + wpe[t,:]          (token + learned position)
// backward:  dwte[inp[b,t],:] += dout[b,t,:],  dwpe[t,:] += dout[b,t,:]
// Token ids must already be validated (0 <= id < rows of wte).
template <typename S>
void encoder_forward(S* out, const int32_t* inp, const S* wte, const S* wpe, int B, int T, int C) {
#pragma omp parallel for schedule(static) if (B * T * C > 65536)
  for (int bt = 0; bt < B * T; ++bt) {
    const int t = bt % T;
    const S* te = wte + static_cast<size_t>(inp[bt]) * C;
    const S* pe = wpe + static_cast<size_t>(t) * C;
    S* o = out + static_cast<size_t>(bt) * C;
    for (int c = 0; c < C; ++c) o[c] = te[c] + pe[c];
  }
}

template <typename S>
void encoder_backward(S* dwte, S* dwpe, const S* dout, const int32_t* inp, int B, int T, int C) {
  for (int bt = 0; bt < B * T; ++bt) {  // serial: repeated tokens add into the same row
    const int t = bt % T;
    S* dte = dwte + static_cast<size_t>(inp[bt]) * C;
    S* dpe = dwpe + static_cast<size_t>(t) * C;
    const S* d = dout + static_cast<size_t>(bt) * C;
    for (int c = 0; c < C; ++c) {
      dte[c] += d[c];
      dpe[c] += d[c];
    }
  }
}

// ---------------------------------------------------------------------------------
// LayerNorm over the last dimension (eps = 1e-5, biased variance, as torch):
//   mean = sum_c x_c / C,  rstd = 1 / sqrt(sum_c (x_c - mean)^2 / C + eps)
//   n_c = (x_c - mean) * rstd,  out_c = n_c * w_c + b_c          (saves mean, rstd per row)
// backward, with g_c = dout_c * w_c:
//   dx_c += rstd * (g_c - mean_c'(g) - n_c * mean_c'(g * n))      (ACCUMULATED into dinp)
//   dw_c += sum_rows dout_c * n_c,  db_c += sum_rows dout_c
inline constexpr double kLayerNormEps = 1e-5;

template <typename S>
void layernorm_forward(S* out, S* mean, S* rstd, const S* inp, const S* weight, const S* bias, int N, int C) {
#pragma omp parallel for schedule(static) if (static_cast<size_t>(N) * C > 32768)
  for (int i = 0; i < N; ++i) {
    const S* x = inp + static_cast<size_t>(i) * C;
    S m = 0;
    for (int c = 0; c < C; ++c) m += x[c];
    m /= C;
    S v = 0;
    for (int c = 0; c < C; ++c) v += (x[c] - m) * (x[c] - m);
    v /= C;
    const S s = S(1) / std::sqrt(v + static_cast<S>(kLayerNormEps));
    S* o = out + static_cast<size_t>(i) * C;
    for (int c = 0; c < C; ++c) o[c] = (x[c] - m) * s * weight[c] + bias[c];
    mean[i] = m;
    rstd[i] = s;
  }
}

template <typename S>
void layernorm_backward(S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight,
                        const S* mean, const S* rstd, int N, int C) {
#pragma omp parallel for schedule(static) if (static_cast<size_t>(N) * C > 32768)
  for (int i = 0; i < N; ++i) {
    const S* x = inp + static_cast<size_t>(i) * C;
    const S* d = dout + static_cast<size_t>(i) * C;
    const S m = mean[i], s = rstd[i];
    S g_mean = 0, gn_mean = 0;
    for (int c = 0; c < C; ++c) {
      const S g = d[c] * weight[c];
      g_mean += g;
      gn_mean += g * (x[c] - m) * s;
    }
    g_mean /= C;
    gn_mean /= C;
    S* dx = dinp + static_cast<size_t>(i) * C;
    for (int c = 0; c < C; ++c) {
      const S n = (x[c] - m) * s;
      dx[c] += s * (d[c] * weight[c] - g_mean - n * gn_mean);
    }
  }
  for (int i = 0; i < N; ++i) {  // serial over rows: every row adds into the same dw, db
    const S* x = inp + static_cast<size_t>(i) * C;
    const S* d = dout + static_cast<size_t>(i) * C;
    const S m = mean[i], s = rstd[i];
    for (int c = 0; c < C; ++c) {
      dweight[c] += d[c] * (x[c] - m) * s;
      dbias[c] += d[c];
    }
  }
}

// ---------------------------------------------------------------------------------
// Linear (torch.nn.Linear): out (N, OUT) = inp (N, IN) W^T + b,  W (OUT, IN) row-major.
// backward: dinp = dout W (WRITTEN),  dW += dout^T inp,  db += sum_rows dout.
// bias / dbias may be null (no bias). Eigen GEMMs on mapped buffers, no copies.
template <typename S>
void matmul_forward(S* out, const S* inp, const S* weight, const S* bias, int N, int IN, int OUT) {
  MatMap<S> y(out, N, OUT);
  ConstMatMap<S> x(inp, N, IN), w(weight, OUT, IN);
  y.noalias() = x * w.transpose();
  if (bias) y.rowwise() += Eigen::Map<const Eigen::Matrix<S, 1, Eigen::Dynamic>>(bias, OUT);
}

template <typename S>
void matmul_backward(S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight, int N,
                     int IN, int OUT) {
  ConstMatMap<S> dy(dout, N, OUT), x(inp, N, IN), w(weight, OUT, IN);
  if (dinp) MatMap<S>(dinp, N, IN).noalias() = dy * w;
  MatMap<S>(dweight, OUT, IN).noalias() += dy.transpose() * x;
  if (dbias) Eigen::Map<Eigen::Matrix<S, 1, Eigen::Dynamic>>(dbias, OUT) += dy.colwise().sum();
}

// ---------------------------------------------------------------------------------
// Tied LM head: logits[:, v] = x wte[v,:]^T for v < V; columns V..Vp-1 of the (N, Vp)
// logits buffer are not written (the loss ignores them; wte rows >= V get no gradient).
// backward: dx = dlogits[:, :V] wte[:V] (WRITTEN),  dwte[:V] += dlogits[:, :V]^T x.
template <typename S>
void lm_head_forward(S* logits, const S* x, const S* wte, int N, int C, int V, int Vp) {
  StridedMatMap<S> l(logits, N, V, Eigen::OuterStride<>(Vp));
  l.noalias() = ConstMatMap<S>(x, N, C) * ConstMatMap<S>(wte, V, C).transpose();
}

template <typename S>
void lm_head_backward(S* dx, S* dwte, const S* dlogits, const S* x, const S* wte, int N, int C, int V,
                      int Vp) {
  ConstStridedMatMap<S> dl(dlogits, N, V, Eigen::OuterStride<>(Vp));
  MatMap<S>(dx, N, C).noalias() = dl * ConstMatMap<S>(wte, V, C);
  MatMap<S>(dwte, V, C).noalias() += dl.transpose() * ConstMatMap<S>(x, N, C);
}

// ---------------------------------------------------------------------------------
// GELU, tanh approximation (torch gelu(approximate='tanh')):
//   u = sqrt(2/pi) (x + 0.044715 x^3),  out = 0.5 x (1 + tanh u)
// backward: dinp = dout * (0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3*0.044715 x^2))
// (dinp WRITTEN; dinp may alias dout.)
template <typename S>
void gelu_forward(S* out, const S* inp, size_t n) {
  const S k = static_cast<S>(0.7978845608028654), a = static_cast<S>(0.044715);
  parallel_chunks(n, [&](size_t b, size_t e) {
    ConstArrMap<S> x(inp + b, e - b);
    ArrMap<S>(out + b, e - b) = S(0.5) * x * (S(1) + (k * (x + a * x.cube())).tanh());
  });
}

template <typename S>
void gelu_backward(S* dinp, const S* inp, const S* dout, size_t n) {
  const S k = static_cast<S>(0.7978845608028654), a = static_cast<S>(0.044715);
  parallel_chunks(n, [&](size_t b, size_t e) {
    ConstArrMap<S> x(inp + b, e - b), d(dout + b, e - b);
    const auto th = (k * (x + a * x.cube())).tanh().eval();
    ArrMap<S>(dinp + b, e - b) =
        d * (S(0.5) * (S(1) + th) + S(0.5) * x * (S(1) - th.square()) * k * (S(1) + S(3) * a * x.square()));
  });
}

// ---------------------------------------------------------------------------------
// Residual: out = a + b.  backward: da += dout, db += dout (ACCUMULATED).
template <typename S>
void residual_forward(S* out, const S* a, const S* b, size_t n) {
  parallel_chunks(n, [&](size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; ++i) out[i] = a[i] + b[i];
  });
}

template <typename S>
void residual_backward(S* da, S* db, const S* dout, size_t n) {
  parallel_chunks(n, [&](size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; ++i) {
      da[i] += dout[i];
      db[i] += dout[i];
    }
  });
}

// ---------------------------------------------------------------------------------
// Dropout from the counter RNG (inverted dropout, mask a pure function of key and index):
//   keep_i = random_uniform(key, i) >= p,   out_i = keep_i ? x_i / (1 - p) : 0
// backward: dinp_i = keep_i ? dout_i / (1 - p) : 0     (WRITTEN; in place allowed)
// p == 0 is the identity (a copy when out != inp). Index i is the flat element index.
template <typename S>
void dropout_forward(S* out, const S* inp, size_t n, float p, uint64_t key) {
  if (p <= 0.0f) {
    if (out != inp) std::copy(inp, inp + n, out);
    return;
  }
  const S scale = S(1) / (S(1) - static_cast<S>(p));
  parallel_chunks(n, [&](size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; ++i) out[i] = dropout_keep(key, i, p) ? inp[i] * scale : S(0);
  });
}

template <typename S>
void dropout_backward(S* dinp, const S* dout, size_t n, float p, uint64_t key) {
  dropout_forward(dinp, dout, n, p, key);  // the same linear map: mask and scale
}

// ---------------------------------------------------------------------------------
// Fused softmax cross-entropy over the first V columns of (N, Vp) padded logits:
//   for rows with target y != -1 (count of them = M):
//     loss_row = logsumexp_{v<V}(l_v) - l_y,      loss = sum loss_row / M   (0 when M == 0)
//   dlogits (when not null; WRITTEN, may alias logits):
//     counted rows: dl_v = grad_scale / M * (softmax_{v<V}(l)_v - [v == y]) for v < V,
//     ignored rows and padded columns v >= V: 0.
// Returns the mean loss. Targets must be -1 or in [0, V).
template <typename S>
S softmax_crossentropy(S* dlogits, const S* logits, const int32_t* targets, int N, int V, int Vp,
                       S grad_scale = S(1)) {
  int64_t count = 0;
  for (int i = 0; i < N; ++i) count += targets[i] != -1;
  const S dscale = count > 0 ? grad_scale / static_cast<S>(count) : S(0);
  const double loss_sum = ordered_parallel_sum(N, [&](std::ptrdiff_t i) -> double {
    const S* l = logits + static_cast<size_t>(i) * Vp;
    const int y = targets[i];
    S* dl = dlogits ? dlogits + static_cast<size_t>(i) * Vp : nullptr;
    if (y == -1) {
      if (dl) std::fill(dl, dl + Vp, S(0));
      return 0.0;
    }
    S mx = -std::numeric_limits<S>::infinity();
    for (int v = 0; v < V; ++v) mx = std::max(mx, l[v]);
    S sum = 0;
    for (int v = 0; v < V; ++v) sum += std::exp(l[v] - mx);
    const S lse = mx + std::log(sum);
    if (dl) {
      for (int v = 0; v < V; ++v) dl[v] = dscale * std::exp(l[v] - lse);  // in place: same index
      dl[y] -= dscale;
      std::fill(dl + V, dl + Vp, S(0));
    }
    return static_cast<double>(lse - l[y]);
  }, static_cast<size_t>(V));
  return count > 0 ? static_cast<S>(loss_sum / static_cast<double>(count)) : S(0);
}

}  // namespace attn
