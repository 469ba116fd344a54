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

namespace attn {

struct AttentionShape {
  int B = 0, T = 0;
  int n_head = 0, n_kv_head = 0, head_dim = 0;
  int qkv_dim() const { return (n_head + 2 * n_kv_head) * head_dim; }
  int64_t scores_per_head() const { return static_cast<int64_t>(T) * T; }
};

// The `attention` config section.
struct AttentionOptions {
  std::string impl = "naive";   // naive | flash (CUDA)
  bool causal = true;
  int sliding_window = 0;       // 0 = off; else key j visible from i only if i - j < window
  bool document_mask = false;   // no attention across end-of-text boundaries
  bool alibi = false;           // ALiBi linear biases (slopes 2^(-8(h+1)/H))
  float softcap = 0.0f;         // 0 = off; else cap * tanh(s / cap)
  bool deterministic = false;   // flash backward without atomics
  int eot_token = -1;           // document_mask: the end-of-text id that separates documents
                                // (doc id of token t = number of eot among inputs[0..t-1] of its row)
};

// Attention dropout's DropoutState (core/dropout.h) has key = stream_key(seed, step, micro,
// dropout_site::attention_probs(layer)); mask rule and element index in model/dropout_sites.h.

// ALiBi slope for head h of H (the geometric sequence of the ALiBi paper, H a power of two
// or not: the paper's rule for the nearest power of two, interleaved).
double alibi_slope(int h, int n_head);

}  // namespace attn
