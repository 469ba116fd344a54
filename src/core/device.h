// Which device a run uses: the one place where device.backend = "auto" is resolved.
#pragma once
#include <string>

namespace attn {

// CUDA devices this process sees: 0 in a build without CUDA, or when the driver or the
// device is missing (never throws).
int cuda_device_count();

// device.backend with "auto" resolved: "cuda" when a CUDA device is visible (cuda_devices > 0),
// else "cpu"; "cpu" and "cuda" (and anything else, left to the caller to refuse) unchanged.
std::string resolve_device(const std::string& backend, int cuda_devices);
inline std::string resolve_device(const std::string& backend) { return resolve_device(backend, cuda_device_count()); }

}  // namespace attn
