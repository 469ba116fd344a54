// Register fragments of one warpgroup's wgmma: the fp32 accumulator of an m64nN product and
// the bf16 A operand made from it, each knowing which (row, col) of the 64 x N tile every one of
// this thread's registers holds.
//
// Accumulator layout (warp w of the warpgroup owns rows 16w .. 16w+15; g = lane / 4,
// t = lane % 4): registers v[4i .. 4i+3] hold (g, 8i+2t), (g, 8i+2t+1), (g+8, 8i+2t),
// (g+8, 8i+2t+1). So element e sits at row row0() + 8 * half(e), column col0() + col_offset(e),
// and each row of the tile is spread over the 4 threads of a quad (reductions: tiles/quad.cuh).
// The A operand of m64nNk16 from registers uses the same layout per 16-column k-step, so an
// accumulator converts to an A fragment register-for-register (FlashAttention's P = S trick).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/flash_attention_common.cuh"
#include "kernels/flash_attention_wgmma.cuh"
#include "kernels/tiles/hardware.cuh"
#include "kernels/tiles/quad.cuh"
#include "kernels/tiles/warpgroup.cuh"

namespace attn::tiles {

template <int N>
struct AccFragment {
  static constexpr int kCols = N;
  static constexpr int kRegs = N / 2;  // 64 x N fp32 over 128 threads
  float v[kRegs];

  // This thread's first row / column in the 64 x N tile.
  static __device__ __forceinline__ int row0() { return warp_in_warpgroup() * kWarpRows + lane_index() / 4; }
  static __device__ __forceinline__ int col0() { return 2 * (lane_index() % 4); }
  // Element e: row row0() + 8 * half(e), column col0() + col_offset(e) (constants for unrolled e).
  static __device__ __forceinline__ constexpr int half(int e) { return (e >> 1) & 1; }
  static __device__ __forceinline__ constexpr int col_offset(int e) { return 8 * (e >> 2) + (e & 1); }

  __device__ __forceinline__ void fill(float x) {
#pragma unroll
    for (int i = 0; i < kRegs; ++i) v[i] = x;
  }
  // Keep the compiler from touching the registers across an in-flight wgmma (after its wait).
  __device__ __forceinline__ void fence() { attn::flash::wg_fence_regs(v); }
};

// A operand (64 x K bf16, registers) of K/16 wgmma k-steps: step kk holds 4 registers.
template <int K>
struct AFragment {
  static constexpr int kSteps = K / kWgmmaK;
  uint32_t v[kSteps][4];

  // A = bf16(acc), register for register.
  __device__ __forceinline__ void from(const AccFragment<K>& acc) {
#pragma unroll
    for (int kk = 0; kk < kSteps; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r) v[kk][r] = attn::flash::pack_bf16(acc.v[8 * kk + 2 * r], acc.v[8 * kk + 2 * r + 1]);
  }
  __device__ __forceinline__ void fence() {
#pragma unroll
    for (int kk = 0; kk < kSteps; ++kk) attn::flash::wg_fence_regs(v[kk]);
  }
};

}  // namespace attn::tiles
