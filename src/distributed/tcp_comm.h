// The CPU communicator: collectives on host float buffers over the rendezvous's TCP star
// (rendezvous.h), so that data-parallel training runs with the CPU backend too (CI tests
// the whole data-parallel trainer without a GPU).
//
// Every collective is an all_gather of the ranks' buffers through rank 0; each rank then
// reduces the same W buffers in rank order, in double, so every rank gets bitwise the same
// result:  all_reduce_mean: buf = (sum_r buf_r) / W.  Traffic is O(W^2 n) at rank 0: meant
// for small CPU models (the rendezvous caps a message at 64 MiB; bigger ones fail naming it).
#pragma once
#include <memory>

#include "distributed/comm.h"

namespace attn {

class Rendezvous;

// A communicator over the connected ranks of rv (rv.connect() done); rv must outlive it.
std::unique_ptr<Communicator> make_tcp_communicator(Rendezvous& rv);

}  // namespace attn
