// What the CUDA generator (cuda_generator.cu) borrows from the CUDA backend: the weights the
// kernels read, the cuBLASLt matmul object, the stream and the allocator. Internal to
// src/backend; the backend outlives every generator it creates.
#pragma once
#include <cuda_runtime.h>

#include <memory>

#include "attention/attention.h"
#include "backend/cuda_matmul.h"
#include "backend/cuda_memory.h"
#include "backend/generator.h"
#include "core/dtype.h"
#include "model/param_layout.h"

namespace attn {

struct CudaModelView {
  const GPTConfig* cfg = nullptr;
  const ParamLayout* layout = nullptr;
  DType act = DType::F32;            // activation precision: float or bf16
  const void* params = nullptr;      // the copy the kernels read (fp32 master or bf16), ParamLayout order
  CudaMatmul* matmul = nullptr;      // runs on `stream`
  cudaStream_t stream = nullptr;
  CudaAllocator* mem = nullptr;
  AttentionOptions attention;        // prefill runs the backend's attention implementation
};

std::unique_ptr<Generator> make_cuda_generator(const CudaModelView& model, const GeneratorOptions& opt);

}  // namespace attn
