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

#include "attention/attention.h"
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
  // attention.document_mask: the current batch's document ids, (B, T) int32 on the device
  // (doc id of token t = number of eot among inputs[0..t-1] of its row, kernels/document_ids.h),
  // used by every later forward/backward until replaced. Implementations that refuse
  // document_mask ignore it.
  virtual void set_document_ids(const int32_t* doc_ids) { (void)doc_ids; }
};

// The implementation named by opts.impl ("naive" or "flash") for activations of
// dtype `act`. Throws attn::Error naming the config key of an unsupported option.
std::unique_ptr<CudaAttention> make_cuda_attention(const AttentionOptions& opts, DType act);

// The O(T^2) baseline (cuda_naive_attention.cu).
std::unique_ptr<CudaAttention> make_cuda_naive_attention(const AttentionOptions& opts, DType act);

// Our FlashAttention kernels, O(T) saved state (cuda_flash_attention.cu).
std::unique_ptr<CudaAttention> make_cuda_flash_attention(const AttentionOptions& opts, DType act);

}  // namespace attn
