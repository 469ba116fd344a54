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

std::string resolve_device(const std::string& backend, int cuda_devices) {
  if (backend == "auto") return cuda_devices > 0 ? "cuda" : "cpu";
  return backend;
}

}  // namespace attn
