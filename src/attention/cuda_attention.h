// The GPU attention interface: every CUDA implementation (naive, flash, ...) computes the
// function of attention/attention.h on device buffers of the activation dtype:
//   qkv (B, T, (H + 2 Hkv) D)  ->  y (B, T, H D);   backward: dy -> dqkv (every element written).
// The caller owns all memory: per layer `saved` (saved_bytes: what forward keeps for
// backward) and one `scratch` shared by all layers (scratch_bytes), both sized for the
// largest shape it will pass. Everything runs on `stream`, with no host synchronisation.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "attention/registry.h"
#include "core/dtype.h"

namespace attn {

class CudaAttention {
 public:
  virtual ~CudaAttention() = default;
  virtual std::string name() const = 0;
  virtual size_t saved_bytes(const AttentionShape& shape) const = 0;    // kept from forward to backward
  virtual size_t scratch_bytes(const AttentionShape& shape) const = 0;  // temporary, shared by layers
  virtual void forward(const void* qkv, void* y, void* saved, void* scratch, const AttentionShape& shape,
                       const DropoutState& dropout, cudaStream_t stream) = 0;
  virtual void backward(const void* qkv, const void* y, const void* dy, const void* saved, void* dqkv, void* scratch,
                        const AttentionShape& shape, const DropoutState& dropout, cudaStream_t stream) = 0;
  // The current batch's token counts that the variants read (document ids, ...): counts[k] is
  // (B, T) int32 on the device, count of counted_tokens(options)[k] among inputs[0..t-1] of its
  // row (kern::document_ids), used by every later forward/backward until replaced.
  // Implementations without variants ignore them.
  virtual void set_token_counts(const std::vector<const int32_t*>& counts) { (void)counts; }
};

// The implementation named by opts.impl (attention/registry.cpp) for activations of dtype
// `act`, after check_attention (registry.h): one line naming the key of an unsupported option.
// `use` says what else the caller will ask (attention dropout, head dim, cached generation).
std::unique_ptr<CudaAttention> make_cuda_attention(const AttentionOptions& opts, DType act, AttentionUse use = {});

// The O(T^2) baseline (cuda_naive_attention.cu).
// tf32: its GEMMs compute in CUBLAS_COMPUTE_32F_FAST_TF32 (act must be F32).
std::unique_ptr<CudaAttention> make_cuda_naive_attention(const AttentionOptions& opts, DType act, bool tf32);

// Our FlashAttention kernels, O(T) saved state (cuda_flash_attention.cu).
// fp32 activations: 3xTF32 tensor-core kernels (fp32 accuracy), or 1xTF32 when tf32.
std::unique_ptr<CudaAttention> make_cuda_flash_attention(const AttentionOptions& opts, DType act, bool tf32);

}  // namespace attn
