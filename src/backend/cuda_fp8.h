// fp8 linear layers (device.precision = "fp8"): the blocks' QKV, attention projection, MLP fc
// and fc-proj matmuls on Hopper's fp8 tensor cores through cuBLASLt; everything else (the LM
// head, attention, layernorms, residuals, the optimizer, fp32 master weights) stays as in bf16.
//
// Per linear layer y = x W^T + b (x (N, IC), W (OC, IC), both bf16 in memory):
//   forward   y      = (e4m3 x) (e4m3 W)^T                      bf16 out, bias fused
//   dgrad     dx     = (e5m2 dy) (e4m3 W^T)^T                   bf16 out, dGELU fused
//   wgrad     dW    += (e5m2 dy^T) (e4m3 x^T)^T                 fp32, added to the gradient
//   bias      db    += sum_n dy[n, :]                           on the bf16 dy (our kernel)
// cuBLASLt's fp8 matmuls take only the "TN" layout (both operands K-major), so the backward
// casts dy into a row-major and a transposed copy in one pass, and W into a transposed copy
// (kernels/fp8_cast.h). The weights are cast a group of linears at a time, one launch each
// (kern::fp8_cast_many): W when the forward reaches the group's first linear, W^T when the
// backward reaches its last; the linears of a group then read their copy (weight_copy).
// The input x of a linear may also come cast already (input_target, forward_precast): the
// layernorm that produces ln_1 or ln_2 writes the e4m3 x and x^T with x's scale, known before it
// runs (delayed scaling; not at x's first cast, whose scale comes from its own amax).
// x^T: either the forward's cast of x writes it too, into memory the
// caller keeps until the backward (forward's inp_t; then the bf16 x is read once per step: the
// backend stores x^T in place of the bf16 input of the QKV, fc and fc-proj linears, and the
// attention projection's, whose input the attention backward keeps in bf16 anyway, in the unused
// half of ln_1's), or the backward casts the bf16 x again (inp_t null). The same bytes either way: one scale per tensor
// between two update_scales() calls. fp32 accumulation; the scales undo in cuBLASLt's A/B scale.
// The MLP's GELU sits in the casts, not in cuBLASLt's epilogues: the fc-proj's forward casts
// x = gelu(h) from the fc's output h (gelu(h) is never stored in bf16), and the fc's backward
// casts dy = dout * gelu'(h). (Measured on the H200, GPT-2 124M: the fc forward with cuBLASLt's
// fp8 GELU epilogue, writing gelu(h) and h, ran at 549 TFLOP/s against 1207 for the fc-proj.)
//
// Scaling: per tensor (each linear's x, W and dy), delayed: the scale a cast uses comes from
// the amax history of the previous 16 steps (scale = fp8_max / max(history)), and each cast
// records the tensor's amax for the steps to come. Why delayed rather than current scaling
// (amax of the tensor itself, then the cast): the cast is one pass that both reads x and
// records its amax, where current scaling needs a second pass over every operand (an amax
// reduction, then the cast, ~1.5x the cast traffic), and the scales never leave the device
// either way, so the captured step (CUDA graph) has no host sync. The risk of delayed
// scaling is a tensor whose amax jumps above its history: its cast saturates to +-fp8_max
// (never inf) for one step, and the next scale covers it. The first cast of each tensor
// (empty history) takes its scale from its own amax (one extra amax pass, once per tensor).
// An "update" (end of every backward) computes the new scales and rolls the histories.
//
// The state (scales, amax histories, which tensors have been seen) is what `state()` returns
// and checkpoints save (train/checkpoint.h), so a resumed run casts with the same scales.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <vector>

#include "backend/cuda_matmul.h"
#include "backend/cuda_memory.h"
#include "backend/cuda_op_timer.h"
#include "kernels/fp8_cast.h"

namespace attn {

// The device scaling state (kern::Fp8ScaleState) of one tensor per entry of formats, with an amax
// history of `history` steps: scale 1 (until a first amax sets it), the format's fp8 max, empty
// histories. In the workspace category; blocks on the stream (the initial values are pageable).
kern::Fp8ScaleState allocate_fp8_scale_state(CudaAllocator& mem, const std::vector<kern::Fp8Format>& formats,
                                             int history, cudaStream_t stream);

class CudaFp8Linears {
 public:
  static constexpr int kHistory = 16;
  // The forward matmuls (and the fp8 LM head's) accumulate in the tensor cores' own accumulator
  // (cuBLASLt FAST_ACCUM: no periodic promotion of the partial sums into fp32), the backward's
  // (gradients) keep the promotion: torchao's float8 defaults. The forward's sums lose a little
  // of fp32's precision, far below e4m3's rounding of their terms.
  static constexpr bool kForwardFastAccum = true;
  enum Role { Input = 0, Weight = 1, GradOutput = 2 };  // e4m3, e4m3, e5m2
  static constexpr int kRoles = 3;
  using bf16 = __nv_bfloat16;

  // A linear layer's weight W (out, in), bf16, at an address fixed for this object's lifetime.
  struct LinearWeight {
    const bf16* data = nullptr;
    int out = 0, in = 0;
  };

  // One linear layer per weight, at most max_rows rows.
  CudaFp8Linears(const std::vector<LinearWeight>& weights, int max_rows, CudaMatmul& matmul, CudaAllocator& mem,
                 CudaOpTimer& timer, cudaStream_t stream);

  // Device memory the casts write (fp8 operand copies, the weights' of `group` linears at once:
  // each of their casts one launch), used only inside forward/backward calls: the caller
  // provides it (the backend: inside the logits buffer while it is dead). group: 1 to
  // kern::kFp8CastManyMaxJobs (larger: more bytes, fewer launches).
  size_t scratch_bytes(int group = 1) const;
  void set_scratch(void* scratch, int group = 1);

  // Whether cuBLASLt's fp8 matmuls take this shape (every dimension a multiple of 16).
  static bool supports(int N, int IC, int OC) { return N % 16 == 0 && IC % 16 == 0 && OC % 16 == 0; }

  // out (N, OC) = x W^T + bias, x = inp (N, IC), or with gelu_of_inp x = gelu(inp) (inp a GELU's
  // input; the cast applies it). name: the matmul's name in the step profile (the casts go by
  // their own, category fp8_cast). inp_t (N * IC bytes, 16-byte aligned, or null): the same cast
  // also writes x's fp8 transpose there, the wgrad's operand: pass it to backward as its inp_t
  // (it holds x's scale, so it is good until the next update_scales()). A forward pass calls the
  // linears of a group in ascending order (the first casts the group's W).
  // gelu_bias (IC, or null; with gelu_of_inp): x = gelu(inp + gelu_bias), the bias of the linear
  // that produced inp added here rather than in its matmul (the MLP's fc).
  void forward(int linear, bf16* out, const bf16* inp, const bf16* bias, int N, const char* name = "fp8 fwd",
               void* inp_t = nullptr, bool gelu_of_inp = false, const bf16* gelu_bias = nullptr);
  // The input cast by the kernel that produces it (a layernorm: kern::layernorm_forward_fp8)
  // rather than here: where that kernel writes x (this object's x operand) and x^T (inp_t, as
  // forward's inp_t), with x's scale and amax. Only once x's scale exists (input_scaled): the
  // first cast of a tensor takes its scale from its own amax, so that one is forward's. Then
  // forward_precast runs the matmul on them: the same bytes as forward casting the bf16 x.
  bool input_scaled(int linear) const { return seen_.at(tensor(linear, Input)) != 0; }
  kern::Fp8CastTarget input_target(int linear, int N, void* inp_t) const;
  void forward_precast(int linear, bf16* out, const bf16* bias, int N, const char* name = "fp8 fwd");
  // With dy = dout, or dy = dout * gelu'(dout_gelu_input) (dout the gradient of a GELU's output,
  // dout_gelu_input its input: the dGELU fused into dy's cast): dweight (fp32) += dy^T inp;
  // dbias (fp32, or null) += column sums of dy (from the same cast); dinp = dy W, overwritten.
  // inp's fp8 transpose: inp_t, what this linear's forward wrote there (inp is then not read: it
  // may be null), or else cast here from inp. A backward pass calls the linears of a group in
  // descending order (the last casts the group's W^T). gelu_bias (OC, or null): the GELU's input
  // is dout_gelu_input + gelu_bias (as forward's).
  void backward(int linear, bf16* dinp, float* dweight, float* dbias, const bf16* dout, const bf16* inp, int N,
                const bf16* dout_gelu_input = nullptr,
                const char* wgrad_name = "fp8 wgrad", const char* dgrad_name = "fp8 dgrad",
                const void* inp_t = nullptr, const bf16* gelu_bias = nullptr);
  // The delayed-scaling step: new scales from the histories, histories rolled (device only).
  void update_scales();

  // Host copy of the whole state: [kStateVersion, n_tensors, kHistory, the device records
  // (kern::Fp8ScaleState: scale_inv, scale, fp8_max, amax history per tensor), seen n (0/1)].
  // set_state checks the header.
  std::vector<float> state() const;
  void set_state(const std::vector<float>& s);
  static constexpr float kStateVersion = 1.0f;

  int tensors() const { return scales_.n; }
  const kern::Fp8ScaleState& scales() const { return scales_; }

 private:
  int tensor(int linear, Role r) const { return linear * kRoles + r; }
  void check_shape(int linear, int N, const char* pass) const;
  // A first-seen tensor's cast (its scale from its own amax) must not be captured into a CUDA
  // graph: each replay would repeat it. (The step before a capture, uncaptured, casts every tensor.)
  void check_not_capturing(int t) const;
  // out = x W^T + bias on x's fp8 copy (x_q_) and W's (w_q).
  void forward_matmul(int linear, bf16* out, const void* w_q, const bf16* bias, int N, const char* name);
  // The cast of one operand: a first-seen tensor takes its scale from its own amax first.
  void cast(int t, void* q, void* q_t, const bf16* x, int rows, int cols, const char* name,
            const bf16* gelu_in = nullptr, float* column_partials = nullptr, bool gelu_of_x = false,
            const bf16* gelu_bias = nullptr);
  // The fp8 copy of linear's weight, W (forward) or W^T (backward): its group's copies, cast
  // here when linear opens the group in that pass's order, else those cast when it was opened.
  const void* weight_copy(int linear, bool transposed);
  // Every weight of group g: W or W^T into the weight slots, one launch (first-seen weights:
  // an amax pass and their scales first).
  void cast_weights(int g, bool transposed);
  int groups() const { return (n_linears_ + group_ - 1) / group_; }
  CudaMatmul::Fp8Operand operand(const void* data, int t) const;
  // The fp8 scratch: x (or x^T, when the caller keeps none), dy, dy^T, dy's column sums per
  // 128-row tile (bias gradient), the weight slots of one group (byte offsets into it).
  struct ScratchPlan {
    size_t x = 0, dy = 0, dy_t = 0, partials = 0, weights = 0, bytes = 0;
    std::vector<size_t> slot;  // per linear: its weight copy, from `weights`
  };
  ScratchPlan plan(int group) const;

  std::vector<LinearWeight> weights_;
  int n_linears_, max_rows_, max_in_ = 0, max_out_ = 0;
  CudaMatmul& matmul_;
  CudaOpTimer& timer_;
  cudaStream_t stream_;
  kern::Fp8ScaleState scales_;
  std::vector<char> seen_;  // per tensor: its history holds an amax (host mirror; part of state())
  void *x_q_ = nullptr, *dy_q_ = nullptr, *dy_t_ = nullptr;
  float* dy_partials_ = nullptr;
  // the weight casts: per linear its job (device table, and its host copy), per group its tiles
  int group_ = 1;
  kern::Fp8CastJob* jobs_ = nullptr;
  std::vector<kern::Fp8CastJob> host_jobs_;
  std::vector<int> group_tiles_;
  struct CastGroup {
    int group = -1;
    bool transposed = false;
  } cast_group_;  // the group whose weight copies the slots hold, and which copy
};

}  // namespace attn
