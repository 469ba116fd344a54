// Checked CUDA / cuBLAS calls: a failure throws attn::Error naming the call, file and line.
// The one CUDA check of the project: kernels, attention, backends, NCCL and the benchmarks use it.
//
//   CUDA_CHECK(cudaMemcpyAsync(...));
//   my_kernel<<<grid, block, 0, stream>>>(...); CUDA_CHECK_LAUNCH();
//   CUBLAS_CHECK(cublasLtMatmul(...));
//
// Light on purpose (no fmt): every kernel file includes it.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace attn::detail {
// Throw attn::Error("CUDA error <text> (<name>) in <call> at <file>:<line>"); in cuda_check.cu.
[[noreturn]] void cuda_fail(cudaError_t err, const char* call, const char* file, int line);
[[noreturn]] void cublas_fail(cublasStatus_t st, const char* call, const char* file, int line);
}  // namespace attn::detail

#define CUDA_CHECK(call)                                                                           \
  do {                                                                                             \
    const cudaError_t attn_err_ = (call);                                                          \
    if (attn_err_ != cudaSuccess) ::attn::detail::cuda_fail(attn_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After every kernel launch: launch-configuration errors (and sticky errors of earlier
// kernels) surface here, at the launch that is at fault or soon after.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(call)                                                                                \
  do {                                                                                                    \
    const cublasStatus_t attn_st_ = (call);                                                               \
    if (attn_st_ != CUBLAS_STATUS_SUCCESS) ::attn::detail::cublas_fail(attn_st_, #call, __FILE__, __LINE__); \
  } while (0)
