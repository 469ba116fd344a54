// `attnlab train --nproc N`: this program starts its own N local ranks, the way torchrun
// does. Each rank is this executable again with the same arguments and the torchrun
// variables set (RANK = LOCAL_RANK = r, WORLD_SIZE = N, MASTER_ADDR = 127.0.0.1, a free
// MASTER_PORT), so it takes the external-launcher path (launch_env.h) and never spawns.
//
// The launcher forwards SIGINT/SIGTERM to every rank (the ranks agree to stop together and
// checkpoint), and when one rank fails stops the others (SIGTERM, then SIGKILL after
// grace_s) and returns non-zero, naming the first failing rank and how it failed.
#pragma once
#include <string>
#include <vector>

namespace attn {

// argv: the full command line of the ranks (argv[0] is replaced by this executable).
// Returns 0 when every rank exits with 0; otherwise prints one line `error: rank r ...` to
// stderr and returns 1.
int run_local_ranks(int nproc, const std::vector<std::string>& argv, double grace_s = 5.0);

// True when a launcher already made this process a rank (RANK, OMPI_*, SLURM_* set).
bool launched_as_rank();

}  // namespace attn
