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
    const std::vector<Blob> all = gather(buf, n);
    mean_of(all, 0, n, buf);
  }
  void reduce_scatter_mean(const float* send, float* recv, size_t count, CommStream) override {
    const std::vector<Blob> all = gather(send, count * world_size());
    mean_of(all, count * rank(), count, recv);
  }
  void all_gather(const float* send, float* recv, size_t count, CommStream) override {
    std::vector<float> mine(send, send + count);  // send may alias recv
    const std::vector<Blob> all = gather(mine.data(), count);
    for (int r = 0; r < world_size(); ++r)
      if (count > 0) std::memcpy(recv + count * r, all[r].data(), count * sizeof(float));
  }
  void barrier(CommStream) override { rv_.barrier(); }

 private:
  std::vector<Blob> gather(const float* buf, size_t n) {
    const size_t bytes = n * sizeof(float);
    ATTN_CHECK(bytes * world_size() < (size_t{64} << 20),
               "the CPU communicator moves {} floats x {} ranks per collective, over its 64 MiB message limit; "
               "data-parallel training of a model this size needs the cuda backend (NCCL)",
               n, world_size());
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
