#include "core/device.h"

#if defined(ATTN_WITH_CUDA)
#include <cuda_runtime.h>
#endif

namespace attn {

int cuda_device_count() {
#if defined(ATTN_WITH_CUDA)
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear it: "no device" is an answer, not an error
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

double cuda_peak_memory_bytes_per_s() {
#if defined(ATTN_WITH_CUDA)
  int dev = 0, clock_khz = 0, bus_bits = 0;
  if (cuda_device_count() == 0 || cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return 2.0 * clock_khz * 1e3 * bus_bits / 8.0;
#else
  return 0;
#endif
}

std::string resolve_device(const std::string& backend, int cuda_devices) {
  if (backend == "auto") return cuda_devices > 0 ? "cuda" : "cpu";
  return backend;
}

}  // namespace attn
