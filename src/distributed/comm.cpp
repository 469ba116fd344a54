// LocalCommunicator, and the stand-ins for the NCCL communicator in builds without NCCL.
#include "distributed/comm.h"

#include <cstring>

#include "core/error.h"

namespace attn {

void LocalCommunicator::reduce_scatter_mean(const float* send, float* recv, size_t count, CommStream) {
  if (send != recv && count > 0) std::memmove(recv, send, count * sizeof(float));
}

void LocalCommunicator::all_gather_bytes(const void* send, void* recv, size_t bytes, CommStream) {
  if (send != recv && bytes > 0) std::memmove(recv, send, bytes);
}

#if !(defined(ATTN_WITH_CUDA) && defined(ATTN_WITH_NCCL))
bool nccl_available() { return false; }

std::unique_ptr<Communicator> make_nccl_communicator(Rendezvous&, int) {
  fail("multi-GPU training needs NCCL, and this binary was built without it (CUDA and libnccl in /usr/local/cuda)");
}
#endif

}  // namespace attn
