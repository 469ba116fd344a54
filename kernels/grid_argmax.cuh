// Greedy argmax over values spread across the blocks of one grid (the decode step's LM head:
// kernels/gemv.cu, and the logits pass of kernels/generation.cu), in one kernel.
//
// A candidate (value v, index n) is one 64-bit key (core/argmax_key.h) whose integer order is
// value first, then the smaller index, so max over keys = the first index of the largest value,
// as std::max_element; NaNs are never made into keys (skipped), and 0 means "no candidate"
// (index 0 when a row has none).
// Each block folds its candidates of a row into one key, then grid_argmax_finish: the block's
// keys go into the scratch (global atomicMax), and the last block to arrive reads the grid's
// maxima, writes the indices and zeroes the scratch again, so a captured graph can replay it.
// Scratch: argmax_scratch_bytes(rows) on the device (kernels/generation.h), zeroed once.
#pragma once
#include <cstdint>

#include "core/argmax_key.h"

namespace attn::kern {

// The larger key of the warp, in every lane.
__device__ __forceinline__ unsigned long long warp_max_key(unsigned long long key) {
  for (int off = 16; off > 0; off >>= 1) key = max(key, __shfl_xor_sync(0xffffffffu, key, off));
  return key;
}

// Called by every thread of every block of the grid, once the block's keys for rows
// [row0, row0 + rows) are in block_best (shared memory, written before a __syncthreads;
// rows <= blockDim.x). scratch: the block counter, then one key per row of the grid's
// total_rows. The grid's last block writes argmax[r] for r < total_rows and zeroes scratch.
// last: one shared int of the caller's.
__device__ inline void grid_argmax_finish(const unsigned long long* block_best, int row0, int rows,
                                          unsigned long long* scratch, int total_rows, int32_t* argmax, int* last) {
  unsigned long long* done = scratch;
  unsigned long long* best = scratch + 1;
  if (static_cast<int>(threadIdx.x) < rows && block_best[threadIdx.x])
    atomicMax(&best[row0 + threadIdx.x], block_best[threadIdx.x]);
  __threadfence();
  __syncthreads();
  const unsigned long long blocks = static_cast<unsigned long long>(gridDim.x) * gridDim.y * gridDim.z;
  if (threadIdx.x == 0) *last = atomicAdd(done, 1ull) == blocks - 1;
  __syncthreads();
  if (!*last) return;
  __threadfence();
  for (int r = threadIdx.x; r < total_rows; r += blockDim.x) argmax[r] = argmax_index(atomicExch(&best[r], 0ull));
  if (threadIdx.x == 0) *done = 0;
}

}  // namespace attn::kern
