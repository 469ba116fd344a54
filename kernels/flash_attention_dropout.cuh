// Attention dropout inside the flash kernels: the rule of model/dropout_sites.h, drawn from the
// counter-based RNG of core/rng.h, so every kernel drops exactly the elements the CPU reference
// and naive attention drop (and a resumed run draws the same mask):
//
//   keep(b, h, i, j) = random_uniform(key, ((b H + h) T + i) T + j) >= p
//   Pd_ij = keep ? P_ij / (1 - p) : 0                      (forward: O = Pd V; l sums P, not Pd)
//   backward: dV = Pd^T dO,  dP_ij = keep ? dPd_ij / (1 - p) : 0 with dPd = dO V^T,
//             dS = P (dP - Dsum),  Dsum_i = rowsum(dO_i O_i) = sum_j Pd_ij dPd_ij as without dropout.
//
// Kernels that apply it are the general kind (mask_kind() is kGeneral while p > 0): dropout is a
// uniform branch around a tile, never in the plain kernels' code.
#pragma once
#include <cstdint>

#include "core/rng.h"
#include "kernels/flash_attention.h"

namespace attn::flash {

struct FlashDropout {
  bool on = false;
  float p = 0.f, scale = 1.f;  // scale = 1 / (1 - p)
  uint64_t key = 0, head_base = 0;
  int T = 0;

  // Head h of batch row b. The key is read here, once per kernel (a captured graph's replay
  // rewrites it in device memory).
  __device__ __forceinline__ FlashDropout(const FlashAttentionParams& fp, int b, int h)
      : on(fp.dropout_p > 0.f),
        p(fp.dropout_p),
        scale(1.f / (1.f - fp.dropout_p)),
        key(fp.dropout_p > 0.f ? fp.dropout_key.get() : 0),
        head_base(((uint64_t)b * fp.H + h) * fp.T * fp.T),
        T(fp.T) {}

  // The multiplier of element (query i, key j): 0 or 1 / (1 - p).
  __device__ __forceinline__ float mult(int i, int j) const {
    return dropout_keep(key, head_base + (uint64_t)i * T + j, p) ? scale : 0.f;
  }
};

}  // namespace attn::flash
