#include "distributed/devices.h"

#include "config/config.h"
#include "core/error.h"
#if defined(ATTN_WITH_CUDA)
#include "backend/cuda_backend.h"
#include "backend/cuda_check.h"
#endif

namespace attn {

int visible_cuda_devices() {
#if defined(ATTN_WITH_CUDA)
  return cuda_device_count();
#else
  return 0;
#endif
}

std::string resolved_backend(const std::string& backend) {
  if (backend == "auto") return visible_cuda_devices() > 0 ? "cuda" : "cpu";
  return backend;
}

void use_cuda_device(int device) {
  const int n = visible_cuda_devices();
  ATTN_CHECK(device >= 0 && device < n, "LOCAL_RANK {} names CUDA device {}, but this process sees {} CUDA device(s)",
             device, device, n);
#if defined(ATTN_WITH_CUDA)
  CUDA_CHECK(cudaSetDevice(device));
#endif
}

void check_distributed_request(const DistributedSection& d, const std::string& backend, int cuda_devices) {
  if (d.nproc <= 1) return;
  const std::string b = backend == "auto" ? (cuda_devices > 0 ? "cuda" : "cpu") : backend;
  if (b != "cuda") return;
  ATTN_CHECK(d.nproc <= cuda_devices,
             "distributed.nproc = {} with device.backend = \"cuda\" needs {} CUDA devices; this machine has {}", d.nproc,
             d.nproc, cuda_devices);
}

}  // namespace attn
