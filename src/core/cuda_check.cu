#include "core/cuda_check.h"

#include "core/error.h"

namespace attn::detail {

void cuda_fail(cudaError_t err, const char* call, const char* file, int line) {
  fail("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorString(err), cudaGetErrorName(err), call, file, line);
}

void cublas_fail(cublasStatus_t st, const char* call, const char* file, int line) {
  fail("cuBLAS error {} ({}) in {} at {}:{}", cublasGetStatusString(st), static_cast<int>(st), call, file, line);
}

}  // namespace attn::detail
