// TCP rendezvous: how the processes of a job find each other before NCCL exists.
//
// Rank 0 listens on MASTER_ADDR:MASTER_PORT; every other rank connects (retrying until
// the timeout, since rank 0 may start later) and introduces itself with its rank and the
// world size. Rank 0 refuses a rank out of range, a duplicate or a different world size
// (the refused process gets the reason). The connections form a star around rank 0 and
// carry a few small collectives: broadcast of an opaque blob (the 128-byte ncclUniqueId),
// all_gather of small blobs (e.g. a config hash every rank must share) and a barrier.
// Nothing here waits forever: every wait is bounded by the timeout and ends in one
// attn::Error line saying who was not there.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "distributed/launch_env.h"

namespace attn {

using Blob = std::vector<uint8_t>;

class Rendezvous {
 public:
  // Rank 0 (of world_size > 1) binds and listens now (master_port 0: an ephemeral port,
  // see port()); other ranks do nothing until connect(). timeout_s bounds every wait.
  Rendezvous(const DistEnv& env, double timeout_s);
  ~Rendezvous();
  Rendezvous(const Rendezvous&) = delete;
  Rendezvous& operator=(const Rendezvous&) = delete;

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  int port() const { return port_; }  // the port rank 0 listens on (after binding port 0: the real one)

  // Rank 0: accepts world_size - 1 ranks. Others: connect to rank 0 and are accepted.
  // Throws when rank 0 is unreachable within the timeout, when ranks are missing at
  // rank 0's deadline (named), or when rank 0 refuses this rank.
  void connect();

  // Rank 0's `blob` on every rank (the argument is ignored on other ranks).
  Blob broadcast(const Blob& blob);
  // Every rank's blob, indexed by rank.
  std::vector<Blob> all_gather(const Blob& mine);
  void barrier() { all_gather({}); }

 private:
  void send_frame(int fd, const Blob& b, const char* what);
  Blob recv_frame(int fd, const char* what, int peer);
  double remaining() const;

  DistEnv env_;
  double timeout_s_;
  int listen_fd_ = -1;
  int port_ = 0;
  int master_fd_ = -1;            // non-zero ranks: the connection to rank 0
  std::vector<int> peer_fds_;     // rank 0: fd of rank r (index r; -1 for rank 0)
  double deadline_ = 0;           // monotonic seconds, set per operation
  bool connected_ = false;
};

// Collective: throws on every rank unless all ranks pass the same `value` (a config hash,
// a dataset checksum), naming the first rank that differs from rank 0.
void require_same_on_all_ranks(Rendezvous& rv, const std::string& what, const std::string& value);

}  // namespace attn
