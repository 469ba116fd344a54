// The CUDA attention named by attention.impl: the registry checks the options and builds it.
#include "attention/cuda_attention.h"

namespace attn {

std::unique_ptr<CudaAttention> make_cuda_attention(const AttentionOptions& opts, DType act, AttentionUse use) {
  use.device = AttentionDevice::cuda;
  use.precision = &act;
  return check_attention(opts, use).make_cuda(opts, act, use.tf32);
}

}  // namespace attn
