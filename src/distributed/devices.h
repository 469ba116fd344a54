// Whether this machine can run the data-parallel job a config asks for, checked before
// any data is prepared or memory allocated, so a wrong request fails at once in one line.
#pragma once

namespace attn {

struct DistributedSection;

// CUDA devices this process sees: 0 in a build without CUDA or on a machine without a GPU.
int visible_cuda_devices();

// Refuses distributed.nproc > 1 when the machine has fewer CUDA devices than processes
// ("distributed.nproc = 2 needs 2 CUDA devices; this machine has 0"), and, until the
// trainer runs data-parallel, any nproc > 1. `cuda_devices` is visible_cuda_devices().
void check_distributed_request(const DistributedSection& d, int cuda_devices);

}  // namespace attn
