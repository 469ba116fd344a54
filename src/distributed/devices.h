// Whether this machine can run the data-parallel job a config asks for, checked before
// any data is prepared or memory allocated, so a wrong request fails at once in one line.
#pragma once
#include <string>

namespace attn {

struct DistributedSection;

// CUDA devices this process sees: 0 in a build without CUDA or on a machine without a GPU.
int visible_cuda_devices();

// device.backend with "auto" resolved the way make_backend resolves it ("cuda" when a
// CUDA device is visible, else "cpu").
std::string resolved_backend(const std::string& backend);

// Makes CUDA device `device` current for this process (a rank uses its local rank).
// Throws naming the device when it does not exist or the build has no CUDA.
void use_cuda_device(int device);

// Refuses distributed.nproc > 1 on the cuda backend when the machine has fewer CUDA devices
// than processes ("distributed.nproc = 2 needs 2 CUDA devices; this machine has 0"). The
// cpu backend runs any number of ranks. `cuda_devices` is visible_cuda_devices().
void check_distributed_request(const DistributedSection& d, const std::string& backend, int cuda_devices);

}  // namespace attn
