#include "distributed/devices.h"

#include "config/config.h"
#include "core/error.h"
#if defined(ATTN_WITH_CUDA)
#include "backend/cuda_backend.h"
#endif

namespace attn {

int visible_cuda_devices() {
#if defined(ATTN_WITH_CUDA)
  return cuda_device_count();
#else
  return 0;
#endif
}

void check_distributed_request(const DistributedSection& d, int cuda_devices) {
  if (d.nproc <= 1) return;
  ATTN_CHECK(d.nproc <= cuda_devices, "distributed.nproc = {} needs {} CUDA devices; this machine has {}", d.nproc,
             d.nproc, cuda_devices);
  fail("distributed.nproc = {}: data-parallel training is not wired into the trainer yet (src/distributed/ has "
       "the rendezvous, buckets and communicator); use distributed.nproc = 1", d.nproc);
}

}  // namespace attn
