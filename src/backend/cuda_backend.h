// The CUDA backend: hand-written kernels plus cuBLASLt, fp32 or bf16 mixed precision.
// Only declared when the binary is built with CUDA (ATTN_WITH_CUDA).
#pragma once
#include <memory>

#include "backend/backend.h"
#include "core/device.h"  // cuda_device_count

namespace attn {
std::unique_ptr<Backend> make_cuda_backend(const GPTConfig& model, const BackendOptions& opts);
}
