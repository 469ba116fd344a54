// One 64-bit key per candidate (value v, index n) whose unsigned order is the order of "the
// first index of the largest value" (std::max_element's answer): the float's bits made
// monotone (negative: all bits flipped; else the sign bit set) above the inverted index, -0
// counted as +0. NaNs must be skipped by the caller. The key 0 is never made from a real
// candidate: the device's grid argmax (kernels/grid_argmax.cuh) uses it for "none" (index 0);
// the host's top-k of sampling (train/generate.cpp) sorts the keys.
#pragma once
#include <cstdint>
#include <cstring>

#include "core/host_device.h"

namespace attn {

ATTN_HD unsigned long long argmax_key(float v, int32_t n) {  // (the type of CUDA's 64-bit atomicMax)
  if (v == 0.0f) v = 0.0f;
#if defined(__CUDA_ARCH__)
  uint32_t u = __float_as_uint(v);
#else
  uint32_t u;
  std::memcpy(&u, &v, sizeof(u));
#endif
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return (static_cast<unsigned long long>(u) << 32) | static_cast<uint32_t>(~static_cast<uint32_t>(n));
}

ATTN_HD int32_t argmax_index(unsigned long long key) { return key == 0 ? 0 : static_cast<int32_t>(~static_cast<uint32_t>(key)); }

}  // namespace attn
