#include "distributed/devices.h"

#include "config/config.h"
#include "core/device.h"
#include "core/error.h"
#if defined(ATTN_WITH_CUDA)
#include "core/cuda_check.h"
#endif

namespace attn {

void use_cuda_device(int device) {
  const int n = cuda_device_count();
  ATTN_CHECK(device >= 0 && device < n, "LOCAL_RANK {} names CUDA device {}, but this process sees {} CUDA device(s)",
             device, device, n);
#if defined(ATTN_WITH_CUDA)
  CUDA_CHECK(cudaSetDevice(device));
#endif
}

void check_distributed_request(const DistributedSection& d, const std::string& backend, int cuda_devices) {
  if (d.nproc <= 1) return;
  if (resolve_device(backend, cuda_devices) != "cuda") return;
  ATTN_CHECK(d.nproc <= cuda_devices,
             "distributed.nproc = {} with device.backend = \"cuda\" needs {} CUDA devices; this machine has {}", d.nproc,
             d.nproc, cuda_devices);
}

}  // namespace attn
