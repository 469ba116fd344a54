// Where each dropout of the GPT draws its mask from: every backend uses these keys, so
// the CPU and CUDA backends drop exactly the same elements for the same micro-step.
//
//   key = stream_key(seed, step, micro_step, site)
//   element e of the tensor is kept  <=>  dropout_keep(key, e, p)   (core/rng.h)
//
// e is the flat row-major index in the tensor being dropped: (b*T + t)*C + c for the
// embedding and residual-branch dropouts, ((b*H + h)*T + i)*T + j for the attention
// probabilities (site = layer index, as attention/attention.h documents).
#pragma once
#include <cstdint>

#include "core/rng.h"

namespace attn {

inline constexpr uint64_t kDropoutSiteBase = uint64_t{1} << 32;  // above any layer index

inline constexpr uint64_t dropout_site_attn_probs(int layer) { return static_cast<uint64_t>(layer); }
inline constexpr uint64_t dropout_site_embedding() { return kDropoutSiteBase; }
inline constexpr uint64_t dropout_site_attn_resid(int layer) {
  return kDropoutSiteBase + 1 + 2 * static_cast<uint64_t>(layer);
}
inline constexpr uint64_t dropout_site_mlp_resid(int layer) {
  return kDropoutSiteBase + 2 + 2 * static_cast<uint64_t>(layer);
}

inline uint64_t dropout_key(uint64_t seed, int64_t step, int micro_step, uint64_t site) {
  return stream_key(seed, static_cast<uint64_t>(step), static_cast<uint64_t>(micro_step), site);
}

}  // namespace attn
