// The hardware numbers the tile layer and the attention kernels are written against (Hopper,
// sm_90a), in one place. Whatever differs between parts (SM count, shared memory per block) is
// queried from the device at run time, never written down.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

#include "core/cuda_check.h"

namespace attn::tiles {

// ---- threads -------------------------------------------------------------------------------
constexpr int kWarpSize = 32;
constexpr int kWarpsPerWarpgroup = 4;                              // wgmma's unit of execution
constexpr int kWarpgroupThreads = kWarpSize * kWarpsPerWarpgroup;  // 128

// ---- wgmma (bf16 in, fp32 accumulate) ------------------------------------------------------
constexpr int kWgmmaM = 64;  // rows of one warpgroup MMA (16 per warp)
constexpr int kWgmmaK = 16;  // contraction depth of one bf16 wgmma
constexpr int kWarpRows = kWgmmaM / kWarpsPerWarpgroup;  // 16 accumulator rows per warp

// ---- shared memory: the 128-byte swizzle of wgmma operands and TMA boxes --------------------
constexpr int kBf16Bytes = 2;
constexpr int kSwizzleBytes = 128;                        // one swizzled row: 64 bf16
constexpr int kSwizzleElems = kSwizzleBytes / kBf16Bytes;  // 64 bf16 columns per column block
constexpr int kChunkBytes = 16;                           // the swizzle permutes 16-byte chunks
constexpr int kChunksPerRow = kSwizzleBytes / kChunkBytes;  // 8
constexpr int kSwizzleAtomRows = 8;                       // the pattern repeats every 8 rows...
constexpr int kSwizzleAtomBytes = kSwizzleAtomRows * kSwizzleBytes;  // ...1024 bytes: tile alignment
constexpr int kTmaMaxBoxRows = 256;                       // a TMA box spans at most 256 per dim

// ---- shared memory per block: sm_90's architectural opt-in limit, for compile-time checks of
// kernels that size their rings statically (the run-time value: max_smem_per_block() below)
constexpr int kMaxSmemPerBlockSm90 = 227 * 1024;

// ---- caches -------------------------------------------------------------------------------
constexpr int kCacheLineBytes = 128;  // an L1 / L2 line: what one prefetch.global.L2 fetches

// ---- registers -----------------------------------------------------------------------------
constexpr int kRegistersPerSm = 64 * 1024;
constexpr int kMaxRegistersPerThread = 255;
constexpr int kRegisterGranule = 8;  // setmaxnreg counts are multiples of 8, in [24, 256]

// ---- run-time properties of the current device ----------------------------------------------
inline int current_device() {
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  return dev;
}
// Queried once per device (launchers call it on every launch).
inline int sm_count() {
  constexpr int kDevices = 64;
  static std::atomic<int> cached[kDevices] = {};
  const int dev = current_device();
  if (dev < kDevices && cached[dev].load(std::memory_order_relaxed) > 0) return cached[dev].load(std::memory_order_relaxed);
  int n = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  if (dev < kDevices) cached[dev].store(n, std::memory_order_relaxed);
  return n;
}
// Dynamic shared memory a block may opt in to (227 KiB on H100 / H200).
inline int max_smem_per_block() {
  int n = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMaxSharedMemoryPerBlockOptin, current_device()));
  return n;
}

// Shared memory the SM reserves per resident block (sm_90), on top of the block's own.
constexpr int kSmemReservedPerBlock = 1024;

// The smallest preferred carveout (percent of the SM's shared-memory maximum) whose shared memory
// holds `bytes`; the driver rounds it up to the next configuration the SM has (on sm_90:
// 0, 8, 16, 32, 64, 100, 132, 164, 196 or 228 KiB), and the rest of the 256 KiB is L1.
inline int carveout_percent_for(size_t bytes) {
  int per_sm = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, current_device()));
  if (per_sm <= 0) return 100;
  const size_t percent = (100 * bytes + per_sm - 1) / per_sm;
  return percent > 100 ? 100 : static_cast<int>(percent);
}

// Raise a kernel's dynamic shared-memory limit once per device (cudaFuncSetAttribute is per
// device; a bit per device ordinal < 64). max_shared_carveout: also ask for the whole unified
// L1 / shared memory as shared, for kernels that fit two large blocks per SM.
template <auto Kern>
inline void set_smem_limit_once(int bytes, bool max_shared_carveout = false) {
  static std::atomic<uint64_t> done{0};
  const int dev = current_device();
  const uint64_t bit = dev < 64 ? (uint64_t{1} << dev) : 0;
  if (bit && (done.load(std::memory_order_relaxed) & bit)) return;
  CUDA_CHECK(cudaFuncSetAttribute(Kern, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  if (max_shared_carveout)
    CUDA_CHECK(cudaFuncSetAttribute(Kern, cudaFuncAttributePreferredSharedMemoryCarveout,
                                    static_cast<int>(cudaSharedmemCarveoutMaxShared)));
  done.fetch_or(bit, std::memory_order_relaxed);
}

}  // namespace attn::tiles
