// Where this process sits in a multi-process job: rank, world size, local rank and the
// address of rank 0, read from the variables a launcher sets.
//
// Launchers understood, first match wins:
//   torchrun / torch.distributed.launch: RANK, WORLD_SIZE, LOCAL_RANK
//   Open MPI (mpirun):                   OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK
//   Slurm (srun):                        SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID
// MASTER_ADDR / MASTER_PORT (rank 0's rendezvous address) are read whatever the launcher;
// Slurm and Open MPI do not set them, so a multi-node job must. Nothing set at all: a
// single process (rank 0 of 1). The environment is passed in as a map so that tests need
// no setenv; process_env() gives the real one.
#pragma once
#include <map>
#include <string>

namespace attn {

struct DistEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string source;  // "torchrun", "openmpi", "slurm" or "none" (single process)
};

// Throws attn::Error naming the variable when a value is not an integer, out of range
// (rank >= world size, local rank >= world size, port outside 1..65535) or half a set
// (a rank without a world size).
DistEnv detect_dist_env(const std::map<std::string, std::string>& env);

// This process's environment as a map.
std::map<std::string, std::string> process_env();

}  // namespace attn
