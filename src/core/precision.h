// device.precision: the one mapping from its name to what it means.
//   fp32  fp32 storage, fp32 matmuls (CUBLAS_COMPUTE_32F): the parity mode.
//   tf32  fp32 storage everywhere (exactly as fp32), matmuls on TF32 tensor cores
//         (CUBLAS_COMPUTE_32F_FAST_TF32: operands rounded to a 10-bit mantissa, fp32
//         accumulation). GPU only; the flash attention keeps its fp32 kernels.
//   bf16  bf16 activations, fp32 master weights, gradients and optimizer state.
#pragma once
#include <optional>
#include <string_view>

#include "core/dtype.h"

namespace attn {

enum class Precision { FP32, TF32, BF16 };

inline constexpr const char* kPrecisionChoices = "\"fp32\", \"tf32\" or \"bf16\"";

inline std::optional<Precision> parse_precision(std::string_view name) {
  if (name == "fp32") return Precision::FP32;
  if (name == "tf32") return Precision::TF32;
  if (name == "bf16") return Precision::BF16;
  return std::nullopt;
}

// The dtype activations are stored in.
inline DType activation_dtype(Precision p) { return p == Precision::BF16 ? DType::BF16 : DType::F32; }

// fp32 operands through TF32 tensor cores (cuBLAS(Lt) CUBLAS_COMPUTE_32F_FAST_TF32).
inline bool tf32_matmuls(Precision p) { return p == Precision::TF32; }

}  // namespace attn
