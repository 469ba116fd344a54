// Registry of the CUDA attention implementations.
#include "attention/cuda_attention.h"

#include "core/error.h"

namespace attn {

std::unique_ptr<CudaAttention> make_cuda_attention(const AttentionOptions& opts, DType act) {
  if (opts.impl == "naive") return make_cuda_naive_attention(opts, act);
  if (opts.impl == "flash") return make_cuda_flash_attention(opts, act);
  fail("attention.impl: unknown implementation '{}' (expected naive or flash)", opts.impl);
}

}  // namespace attn
