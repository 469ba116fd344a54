// Linear-layer matmuls on cuBLASLt.
//
// Row-major, torch.nn.Linear convention: inp (N, IC), weight (OC, IC), out (N, OC).
// bf16 mode: bf16 inputs and outputs, fp32 accumulation, fp32 weight gradients
// (accumulated straight into the fp32 gradient buffer). fp32 mode: fp32 everywhere with
// CUBLAS_COMPUTE_32F (no TF32), for parity with the CPU; with tf32 (device.precision =
// "tf32") the same fp32 buffers with CUBLAS_COMPUTE_32F_FAST_TF32 (tensor cores, operands
// rounded to TF32's 10-bit mantissa, fp32 accumulation).
//
// Epilogues (Epilogues::All): bias (CUBLASLT_EPILOGUE_BIAS), bias + GELU keeping the GELU
// input (GELU_AUX_BIAS) and its backward (DGELU), bias gradient (BGRADB) in the
// weight-gradient matmul. NoGelu keeps GELU in our kernels (exact tanh; the fp32 parity
// mode), None uses no epilogue at all (tests of the fallback path). Where cuBLASLt has no
// algorithm for an epilogue on a shape, the call falls back to a plain matmul plus the
// kernel (bias_add, gelu, bias_backward) and notes it once (fallbacks()).
//
// Algorithm choice, once per shape (cached): cuBLASLt's heuristic offers up to
// kAutotuneCandidates algorithms; with autotune (device.matmul_autotune, default on) the first
// call of a shape times each (and split-K versions of the first pick where K dwarfs the
// output) on the real operands and keeps the fastest when it beats the
// heuristic's first pick by kAutotuneMargin (so near-ties keep the heuristic's, and the choice
// repeats from run to run). Why: the weight gradients, whose outputs are small (768 x 768: 36
// tiles of 128 x 128 for 132 SMs) and whose K is the whole batch, ran at 330-540 TFLOP/s; on the
// H200 the GPT-2 124M step gained only 0.6-1.1% from it (docs/RESULTS.md). Timing needs a
// synchronising first call, so a shape first seen inside a CUDA-graph capture keeps the
// heuristic's pick.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "core/dtype.h"

namespace attn {

class CudaMatmul {
 public:
  static constexpr size_t kWorkspaceBytes = 32u << 20;
  // Inference (decode steps of a few rows, prefill passes of <= 4096 rows) holds cuBLASLt to
  // 4 MiB: 28 MiB less is a tenth of a 124M model's footprint (B = 32 prompts of 128 in one pass:
  // 4.2 ms, H100, session 24).
  static constexpr size_t kInferenceWorkspaceBytes = 4u << 20;

  enum class Epilogues { All, NoGelu, None };

  // workspace: workspace_bytes of device memory (the caller's, accounted as "workspace").
  // tf32: fp32 operands through TF32 tensor cores (only meaningful with act == F32).
  // autotune: time the heuristic's candidates at a shape's first call (see above).
  CudaMatmul(DType act, Epilogues epilogues, void* workspace, cudaStream_t stream,
             size_t workspace_bytes = kWorkspaceBytes, bool tf32 = false, bool autotune = true);
  ~CudaMatmul();
  CudaMatmul(const CudaMatmul&) = delete;
  CudaMatmul& operator=(const CudaMatmul&) = delete;

  // out = inp W^T + bias (bias: (OC) or nullptr).
  // With pre_gelu: pre_gelu = inp W^T + bias, out = gelu_tanh(pre_gelu) (both (N, OC)).
  void forward(void* out, const void* inp, const void* weight, const void* bias, int N, int IC, int OC,
               void* pre_gelu = nullptr);
  // forward()'s product over `splits` equal slices of IC, unreduced: partials (splits, N, OC) fp32,
  // partials[s] = inp[:, slice s] W[:, slice s]^T (one strided-batched call). The caller sums them
  // (with the bias) where it reads them: the decode step's residual + layernorm
  // (kern::residual_layernorm_forward_split_k), instead of cuBLASLt's own split-K reduction
  // kernel. IC / splits a multiple of 8.
  void forward_split_k_partials(float* partials, const void* inp, const void* weight, int N, int IC, int OC, int splits);
  // Whether forward_split_k_partials takes `splits` slices of IC: equal, each a multiple of 8.
  static bool split_k_cuts(int IC, int splits) { return splits >= 1 && IC % splits == 0 && (IC / splits) % 8 == 0; }
  // dinp = dout W (overwritten). With pre_gelu (N, IC): dinp = (dout W) * gelu'(pre_gelu).
  void backward_input(void* dinp, const void* dout, const void* weight, int N, int IC, int OC,
                      const void* pre_gelu = nullptr);
  // dweight (OC, IC, fp32) += dout^T inp;  dbias (OC, fp32) += sum_n dout[n, :] when dbias.
  // accumulate false: both are written instead (the first backward of a step: no zeroed
  // gradient buffer needed, and BGRADB writes dbias itself). scratch:
  // backward_weight_scratch_floats(N, OC) fp32 on the device.
  void backward_weight(float* dweight, float* dbias, const void* dout, const void* inp, int N, int IC, int OC,
                       float* scratch, bool accumulate = true);
  static size_t backward_weight_scratch_floats(int N, int OC);

  // An fp8 operand: its bytes (e4m3, or e5m2 when e5m2) and the factor that undoes its
  // scaling (device fp32: 1 / the scale it was cast with; kernels/fp8_cast.h).
  struct Fp8Operand {
    const void* data = nullptr;
    bool e5m2 = false;
    const float* scale_inv = nullptr;
  };
  // fp8 tensor cores, fp32 accumulation (backend/cuda_fp8.h uses it for the linear layers):
  // row-major out (rows, cols) = beta out + (x (rows, k) . w (cols, k)^T) * x.scale_inv * w.scale_inv,
  // both operands stored K-major (row-major with k the contiguous dimension), every dimension a
  // multiple of 16, at most one e5m2 operand. out_type: BF16, or F32 (no epilogue: the weight
  // gradients, beta 1). Optional, bf16 only: bias (cols, bf16), fused into cuBLASLt's epilogue
  // (else our kernel, noted in fallbacks()). (The MLP's GELU and dGELU are in the fp8 casts:
  // backend/cuda_fp8.h.) fast_accum: the tensor cores accumulate the whole K in their own
  // accumulator, without cuBLASLt's periodic promotion of the partial sums into fp32 registers
  // (CUBLASLT_MATMUL_DESC_FAST_ACCUM: faster, less exact sums; the fp8 forwards take it, as
  // torchao's float8 recipe does for its output matmul). Throws naming the shape and types when
  // cuBLASLt has no algorithm.
  void fp8_matmul(void* out, DType out_type, const Fp8Operand& x, const Fp8Operand& w, int rows, int cols, int k,
                  float beta, const void* bias = nullptr, bool fast_accum = false);

  DType dtype() const { return act_; }
  bool tf32() const { return compute_ == CUBLAS_COMPUTE_32F_FAST_TF32; }
  Epilogues epilogues() const { return epilogues_; }
  // Epilogues that had no cuBLASLt algorithm for some shape (each noted once).
  const std::vector<std::string>& fallbacks() const { return fallbacks_; }
  // Autotune so far: shapes timed, and those where an algorithm other than the heuristic's
  // first pick won.
  int autotuned_shapes() const { return autotuned_shapes_; }
  int autotune_changes() const { return autotune_changes_; }

  static constexpr int kAutotuneCandidates = 8;
  static constexpr int kSplitKCandidates = 10;  // 2 reduction schemes x 5 split counts
  static constexpr float kAutotuneMargin = 0.95f;      // a candidate must take <= 95% of the first's time
  static constexpr size_t kAutotuneMaxOutput = 64u << 20;  // larger accumulating outputs are not timed
  static constexpr float kRefusedMs = 1e30f;               // the time of a candidate that refused to run

 private:
  struct Call;
  // Runs D = op(A) op(B) (+ epilogue) in cuBLASLt's column-major terms; false when
  // cuBLASLt has no algorithm for it (nothing was launched).
  bool lt_matmul(const Call& c);
  // The algorithm for a shape's first call: the heuristic's first, or the fastest candidate.
  struct Cached;
  Cached choose_algorithm(const Call& c, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t la,
                          cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t ld);
  // Writes up to kSplitKCandidates algorithms to out; returns how many.
  int add_split_k_candidates(const Call& c, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t la,
                             cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t ld, const cublasLtMatmulAlgo_t& base,
                             cublasLtMatmulAlgo_t* out) const;
  float time_algorithm(const Call& c, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
                       cublasLtMatrixLayout_t ld, const cublasLtMatmulAlgo_t& algo);
  void note_fallback(const std::string& what);
  bool matmul_bias_gelu(Call c, void* out, DType out_type, int rows, int cols, const void* bias, void* pre_gelu,
                        const char* tag);

  DType act_;
  cublasComputeType_t compute_;
  Epilogues epilogues_;
  bool fuse_gelu_, fuse_bias_;
  void* workspace_;
  size_t workspace_bytes_;
  cudaStream_t stream_;
  bool autotune_;
  int autotuned_shapes_ = 0, autotune_changes_ = 0;
  cublasLtHandle_t lt_ = nullptr;
  using Key = std::tuple<int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int>;
  struct Cached {
    bool ok = false;
    cublasLtMatmulAlgo_t algo{};
  };
  std::map<Key, Cached> cache_;
  std::vector<std::string> fallbacks_;
};

}  // namespace attn
