// Shared-memory tiles in the 128-byte-swizzled layout that TMA writes and wgmma reads.
//
// A tile of R rows x C bf16 columns is C/64 column blocks, one after the other, each R rows of
// 128 bytes; the 16-byte chunk k of row r sits at chunk position k ^ (r & 7) of its row (the
// TMA/wgmma 128-byte swizzle, a function of the address bits, hence the 1024-byte alignment).
// The tile owns its addressing: chunk addresses, its wgmma descriptors and its TMA loads.
//   K-major operand (contraction along a row, e.g. Q and K in S = Q K^T): a 16-column k-step
//     moves 32 bytes inside a column block; stride between 8-row groups (SBO) = 1024 bytes.
//   MN-major operand (contraction down the rows, e.g. V in O = P V): a 16-row k-step moves
//     16 * 128 bytes; the leading-dimension byte offset (LBO) is the column-block stride.
#pragma once
#include <cuda.h>

#include <cstdint>

#include "kernels/flash_attention_common.cuh"
#include "kernels/flash_attention_wgmma.cuh"
#include "kernels/tiles/copy_out.cuh"
#include "kernels/tiles/hardware.cuh"
#include "kernels/tiles/tma.cuh"

namespace attn::tiles {

template <int R, int C>
struct SwizzledTile {
  static_assert(C % kSwizzleElems == 0, "columns: whole 64-column blocks");
  static_assert(R % kSwizzleAtomRows == 0 && R <= kTmaMaxBoxRows, "rows: whole swizzle atoms, one TMA box");
  static constexpr int kRows = R, kCols = C;
  static constexpr int kColBlocks = C / kSwizzleElems;
  static constexpr int kBlockBytes = R * kSwizzleBytes;
  static constexpr int kBytes = kColBlocks * kBlockBytes;
  static constexpr int kKStepBytes = kWgmmaK * kBf16Bytes;        // 32: one K-major k-step
  static constexpr int kKStepsPerBlock = kSwizzleElems / kWgmmaK;  // 4
  static constexpr int kRowStepBytes = kWgmmaK * kSwizzleBytes;    // 2048: one MN-major k-step

  uint32_t base;  // shared-state-space address, kSwizzleAtomBytes aligned

  // Address of 16-byte chunk `chunk` (columns 8*chunk .. 8*chunk+7) of row `row`.
  __device__ __forceinline__ uint32_t chunk_addr(int row, int chunk) const {
    return base + (chunk / kChunksPerRow) * kBlockBytes + row * kSwizzleBytes +
           (((chunk % kChunksPerRow) ^ (row % kSwizzleAtomRows)) * kChunkBytes);
  }
  // wgmma descriptor of the tile as a K-major operand: rows from row0 (a multiple of 8),
  // columns [16 kk, 16 kk + 16).
  __device__ __forceinline__ uint64_t k_major_desc(int row0, int kk) const {
    return attn::flash::wg_desc(base + (kk / kKStepsPerBlock) * kBlockBytes + row0 * kSwizzleBytes +
                                    (kk % kKStepsPerBlock) * kKStepBytes,
                                16, kSwizzleAtomBytes);
  }
  // wgmma descriptor of the tile as an MN-major operand: rows [16 kk, 16 kk + 16), all columns.
  __device__ __forceinline__ uint64_t mn_major_desc(int kk) const {
    return attn::flash::wg_desc(base + kk * kRowStepBytes, kBlockBytes, kSwizzleAtomBytes);
  }
  // An epilogue's staging: this thread's elements of a 64 x C accumulator fragment (fragment.cuh:
  // rows row0 and row0 + 8, 2 columns per 8-column group), element of row row0 + 8 h times
  // scale[h], as bf16 into the same places of the tile, 4-byte stores.
  template <class Acc>
  __device__ __forceinline__ void stage(const Acc& acc, int row0, const float (&scale)[2], int lane) const {
    static_assert(Acc::kCols == C, "a fragment as wide as the tile");
#pragma unroll
    for (int n = 0; n < C / 8; ++n)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint32_t v = attn::flash::pack_bf16(acc.v[4 * n + 2 * h] * scale[h], acc.v[4 * n + 2 * h + 1] * scale[h]);
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(chunk_addr(row0 + 8 * h, n) + (lane & 3) * 4), "r"(v) : "memory");
      }
  }
  // One warp's copy-out of rows [row0, row0 + kWarpRows) to global rows dst + i * stride, the
  // first `rows` of them (copy_out.cuh).
  __device__ __forceinline__ void store_warp_rows(int row0, __nv_bfloat16* dst, int64_t stride, int rows,
                                                  int lane) const {
    tiles::store_warp_rows<C / 8>([this](int r, int c) { return chunk_addr(r, c); }, row0, dst, stride, rows, lane);
  }
  // TMA: rows [row0, row0 + R) of (head, batch) of a make_bf16_head_map view with box rows R;
  // kBytes arrive on `bar` (out-of-range rows as zeros). One thread issues it.
  __device__ __forceinline__ void load(const TmaMap& m, uint32_t bar, int row0, int head, int batch) const {
#pragma unroll
    for (int cb = 0; cb < kColBlocks; ++cb)
      tma_load_4d(base + cb * kBlockBytes, &m.map, bar, cb * kSwizzleElems, row0, head, batch * m.batch_step);
  }
};

}  // namespace attn::tiles
