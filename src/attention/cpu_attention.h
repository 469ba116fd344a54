// Naive (materialized) attention on the CPU: the full math of attention/attention.h,
// the reference every other implementation is tested against.
//
// Forward, for every (b, h) with kv head g = h / (H / Hkv), i, j in [0, T):
//   s_ij = q_i . k_j / sqrt(D)  - slope_h (i - j)          (ALiBi term when enabled)
//   s_ij = cap tanh(s_ij / cap)                            (when softcap > 0)
//   s_ij = -inf unless visible(i, j)                       (causal, window, document)
//   P_ij = softmax_j(s_ij)       saved, (B, H, T, T), exactly 0 where masked
//   Pd_ij = keep_ij ? P_ij / (1 - p) : 0                   (dropout, key = dropout.key,
//                                                           index ((b*H + h)*T + i)*T + j)
//   y_i = sum_j Pd_ij v_j
// Backward (dqkv WRITTEN, every element; dK, dV summed over the H/Hkv query heads of a group):
//   dPd = dy V^T,  dV += Pd^T dy,  dP = keep ? dPd / (1 - p) : 0
//   dS = P * (dP - rowsum(P * dP)),  dS *= 1 - tanh^2(s_raw / cap)   (softcap)
//   dQ = dS K / sqrt(D),  dK += dS^T Q / sqrt(D)
// Document ids: doc(t) = number of eot_token among inputs[b, 0..t-1].
// Parallel over (b, kv group) with OpenMP; scratch is per thread and reused between calls.
#pragma once
#include <cstdint>
#include <vector>

#include "attention/attention.h"

namespace attn {

// Throws attn::Error for an inconsistent shape (H not a multiple of Hkv, ...).
void check_attention_shape(const AttentionShape& shape);

// The variants' arguments for a call on (B, T) token rows `inputs`, on the host: each variant's
// options and the token counts some read (kernels/attention_variant.h), kept in `store`.
// The mask of row b is then VariantMask(args, b, T), the kernels' code.
VariantArgs host_variant_args(const AttentionOptions& opts, const int32_t* inputs, int B, int T,
                              std::vector<std::vector<int32_t>>& store);

// lse (optional): (B, H, T) natural-log logsumexp_j of the visible scores s_ij, the
// quantity a flash kernel saves for its backward pass.
// qkv: (B, T, (H + 2 Hkv) D); y: (B, T, H D); P: (B, H, T, T) written;
// inputs: (B, T) token ids, read only when opts.document_mask.
template <typename S>
void naive_attention_forward(S* y, S* P, const S* qkv, const int32_t* inputs, const AttentionShape& shape,
                             const AttentionOptions& opts, const DropoutState& dropout, S* lse = nullptr);

// dqkv: (B, T, (H + 2 Hkv) D) written; P from the forward with the same arguments.
template <typename S>
void naive_attention_backward(S* dqkv, const S* dy, const S* qkv, const S* P, const int32_t* inputs,
                              const AttentionShape& shape, const AttentionOptions& opts,
                              const DropoutState& dropout);

}  // namespace attn
