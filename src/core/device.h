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

// The current CUDA device's peak memory bandwidth in bytes/s, from its attributes: 2 transfers
// per memory clock x bus width (an H100 SXM: 2 x 2619 MHz x 5120 bits = 3.35e12); 0 without one.
double cuda_peak_memory_bytes_per_s();

}  // namespace attn
