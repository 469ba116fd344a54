// The communicator: collective operations over the ranks of a data-parallel job.
//
// The trainer talks to this interface only; LocalCommunicator is the single-process case
// (world size 1: every collective is the identity) and the NCCL communicator
// (nccl_comm.cu, built with CUDA and NCCL) runs them on GPU buffers. Buffers live where
// the backend keeps its gradients (device memory for NCCL); `stream` is the cudaStream_t
// the operation is ordered on (nullptr: the default stream; ignored by LocalCommunicator).
// Every call is collective: all ranks make the same calls in the same order with the
// same counts.
#pragma once
#include <cstddef>
#include <memory>

namespace attn {

class Rendezvous;

using CommStream = void*;  // a cudaStream_t, kept opaque so that this header needs no CUDA

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual const char* name() const = 0;  // "local", "nccl"

  // buf[0, n) <- mean over ranks of buf[0, n), in place (gradient averaging).
  virtual void all_reduce_mean(float* buf, size_t n, CommStream stream) = 0;
  // buf[0, n) <- sum over ranks of buf[0, n) in float64, in place (norms, counts).
  virtual void all_reduce_sum(double* buf, size_t n, CommStream stream) = 0;
  // recv[0, count) <- mean over ranks of send[rank * count, (rank + 1) * count); send has
  // world_size * count floats (ZeRO-1 gradient shards; in place when recv == send + rank * count).
  virtual void reduce_scatter_mean(const float* send, float* recv, size_t count, CommStream stream) = 0;
  // recv[r * bytes, (r + 1) * bytes) <- rank r's send[0, bytes) (ZeRO-1 parameter shards, any
  // element type; in place when send == recv + rank * bytes).
  virtual void all_gather_bytes(const void* send, void* recv, size_t bytes, CommStream stream) = 0;
  // The same for count floats per rank.
  void all_gather(const float* send, float* recv, size_t count, CommStream stream) {
    all_gather_bytes(send, recv, count * sizeof(float), stream);
  }
  // Returns once every rank has reached it and the work queued on `stream` before it is done.
  virtual void barrier(CommStream stream) = 0;
};

// World size 1: the identity. Out-of-place calls copy with memmove, so they take host
// buffers only; the CUDA backend calls it in place.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  const char* name() const override { return "local"; }
  void all_reduce_mean(float*, size_t, CommStream) override {}
  void all_reduce_sum(double*, size_t, CommStream) override {}
  void reduce_scatter_mean(const float* send, float* recv, size_t count, CommStream) override;
  void all_gather_bytes(const void* send, void* recv, size_t bytes, CommStream) override;
  void barrier(CommStream) override {}
};

// True when this binary was built with CUDA and NCCL.
bool nccl_available();

// An NCCL communicator over the ranks `rv` connected (rv.connect() done), on CUDA device
// `device`: rank 0 creates the ncclUniqueId and broadcasts it through rv. Sets
// NCCL_NVLS_ENABLE=0 unless the environment sets it (no NVLink multicast). Throws
// attn::Error naming the NCCL call that failed, or when built without NCCL.
std::unique_ptr<Communicator> make_nccl_communicator(Rendezvous& rv, int device);

}  // namespace attn
