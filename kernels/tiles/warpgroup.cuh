// Warpgroup roles: register reallocation between a producer warpgroup that only issues loads
// and consumer warpgroups that hold the accumulators (setmaxnreg), and the thread's place in
// its warpgroup.
#pragma once
#include <cstdint>

#include "kernels/tiles/hardware.cuh"

namespace attn::tiles {

// Every warp of a warpgroup executes the same setmaxnreg. The kernel must be compiled with the
// register count these numbers split (threads x launch count = the sum of the new budgets).
template <int Regs>
__device__ __forceinline__ void warpgroup_release_registers() {
  static_assert(Regs % kRegisterGranule == 0 && Regs >= 24 && Regs <= 256, "setmaxnreg count");
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Regs));
}
template <int Regs>
__device__ __forceinline__ void warpgroup_claim_registers() {
  static_assert(Regs % kRegisterGranule == 0 && Regs >= 24 && Regs <= 256, "setmaxnreg count");
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Regs));
}

__device__ __forceinline__ int warpgroup_index() { return static_cast<int>(threadIdx.x) / kWarpgroupThreads; }
__device__ __forceinline__ int warp_in_warpgroup() {
  return (static_cast<int>(threadIdx.x) / kWarpSize) % kWarpsPerWarpgroup;
}
__device__ __forceinline__ int lane_index() { return static_cast<int>(threadIdx.x) % kWarpSize; }

}  // namespace attn::tiles

namespace attn::tiles {

// Named barriers (bar.sync / bar.arrive with an id and a thread count): a subset of the block
// synchronizes without the rest. Id 0 is __syncthreads'; kernels number theirs from 1.
constexpr int kFirstNamedBarrier = 1;
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

}  // namespace attn::tiles
