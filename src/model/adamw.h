// AdamW (Loshchilov & Hutter, decoupled weight decay), the exact update every backend
// implements. For i in [0, n), with t >= 1 the step count:
//
//   g    = grad[i] * grad_multiplier                  (gradient clipping scale, 1 = none)
//   m[i] = beta1 * m[i] + (1 - beta1) * g
//   v[i] = beta2 * v[i] + (1 - beta2) * g * g
//   m_hat = m[i] / (1 - beta1^t),   v_hat = v[i] / (1 - beta2^t)
//   param[i] = param[i] - lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * param[i])
//
// (the decay uses the parameter before this step, i.e. p -= lr*wd*p and the Adam step
// together, as torch.optim.AdamW). Arithmetic is in S, except the bias corrections
// 1 - beta^t, computed in double and then rounded to S. Callers pass weight_decay = 0 for
// tensors that are not decayed (ParamTensor::decay(): matrices only).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace attn {

template <typename S>
void adamw_update(S* param, const S* grad, S* m, S* v, size_t n, float lr, float beta1, float beta2, float eps,
                  float weight_decay, float grad_multiplier, int64_t t) {
  const S b1 = beta1, b2 = beta2, lr_s = lr, eps_s = eps, wd = weight_decay, gm = grad_multiplier;
  const S bc1 = static_cast<S>(1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(t)));
  const S bc2 = static_cast<S>(1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(t)));
  const std::ptrdiff_t nn = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (std::ptrdiff_t i = 0; i < nn; ++i) {
    const S g = grad[i] * gm;
    const S mi = b1 * m[i] + (S(1) - b1) * g;
    const S vi = b2 * v[i] + (S(1) - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const S m_hat = mi / bc1, v_hat = vi / bc2;
    param[i] -= lr_s * (m_hat / (std::sqrt(v_hat) + eps_s) + wd * param[i]);
  }
}

}  // namespace attn
