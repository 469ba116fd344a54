// The LM head in fp8 (device.precision = "fp8"; the blocks' linear layers: cuda_fp8.h), per
// block of rows of the classifier (backend: lm_head_and_classifier):
//   forward   logits = (e4m3 x) (e4m3 wte)^T                    bf16 out (the classifier's input),
//                                                                 fast accumulation (as the linears')
//   dgrad     dx     = (e5m2 dlogits) (e4m3 wte^T)^T            bf16 out
//   wgrad     dwte  += dlogits^T x                               bf16, as in the bf16 step
// x is ln_f's output. Scaling, per tensor, current rather than delayed (no state to checkpoint):
//   - x and wte: an amax pass right before their casts, once per step (x all rows at once:
//     12.6 M values at GPT-2 124M, B=16, T=1024; wte 38.6 M, cast with its transpose in one pass);
//   - dlogits: none needed: |dlogits| <= |dloss| (softmax minus one-hot, times dloss), so the
//     classifier writes the e5m2 copy beside the bf16 gradient with scale 57344 / |dloss|
//     (kernels.h: Fp8Dlogits).
// Why the wgrad stays bf16: fp8's matmuls take K-major operands only, and the wgrad's K is the
// rows: it would need dlogits^T, a transposed copy of the step's largest tensor (824 M values at
// 124M), which the classifier (a block per row) cannot write in the same pass.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "backend/cuda_matmul.h"
#include "backend/cuda_memory.h"
#include "backend/cuda_op_timer.h"
#include "kernels/fp8_cast.h"
#include "kernels/kernels.h"

namespace attn {

class CudaFp8LmHead {
 public:
  using bf16 = __nv_bfloat16;
  // wte (Vp, C), bf16, at a fixed address; at most max_rows rows per step, block_rows per block.
  CudaFp8LmHead(const bf16* wte, int Vp, int C, int max_rows, CudaMatmul& matmul, CudaAllocator& mem,
                CudaOpTimer& timer, cudaStream_t stream);

  // Whether fp8 takes these shapes (cuBLASLt's fp8 matmuls: every dimension a multiple of 16).
  static bool supports(int rows, int Vp, int C) { return rows % 16 == 0 && Vp % 16 == 0 && C % 16 == 0; }
  // Device memory of the fp8 copies (x of max_rows rows, wte and wte^T, e5m2 dlogits of
  // block_rows rows), the caller's: live only between cast_operands and the last dgrad.
  static size_t scratch_bytes(int Vp, int C, int max_rows, int block_rows);
  void set_scratch(void* scratch, int block_rows);

  // Once per step before the blocks: x (rows, C) and wte in e4m3 (with_transpose: wte^T too, the
  // dgrad's operand), each scaled by its own amax.
  void cast_operands(const bf16* x, int rows, bool with_transpose);
  // logits (rows, Vp) = rows r0.. of x times wte^T.
  void forward(bf16* logits, int r0, int rows, const char* name);
  // Where the classifier writes the e5m2 dlogits of a block of rows.
  kern::Fp8Dlogits dlogits_target() const;
  // dx (rows, C) = those dlogits times wte.
  void dgrad(bf16* dx, int rows, const char* name);

 private:
  enum Tensor { X = 0, Wte = 1, Dlogits = 2 };
  CudaMatmul::Fp8Operand operand(const void* data, Tensor t) const;
  const bf16* wte_;
  int Vp_, C_, max_rows_, block_rows_ = 0, x_rows_ = 0;
  bool transposed_ = false;
  CudaMatmul& matmul_;
  CudaOpTimer& timer_;
  cudaStream_t stream_;
  kern::Fp8ScaleState scales_;  // history 1: this step's amax
  uint8_t *x_q_ = nullptr, *w_q_ = nullptr, *w_t_ = nullptr, *dlogits_q_ = nullptr;
};

}  // namespace attn
