// Learning-rate schedule (nanoGPT's get_lr): linear warmup, then cosine decay to min_lr.
//   step < warmup:            lr * (step + 1) / (warmup + 1)
//   warmup <= step <= decay:  min_lr + 0.5 (1 + cos(pi * (step - warmup) / (decay - warmup))) (lr - min_lr)
//   step > decay:             min_lr
#pragma once
#include <cmath>
#include <string>

namespace attn {

struct LrSchedule {
  double lr = 6e-4, min_lr = 6e-5;
  int warmup = 0, decay_iters = 0;
  bool cosine = true;

  double operator()(int64_t step) const {
    if (step < warmup) return lr * static_cast<double>(step + 1) / (warmup + 1);
    if (!cosine) return lr;
    if (step > decay_iters) return min_lr;
    if (decay_iters <= warmup) return min_lr;
    const double ratio = static_cast<double>(step - warmup) / (decay_iters - warmup);
    return min_lr + 0.5 * (1.0 + std::cos(M_PI * ratio)) * (lr - min_lr);
  }
};

}  // namespace attn
