// Counter-based random numbers, identical on the host and the device.
//
// Every random draw in training (initialisation aside) is a pure function of
// (seed, stream, index): dropout masks and data-loader offsets need no saved
// generator state, so a resumed run draws exactly what an uninterrupted one
// would, and the CPU and CUDA backends draw the same dropout masks.
#pragma once
#include <cstdint>

#include "core/host_device.h"

namespace attn {

// splitmix64 finaliser: a bijective 64-bit mix with good avalanche.
ATTN_HD uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A stream key from a seed and up to three stream ids (step, micro-step, site...).
ATTN_HD uint64_t stream_key(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0) {
  return mix64(mix64(mix64(seed ^ 0x243F6A8885A308D3ull) + a) + b) + c;
}

// 64 random bits for element `index` of stream `key`.
ATTN_HD uint64_t random_u64(uint64_t key, uint64_t index) { return mix64(key ^ mix64(index)); }

// Uniform in [0, 1) with 24 bits of resolution (exactly representable in float).
ATTN_HD float random_uniform(uint64_t key, uint64_t index) {
  return static_cast<float>(random_u64(key, index) >> 40) * (1.0f / 16777216.0f);
}

// Dropout keep decision: true with probability 1 - p.
ATTN_HD bool dropout_keep(uint64_t key, uint64_t index, float p) { return random_uniform(key, index) >= p; }

}  // namespace attn
