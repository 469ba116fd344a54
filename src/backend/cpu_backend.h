// The CPU backend: the GPT on Eigen (fp32), the reference every other backend is tested against.
#pragma once
#include <memory>

#include "backend/backend.h"

namespace attn {
std::unique_ptr<Backend> make_cpu_backend(const GPTConfig& model, const BackendOptions& opts);
}
