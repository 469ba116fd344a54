// Launch functions of the hand-written kernels (kernels/*.cu), host-callable.
//
// Activations are T = float (precision "fp32") or __nv_bfloat16 ("bf16"); every
// template below is instantiated for exactly those two. Arithmetic is fp32 throughout;
// parameter gradients are fp32 and ACCUMULATED (+=) unless stated otherwise. Shapes are
// row-major, N = B * T rows. Buffers are 16-byte aligned (cudaMalloc / ArenaPlan /
// ParamLayout offsets). Each launch is followed by CUDA_CHECK_LAUNCH().
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dropout.h"

namespace attn::kern {

// ---- embedding (encoder.cu) ---------------------------------------------------------
// out[b,t,:] = drop(wte[tok[b,t],:] + wpe[t,:])
template <typename T>
void encoder_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int B, int seq, int C,
                     DropoutState drop, cudaStream_t stream);
// Deterministic backward without atomics: positions grouped by token on the host
// (build_token_buckets), one block per distinct token sums its positions in order.
//   dwte[tok] += sum_{(b,t): tok[b,t]=tok} d[b,t];  dwpe[t] += sum_b d[b,t];  d = drop'(dout)
// buckets: [num_buckets tokens | num_buckets+1 starts | N positions] (ints, on the device)
template <typename T>
void encoder_backward(float* dwte, float* dwpe, const T* dout, const int32_t* buckets, int num_buckets, int B,
                      int seq, int C, DropoutState drop, cudaStream_t stream);
// Host: fills `out` with the bucket layout above for tokens[0..N), each in [0, vocab) (buckets in
// increasing token order, positions increasing inside each); returns num_buckets. pad_to: at
// least that many buckets, the extra ones empty (skipped by the kernel), so that a captured
// CUDA graph's launch (grid = num_buckets) fits every batch of its shape: pad_to = min(N, vocab).
int build_token_buckets(const int32_t* tokens, int N, int vocab, std::vector<int32_t>& out, int pad_to = 0);

// ---- layernorm (layernorm.cu), eps = 1e-5 ---------------------------------------------
template <typename T>
void layernorm_forward(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias, int N, int C,
                       cudaStream_t stream);
// dinp += ...; dweight += ...; dbias += ... (two-stage deterministic column reduction
// through `scratch`, layernorm_backward_scratch_floats(N, C) floats). add_dinp / add_params
// false: dinp / (dweight, dbias) are written instead (no zeroed buffer needed, and no read).
template <typename T>
void layernorm_backward(T* dinp, float* dweight, float* dbias, float* scratch, const T* dout, const T* inp,
                        const T* weight, const float* mean, const float* rstd, int N, int C, bool add_dinp,
                        bool add_params, cudaStream_t stream);
size_t layernorm_backward_scratch_floats(int N, int C);
// The residual add of a block fused with the layernorm that reads it (one pass over the row):
//   res_out = res + drop(branch)  (rounded to T; may alias res),  out = layernorm(res_out)
// Same result as residual_forward followed by layernorm_forward.
template <typename T>
void residual_layernorm_forward(T* res_out, T* out, float* mean, float* rstd, const T* res, const T* branch,
                                const T* weight, const T* bias, int N, int C, DropoutState drop,
                                cudaStream_t stream);
// The same with the branch summed from split-K partials (CudaMatmul::forward_split_k_partials):
//   branch = T(sum_s partials[s] + branch_bias)  (partials (splits, N, C) fp32, s in order),
//   res_out = T(res + branch),  out = layernorm(res_out)
// i.e. the unsplit matmul with its bias epilogue, then residual_layernorm_forward, without the
// matmul's reduction kernel. C: residual_layernorm_split_k_supports (a multiple of 16 bytes'
// elements, up to 1024); splits in [1, kResidualLayernormMaxSplits].
constexpr int kResidualLayernormMaxSplits = 8;
template <typename T>
bool residual_layernorm_split_k_supports(int C);
template <typename T>
void residual_layernorm_forward_split_k(T* res_out, T* out, float* mean, float* rstd, const T* res,
                                        const float* partials, int splits, const T* branch_bias, const T* weight,
                                        const T* bias, int N, int C, cudaStream_t stream);

// ---- GELU, tanh approximation (gelu.cu) ----------------------------------------------
template <typename T>
void gelu_forward(T* out, const T* inp, size_t n, cudaStream_t stream);
// d[i] *= gelu'(inp[i])
template <typename T>
void gelu_backward_inplace(T* d, const T* inp, size_t n, cudaStream_t stream);

// ---- residual + dropout (residual.cu) -------------------------------------------------
// out = res + drop(x)      (out may alias res)
template <typename T>
void residual_forward(T* out, const T* res, const T* x, size_t n, DropoutState drop, cudaStream_t stream);

// ---- dropout (dropout.cu) --------------------------------------------------------------
// out = drop(inp) (out may alias inp). The same call is the backward: dinp = drop(dout).
template <typename T>
void dropout_apply(T* out, const T* inp, size_t n, DropoutState drop, cudaStream_t stream);

// ---- bias (bias.cu) -------------------------------------------------------------------
// out[n, o] += bias[o]   (fallback when cuBLASLt has no bias epilogue for a shape)
template <typename T>
void bias_add(T* out, const T* bias, int N, int OC, cudaStream_t stream);
// dbias[o] += sum_n dout[n, o]   (deterministic two-stage, scratch: bias_backward_scratch_floats)
template <typename T>
void bias_backward(float* dbias, float* scratch, const T* dout, int N, int OC, cudaStream_t stream);
size_t bias_backward_scratch_floats(int N, int OC);
// dst[i] += src[i]
void add_inplace(float* dst, const float* src, size_t n, cudaStream_t stream);

// ---- classifier (classifier.cu) --------------------------------------------------------
// Per row n of logits (N, Vp), softmax over the first V columns:
//   losses[n] = logsumexp(logits[n, :V]) - logits[n, target]   (0 where target == -1)
// With write_grad, the row is overwritten IN PLACE by its gradient
//   dlogits[n, j] = (softmax_j - [j == target]) * dloss   for j < V,   0 for j >= V,
//   a zero row where target == -1.
// With fp8.q (T = bf16, Vp % 8 == 0; the fp8 LM head's dgrad operand, backend/cuda_fp8_lm_head.h):
// the gradient also into fp8.q (N, Vp), e5m2 bytes of bf16(dlogits) * s, s = 57344 / |dloss|
// (|dlogits| <= |dloss|: softmax minus one-hot, so the scale is known before the pass and no
// amax is needed; s = 1 when dloss = 0), and *fp8.scale_inv = 1 / s (block 0 writes it).
struct Fp8Dlogits {
  uint8_t* q = nullptr;
  float* scale_inv = nullptr;
};
template <typename T>
void classifier_forward_backward(T* logits, float* losses, const int32_t* targets, int N, int V, int Vp,
                                 DeviceValue<float> dloss, bool write_grad, cudaStream_t stream,
                                 Fp8Dlogits fp8 = {});

// ---- AdamW (adamw.cu) -------------------------------------------------------------------
// For every element (decay(i): bit i/64 of decay_bits, one bit per 64-float chunk):
//   g = grad * grad_mult;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr * ((m / bc1) / (sqrt(v / bc2) + eps) + (decay(i) ? wd : 0) * p)
// bc1 = 1 - b1^t, bc2 = 1 - b2^t. When params_bf16 != nullptr it receives bf16(p).
// scalars_at (a captured step): lr, bc1, bc2 and grad_mult read from device memory instead.
struct AdamWScalars {
  float lr, bc1, bc2, grad_mult;
};
void adamw_update(float* params, const float* grads, float* m, float* v, __nv_bfloat16* params_bf16,
                  const uint32_t* decay_bits, size_t n, float lr, float beta1, float beta2, float bc1, float bc2,
                  float eps, float weight_decay, float grad_mult, cudaStream_t stream,
                  const AdamWScalars* scalars_at = nullptr);

// ---- global norm (global_norm.cu) ---------------------------------------------------------
// *out = sum_i x[i]^2: a fixed grid writes kNormPartials partial sums, one block adds
// them in order (deterministic, no atomics). out: one double on the device.
constexpr int kNormPartials = 1024;
void global_norm_squared(double* out, float* partials, const float* x, size_t n, cudaStream_t stream);
// *mult = grad_clip_multiplier(float(sqrt(*norm_sq)), *grad_clip) (core/grad_clip.h), on the
// device: the clip factor of a captured step, which the host never sees before AdamW.
void grad_clip_factor(float* mult, const double* norm_sq, const double* grad_clip, cudaStream_t stream);

// ---- casts (cast.cu) ----------------------------------------------------------------------
void cast_f32_to_bf16(__nv_bfloat16* out, const float* inp, size_t n, cudaStream_t stream);
void cast_bf16_to_f32(float* out, const __nv_bfloat16* inp, size_t n, cudaStream_t stream);
// out[b, v] = float(logits[b, seq-1, v]) for v < V: the last position's logits of each row
template <typename T>
void gather_last_logits(float* out, const T* logits, int B, int seq, int V, int Vp, cudaStream_t stream);

// ---- naive attention helpers (attention_permute.cu, attention_softmax.cu) -------------------
// qkv (B,T,(H+2Hkv)D) -> q, k, v (B,H,T,D); k and v repeated over each group of H/Hkv heads.
template <typename T>
void attention_permute(T* q, T* k, T* v, const T* qkv, int B, int seq, int H, int Hkv, int D, cudaStream_t stream);
// x (B,T,H*D) -> xh (B,H,T,D)    (the inverse of attention_unpermute)
template <typename T>
void attention_split_heads(T* xh, const T* x, int B, int seq, int H, int D, cudaStream_t stream);
// yh (B,H,T,D) -> y (B,T,H*D)
template <typename T>
void attention_unpermute(T* y, const T* yh, int B, int seq, int H, int D, cudaStream_t stream);
// dq, dk, dv (B,H,T,D) -> dqkv (B,T,(H+2Hkv)D), dk and dv summed over each group in order.
template <typename T>
void attention_permute_backward(T* dqkv, const T* dq, const T* dk, const T* dv, int B, int seq, int H, int Hkv, int D,
                                cudaStream_t stream);
// Row-wise softmax of scores S (BH*T rows of T, already scaled). causal_rows > 0: causal, and
// row i is written up to the end of its block of causal_rows rows (j > i -> 0), the rest of the
// row is left untouched; causal_rows == 0: full rows.
//   P = softmax(S) (kept for backward);  Pdrop = drop(P) when Pdrop != nullptr.
template <typename T>
void attention_softmax_forward(T* P, T* Pdrop, const T* S, int BH, int seq, int causal_rows, DropoutState drop,
                               cudaStream_t stream);
// dP = drop'(dPdrop);  dS = P * (dP - rowsum(dP * P)), written as the forward writes P
template <typename T>
void attention_softmax_backward(T* dS, const T* P, const T* dPdrop, int BH, int seq, int causal_rows,
                                DropoutState drop, cudaStream_t stream);

}  // namespace attn::kern
