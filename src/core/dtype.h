// Element types of activations on a device: fp32, or bf16 for mixed precision
// (parameters, gradients and optimizer state stay fp32 in both).
#pragma once
#include <cstddef>

namespace attn {

enum class DType { F32, BF16 };

inline size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }
inline const char* dtype_name(DType t) { return t == DType::F32 ? "fp32" : "bf16"; }

}  // namespace attn
