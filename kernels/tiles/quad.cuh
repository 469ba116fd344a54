// Reductions over a quad: the 4 lanes (lane % 4 = 0..3) that hold one row of an mma.sync or
// wgmma accumulator fragment (row g = lane / 4 is spread over its quad's columns), two shuffles.
#pragma once
#include <cuda_runtime.h>

namespace attn::tiles {

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

}  // namespace attn::tiles
