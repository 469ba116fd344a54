// Dropout: the one rule every backend follows, so that the CPU and the GPU drop the
// same elements for the same (seed, step, micro_step).
//
//   key   = stream_key(seed, step, micro_step, site)           (core/rng.h)
//   keep  = random_uniform(key, index) >= p                     (dropout_keep)
//   y     = keep ? x * (1 / (1 - p)) : 0                        (scale computed in fp32)
//
// `index` is the flat row-major index of the element in the tensor being dropped,
// for the current batch shape (B, T):
//   embedding and residual branches, (B, T, C):  (b * T + t) * C + c
//   attention probabilities, (B, H, T, T):       ((b * H + h) * T + i) * T + j
//
// Sites (one per dropout in the model; nanoGPT's placement):
//   0          x = drop(wte[tok] + wpe[pos])
//   1 + 3 l    layer l: attention probabilities  P = drop(softmax(s))
//   2 + 3 l    layer l: attention branch          x += drop(c_proj(attn(ln_1(x))))
//   3 + 3 l    layer l: MLP branch                x += drop(mlp.c_proj(gelu(c_fc(ln_2(x)))))
// Evaluation (StepContext::train == false) applies no dropout.
#pragma once
#include <cstdint>

#include "core/rng.h"

namespace attn::dropout_site {

constexpr uint64_t kEmbedding = 0;
constexpr uint64_t attention_probs(int layer) { return 1 + 3 * static_cast<uint64_t>(layer); }
constexpr uint64_t attention_branch(int layer) { return 2 + 3 * static_cast<uint64_t>(layer); }
constexpr uint64_t mlp_branch(int layer) { return 3 + 3 * static_cast<uint64_t>(layer); }

inline uint64_t key(uint64_t seed, int64_t step, int micro_step, uint64_t site) {
  return stream_key(seed, static_cast<uint64_t>(step), static_cast<uint64_t>(micro_step), site);
}

}  // namespace attn::dropout_site
