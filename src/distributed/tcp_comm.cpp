#include "distributed/tcp_comm.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "distributed/rendezvous.h"

namespace attn {

namespace {

class TcpCommunicator final : public Communicator {
 public:
  explicit TcpCommunicator(Rendezvous& rv) : rv_(rv) {}
  int rank() const override { return rv_.rank(); }
  int world_size() const override { return rv_.world_size(); }
  const char* name() const override { return "tcp"; }

  void all_reduce_mean(float* buf, size_t n, CommStream) override {
    const std::vector<Blob> all = gather(buf, n * sizeof(float));
    mean_of(all, 0, n, buf);
  }
  void all_reduce_sum(double* buf, size_t n, CommStream) override {
    const std::vector<Blob> all = gather(buf, n * sizeof(double));
    for (size_t i = 0; i < n; ++i) {
      double sum = 0.0;  // in rank order: the same bits on every rank
      for (const Blob& b : all) sum += reinterpret_cast<const double*>(b.data())[i];
      buf[i] = sum;
    }
  }
  void reduce_scatter_mean(const float* send, float* recv, size_t count, CommStream) override {
    const std::vector<Blob> all = gather(send, count * world_size() * sizeof(float));
    mean_of(all, count * rank(), count, recv);
  }
  void all_gather_bytes(const void* send, void* recv, size_t bytes, CommStream) override {
    const std::vector<Blob> all = gather(send, bytes);  // (copies send first: it may alias recv)
    for (int r = 0; r < world_size(); ++r)
      if (bytes > 0) std::memcpy(static_cast<uint8_t*>(recv) + bytes * r, all[r].data(), bytes);
  }
  void barrier(CommStream) override { rv_.barrier(); }

 private:
  std::vector<Blob> gather(const void* buf, size_t bytes) {
    ATTN_CHECK(bytes * world_size() < (size_t{64} << 20),
               "the CPU communicator moves {} bytes x {} ranks per collective, over its 64 MiB message limit; "
               "data-parallel training of a model this size needs the cuda backend (NCCL)",
               bytes, world_size());
    Blob mine(bytes);
    if (bytes > 0) std::memcpy(mine.data(), buf, bytes);
    std::vector<Blob> all = rv_.all_gather(mine);
    for (int r = 0; r < world_size(); ++r)
      ATTN_CHECK(all[r].size() == bytes, "collective size mismatch: rank {} sent {} bytes, rank {} sent {}", r,
                 all[r].size(), rank(), bytes);
    return all;
  }
  // out[i] = mean over ranks r (in rank order) of rank r's float at begin + i.
  void mean_of(const std::vector<Blob>& all, size_t begin, size_t n, float* out) const {
    std::vector<double> sum(n, 0.0);
    for (const Blob& b : all) {
      const float* f = reinterpret_cast<const float*>(b.data()) + begin;
      for (size_t i = 0; i < n; ++i) sum[i] += f[i];
    }
    const double w = world_size();
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(sum[i] / w);
  }

  Rendezvous& rv_;
};

}  // namespace

std::unique_ptr<Communicator> make_tcp_communicator(Rendezvous& rv) { return std::make_unique<TcpCommunicator>(rv); }

}  // namespace attn
