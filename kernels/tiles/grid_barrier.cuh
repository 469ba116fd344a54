// A barrier across every block of a persistent grid, for kernels that run a chain of dependent
// stages in one launch (the decode step). Every block of the grid must be resident at once: the
// launcher sizes the grid from the occupancy query, and a spin that outlasts kSpinLimitNs traps
// (a launch error, never a hang) should that ever fail.
//
// Counters (words() unsigned, zeroed once by the caller, zero again after each
// launch): kGroups group counters, the top counter, the exit counter. At its e-th barrier
// (e = 1, 2, ...) a block adds 1 to its group's counter (block % kGroups); the group's last
// arriver (its count reaching e * group size) adds 1 to the top counter; every block waits
// for top >= e * kGroups. Two levels, so that no single address takes an atomic from every
// block. The counts only grow within a launch; the last block to exit (exit()) zeroes them
// for the next launch (by then every block has passed every barrier).
// Memory order: a block's writes before the barrier are visible to every block after it
// (__threadfence before arriving, release/acquire on the counters, __threadfence after).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace attn::tiles {

template <int kGroupCount>
struct GridBarrierT {
  static constexpr int kGroups = kGroupCount;
  static constexpr unsigned long long kSpinLimitNs = 2000000000ull;  // 2 s: a grid that is not co-resident
  static constexpr int kWords = kGroups + 2;
  __host__ __device__ static constexpr int words() { return kWords; }

  unsigned* counters = nullptr;  // words() of device memory, zeroed once

  __device__ __forceinline__ static unsigned load_acquire(const unsigned* p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
  }

  // Blocks of the grid in group `group` (blocks group, group + kGroups, ...).
  __device__ __forceinline__ static unsigned group_size(unsigned group) {
    return (gridDim.x - group + kGroups - 1) / kGroups;
  }

  // The e-th barrier of this launch (e counted by the caller from 1). Every thread of every
  // block calls it.
  __device__ __forceinline__ void sync(unsigned e) const {
    __syncthreads();
    if (threadIdx.x == 0) {
      const unsigned group = blockIdx.x % kGroups;
      const unsigned groups = gridDim.x < kGroups ? gridDim.x : kGroups;
      __threadfence();
      const unsigned arrived = atomicAdd(&counters[group], 1u) + 1;
      if (arrived == e * group_size(group)) {
        __threadfence();
        atomicAdd(&counters[kGroups], 1u);
      }
      const unsigned long long start = globaltimer();
      while (load_acquire(&counters[kGroups]) < e * groups)
        if (globaltimer() - start > kSpinLimitNs) __trap();
      __threadfence();
    }
    __syncthreads();
  }

  // Called once by every block as it leaves the kernel (after its last barrier).
  __device__ __forceinline__ void exit() const {
    __syncthreads();
    if (threadIdx.x == 0 && atomicAdd(&counters[kGroups + 1], 1u) == gridDim.x - 1) {
      for (int i = 0; i < words(); ++i) counters[i] = 0;
      __threadfence();
    }
  }

  __device__ __forceinline__ static unsigned long long globaltimer() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
    return t;
  }
};
using GridBarrier = GridBarrierT<16>;

}  // namespace attn::tiles
