// Copy-out of a staged shared-memory tile: the epilogues' last step (O in the forward; dK, dV in
// the backward's main pass; dQ in its deterministic dQ pass).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/tiles/hardware.cuh"

namespace attn::tiles {

// One warp copies rows [row0, row0 + kWarpRows) of a shared bf16 tile whose rows are kChunks
// 16-byte chunks, chunk c of row r at shared address chunk_addr(r, c) (the tile's layout and
// swizzle), to global rows dst + i * stride (i = r - row0): the first `rows` of them only (rows
// past the sequence's end are not written). Lane l moves chunks l, l + 32, ... of the warp's rows
// in row-major order, so each store instruction writes whole rows.
template <int kChunks, class ChunkAddr>
__device__ __forceinline__ void store_warp_rows(const ChunkAddr& chunk_addr, int row0, __nv_bfloat16* dst,
                                                int64_t stride, int rows, int lane) {
  static_assert(kWarpRows * kChunks % kWarpSize == 0, "whole rows per pass of the warp");
#pragma unroll
  for (int i = 0; i < kWarpRows * kChunks / kWarpSize; ++i) {
    const int idx = lane + i * kWarpSize;
    const int r = idx / kChunks, c = idx % kChunks;
    if (r < rows) {
      uint4 v;
      asm volatile("ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];\n"
                   : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                   : "r"(chunk_addr(row0 + r, c))
                   : "memory");
      *reinterpret_cast<uint4*>(dst + r * stride + c * 8) = v;
    }
  }
}

}  // namespace attn::tiles
