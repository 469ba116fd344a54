// The NCCL communicator: data-parallel collectives on GPU buffers (built with CUDA and NCCL).
//
// Bootstrap: the processes find each other through the TCP rendezvous (rendezvous.h);
// rank 0 creates the ncclUniqueId and broadcasts its 128 bytes, then every rank calls
// ncclCommInitRank on its device. NVLink SHARP / multicast (NVLS) is switched off with
// NCCL_NVLS_ENABLE=0 unless the user set it: it needs cuMulticastCreate, which the
// machines of this project do not offer. Every ncclResult_t is checked; a failure throws
// attn::Error naming the NCCL call and NCCL's own explanation.
#if defined(ATTN_WITH_NCCL)
#include <cstdlib>
#include <cstring>

#include <cuda_runtime.h>
#include <nccl.h>

#include "core/cuda_check.h"
#include "core/error.h"
#include "distributed/comm.h"
#include "distributed/rendezvous.h"

namespace attn {

namespace {

void nccl_check(ncclResult_t r, const char* call, ncclComm_t comm) {
  if (r == ncclSuccess) return;
  const char* last = ncclGetLastError(comm);
  fail("NCCL {} failed: {}{}{}", call, ncclGetErrorString(r), last && *last ? ": " : "", last ? last : "");
}

#define NCCL_CHECK(call, comm) nccl_check((call), #call, (comm))

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Rendezvous& rv, int device) : rank_(rv.rank()), world_(rv.world_size()), device_(device) {
    if (!std::getenv("NCCL_NVLS_ENABLE")) ::setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);
    CUDA_CHECK(cudaSetDevice(device_));
    ncclUniqueId id;
    static_assert(sizeof(id.internal) == NCCL_UNIQUE_ID_BYTES);
    Blob blob;
    if (rank_ == 0) {
      NCCL_CHECK(ncclGetUniqueId(&id), nullptr);
      blob.assign(reinterpret_cast<uint8_t*>(&id), reinterpret_cast<uint8_t*>(&id) + sizeof id);
    }
    blob = rv.broadcast(blob);
    ATTN_CHECK(blob.size() == sizeof id, "NCCL bootstrap: rank 0 sent a {}-byte unique id, expected {}", blob.size(),
               sizeof id);
    std::memcpy(&id, blob.data(), sizeof id);
    NCCL_CHECK(ncclCommInitRank(&comm_, world_, id, rank_), nullptr);
    CUDA_CHECK(cudaMalloc(&scratch_, sizeof(float)));
  }
  ~NcclCommunicator() override {
    if (scratch_) cudaFree(scratch_);
    if (comm_) ncclCommDestroy(comm_);  // destructors do not throw
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  const char* name() const override { return "nccl"; }

  void all_reduce_mean(float* buf, size_t n, CommStream stream) override {
    NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat32, ncclAvg, comm_, s(stream)), comm_);
  }
  void all_reduce_sum(double* buf, size_t n, CommStream stream) override {
    NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat64, ncclSum, comm_, s(stream)), comm_);
  }
  void reduce_scatter_mean(const float* send, float* recv, size_t count, CommStream stream) override {
    NCCL_CHECK(ncclReduceScatter(send, recv, count, ncclFloat32, ncclAvg, comm_, s(stream)), comm_);
  }
  void all_gather_bytes(const void* send, void* recv, size_t bytes, CommStream stream) override {
    NCCL_CHECK(ncclAllGather(send, recv, bytes, ncclUint8, comm_, s(stream)), comm_);
  }
  void barrier(CommStream stream) override {
    NCCL_CHECK(ncclAllReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_, s(stream)), comm_);
    CUDA_CHECK(cudaStreamSynchronize(s(stream)));
  }

 private:
  static cudaStream_t s(CommStream stream) { return static_cast<cudaStream_t>(stream); }
  int rank_, world_, device_;
  ncclComm_t comm_ = nullptr;
  float* scratch_ = nullptr;
};

}  // namespace

bool nccl_available() { return true; }

std::unique_ptr<Communicator> make_nccl_communicator(Rendezvous& rv, int device) {
  return std::make_unique<NcclCommunicator>(rv, device);
}

}  // namespace attn
#endif  // ATTN_WITH_NCCL
