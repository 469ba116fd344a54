// 2^x on the FMA and integer pipes instead of the special-function unit (MUFU), for the loops
// that the MUFU bounds: soft-capping's, which spend two MUFU ops per score (tanh.approx and
// ex2.approx) where the H200's MUFU does 16 per clock and SM against 128 FMAs. Taking every
// other score's exp2 here moves half of one of them to pipes with room (FlashAttention-4 does
// the same on Blackwell). Plain attention's loops stay on ex2.approx: there the two are balanced.
//
// Cody-Waite: x = j + f with j = round(x) (adding 1.5 * 2^23 leaves j in the low mantissa bits),
// f in [-0.5, 0.5]; 2^f by the degree-3 minimax polynomial of relative error 7.5e-5 (below the
// bf16 rounding of P, 2^-9); then j is added to the exponent bits. x is clamped to >= -125 (so
// the result is a normal float: 2^f may be just below 1), and -inf (a masked score) gives
// ~2^-125 (~2e-38) rather than 0: a row has at least one visible score at its maximum, P = 1, so
// its sum does not notice, and masked keys past T read as zeros. x must be < 127.5.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

#include "core/host_device.h"

namespace attn {

ATTN_HD float exp2_fma(float x) {
  constexpr float kRoundShift = 12582912.0f;  // 1.5 * 2^23
  constexpr float kC0 = 0.999928057f, kC1 = 0.693260968f, kC2 = 0.242611125f, kC3 = 0.0551716685f;
  x = fmaxf(x, -125.0f);
  const float t = x + kRoundShift;  // its low mantissa bits: j = round(x), two's complement
  const float f = x - (t - kRoundShift);
  const float p = fmaf(fmaf(fmaf(kC3, f, kC2), f, kC1), f, kC0);
  // exponent + j (mod 2^32)
  return std::bit_cast<float>(std::bit_cast<uint32_t>(p) + (std::bit_cast<uint32_t>(t) << 23));
}

}  // namespace attn
