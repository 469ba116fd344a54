// device.precision: the one mapping from its name to what it means.
//   fp32  fp32 storage, fp32 matmuls (CUBLAS_COMPUTE_32F): the parity mode.
//   tf32  fp32 storage everywhere (exactly as fp32), matmuls on TF32 tensor cores
//         (CUBLAS_COMPUTE_32F_FAST_TF32: operands rounded to a 10-bit mantissa, fp32
//         accumulation). GPU only; the flash attention keeps its fp32 kernels.
//   bf16  bf16 activations, fp32 master weights, gradients and optimizer state.
//   fp8   bf16 as above, except the blocks' linear layers (QKV, attention projection, MLP fc
//         and fc-proj): their matmuls run on fp8 tensor cores (backend/cuda_fp8.h): e4m3
//         weights and activations forward, e5m2 gradients backward, per-tensor delayed
//         scaling, fp32 accumulation, bf16 outputs. The LM head, attention, layernorms and
//         the optimizer stay as in bf16. GPU only.
#pragma once
#include <optional>
#include <string_view>

#include "core/dtype.h"

namespace attn {

enum class Precision { FP32, TF32, BF16, FP8 };

inline constexpr const char* kPrecisionChoices = "\"fp32\", \"tf32\", \"bf16\" or \"fp8\"";

inline std::optional<Precision> parse_precision(std::string_view name) {
  if (name == "fp32") return Precision::FP32;
  if (name == "tf32") return Precision::TF32;
  if (name == "bf16") return Precision::BF16;
  if (name == "fp8") return Precision::FP8;
  return std::nullopt;
}

// The dtype activations are stored in.
inline DType activation_dtype(Precision p) {
  return p == Precision::BF16 || p == Precision::FP8 ? DType::BF16 : DType::F32;
}

// fp32 operands through TF32 tensor cores (cuBLAS(Lt) CUBLAS_COMPUTE_32F_FAST_TF32).
inline bool tf32_matmuls(Precision p) { return p == Precision::TF32; }

// The blocks' linear layers on fp8 tensor cores (backend/cuda_fp8.h).
inline bool fp8_matmuls(Precision p) { return p == Precision::FP8; }

// Needs a GPU (tensor-core formats): the CPU backend refuses these.
inline bool needs_gpu(Precision p) { return p != Precision::FP32; }

}  // namespace attn
