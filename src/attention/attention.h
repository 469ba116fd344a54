// The attention interface: every implementation (CPU naive reference, CUDA naive,
// flash, variants) computes the same function of the same buffers.
//
//   qkv : (B, T, (H + 2*Hkv) * D)   output of the c_attn projection; per token the
//                                   H query heads, then Hkv key heads, then Hkv value heads
//   y   : (B, T, H * D)             attention output, heads concatenated
//
//   For query head h (kv head g = h / (H / Hkv)) and positions i, j:
//     s_ij = q_i . k_j / sqrt(D)                   (+ ALiBi bias  -slope_h * (i - j))
//     s_ij = cap * tanh(s_ij / cap)                (logit soft-capping, when cap > 0)
//     s_ij = -inf where the mask hides j from i   (causal: j > i; window w: i - j >= w;
//                                                  document: doc(i) != doc(j))
//     P = softmax_j(s),  P = dropout(P) / (1 - p)  (training only)
//     y_i = sum_j P_ij v_j
//
// Backward maps dy to dqkv (every element written, not accumulated).
// Each implementation keeps whatever it needs between forward and backward in its own
// saved state (naive: P, O(T^2); flash: the row logsumexp, O(T)).
#pragma once
#include <cstdint>
#include <string>

#include "core/dropout.h"
#include "kernels/attention_variant.h"

namespace attn {

struct AttentionShape {
  int B = 0, T = 0;
  int n_head = 0, n_kv_head = 0, head_dim = 0;
  int qkv_dim() const { return (n_head + 2 * n_kv_head) * head_dim; }
  int64_t scores_per_head() const { return static_cast<int64_t>(T) * T; }
};

// The `attention` config section: the implementation, and every variant's fields
// (VariantOptions: causal, sliding_window, document_mask + eot_token, alibi, softcap, ...;
// kernels/variants/*.h). Validated once, by attention/registry.h.
struct AttentionOptions : VariantOptions {
  std::string impl = "naive";   // an implementation of the registry (attention/registry.cpp)
  bool deterministic = false;   // flash backward without atomics
};

// Attention dropout's DropoutState (core/dropout.h) has key = stream_key(seed, step, micro,
// dropout_site::attention_probs(layer)); mask rule and element index in model/dropout_sites.h.

// ALiBi slope for head h of H (the geometric sequence of the ALiBi paper, H a power of two
// or not: the paper's rule for the nearest power of two, interleaved).
double alibi_slope(int h, int n_head);

}  // namespace attn
