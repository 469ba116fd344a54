// Whether this machine can run the data-parallel job a config asks for, checked before
// any data is prepared or memory allocated, so a wrong request fails at once in one line.
#pragma once
#include <string>

namespace attn {

struct DistributedSection;

// Makes CUDA device `device` current for this process (a rank uses its local rank).
// Throws naming the device when it does not exist or the build has no CUDA.
void use_cuda_device(int device);

// Refuses distributed.nproc > 1 on the cuda backend when the machine has fewer CUDA devices
// than processes ("distributed.nproc = 2 needs 2 CUDA devices; this machine has 0"). The
// cpu backend runs any number of ranks. `cuda_devices` is cuda_device_count() (core/device.h).
void check_distributed_request(const DistributedSection& d, const std::string& backend, int cuda_devices);

}  // namespace attn
