// The CUDA backend: the nanoGPT GPT-2 on one GPU, fp32, tf32 (fp32 storage, TF32 matmuls)
// or bf16 mixed precision.
// Only declared when the binary is built with CUDA (ATTN_WITH_CUDA).
#pragma once
#include <memory>

#include "backend/backend.h"
#include "core/device.h"  // cuda_device_count

namespace attn {
std::unique_ptr<Backend> make_cuda_backend(const GPTConfig& model, const BackendOptions& opts);
}
