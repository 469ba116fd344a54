// 2^x on the FMA and integer pipes instead of the special-function unit (MUFU), for the loops
// that the MUFU bounds: soft-capping's, which spend two MUFU ops per score (tanh.approx and
// ex2.approx) where the H200's MUFU does 16 per clock and SM against 128 FMAs. Taking every
// other score's exp2 here moves half of one of them to pipes with room (FlashAttention-4 does
// the same on Blackwell). Plain attention's loops stay on ex2.approx: there the two are balanced.
//
// Cody-Waite: x = j + f with j = round(x) (adding 1.5 * 2^23 leaves j in the low mantissa bits),
// f in [-0.5, 0.5]; 2^f by the degree-3 minimax polynomial of relative error 7.5e-5 (below the
// bf16 rounding of P, 2^-9); then j is added to the exponent bits. The polynomial runs on x
// clamped to >= -125 (so that 2^f, which may be just below 1, stays a normal float there); below
// the clamp the result is exactly 0 (a masked score's -inf gives P = 0, as ex2.approx does), and
// NaN stays NaN (a NaN score must not vanish into a tiny P). x must be < 127.5 (+inf is not).
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

#include "core/host_device.h"

namespace attn {

ATTN_HD float exp2_fma(float x) {
  constexpr float kRoundShift = 12582912.0f;  // 1.5 * 2^23
  constexpr float kC0 = 0.999928057f, kC1 = 0.693260968f, kC2 = 0.242611125f, kC3 = 0.0551716685f;
  const float xc = fmaxf(x, -125.0f);  // (fmaxf drops NaN: x itself decides below)
  const float t = xc + kRoundShift;    // its low mantissa bits: j = round(xc), two's complement
  const float f = xc - (t - kRoundShift);
  const float p = fmaf(fmaf(fmaf(kC3, f, kC2), f, kC1), f, kC0);
  // exponent + j (mod 2^32)
  const float r = std::bit_cast<float>(std::bit_cast<uint32_t>(p) + (std::bit_cast<uint32_t>(t) << 23));
  return x >= -125.0f ? r : (x < -125.0f ? 0.0f : x);
}

}  // namespace attn
