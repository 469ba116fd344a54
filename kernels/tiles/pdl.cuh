// Programmatic dependent launch (Hopper): a kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization may start while the kernel before it on the
// stream is still running, once every block of that kernel has called launch_dependents() (or
// exited). Everything it does before wait_for_predecessor() must not read what the previous
// kernel writes (e.g. it may prefetch weights); wait_for_predecessor() returns once the previous
// kernel has completed and its writes are visible. Captured into CUDA graphs as programmatic
// edges, so a replayed chain of such kernels overlaps each launch with the tail of the last.
#pragma once
#include <cuda_runtime.h>

#include <utility>

#include "core/cuda_check.h"

namespace attn::tiles {

__device__ __forceinline__ void wait_for_predecessor() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel (if launched with the attribute) start; it still waits for this one to
// finish before it reads anything this kernel writes.
__device__ __forceinline__ void launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Launches kernel<<<grid, block, smem, stream>>>(args...) with programmatic stream
// serialization on created streams (the legacy default stream keeps plain stream order) and,
// when carveout_percent >= 0, that preferred shared-memory carveout for this launch (see
// tiles::carveout_percent_for; kernels that share SMs in a chain ask for the same one, so that
// no SM waits to drain and reconfigure its L1 / shared split between them).
template <typename... KArgs, typename... Args>
void launch_pdl_carveout(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                         int carveout_percent, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  unsigned n = 0;
  const bool default_stream = stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread;
  if (!default_stream) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (carveout_percent >= 0) {
    attr[n].id = cudaLaunchAttributePreferredSharedMemoryCarveout;
    attr[n++].val.sharedMemCarveout = static_cast<unsigned>(carveout_percent);
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
  if (e != cudaSuccess) (void)cudaGetLastError();  // a refused launch leaves no sticky error behind
  CUDA_CHECK(e);
}

template <typename... KArgs, typename... Args>
void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
  launch_pdl_carveout(kernel, grid, block, smem, stream, -1, std::forward<Args>(args)...);
}

}  // namespace attn::tiles
