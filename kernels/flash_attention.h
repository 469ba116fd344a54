// Flash attention: forward (FlashAttention-3 style, kernels/flash_attention_fwd.cu) and backward CUDA kernels.
//
// Plain C++: includable without CUDA headers (cudaStream_t is forward-declared below).
//
// Layout: q, k, v, o, dO, dq, dk, dv are addressed as
//   ptr + b * batch_stride + t * token_stride + head * D      (strides in elements)
// so the kernels read q, k, v straight out of the packed qkv buffer of attention.h
// (B, T, (H + 2*Hkv)*D) and write dq, dk, dv straight into dqkv (every element written).
// Query head h uses kv head h / (H / Hkv).
//
//   lse : (B, H, T) fp32, natural-log logsumexp of each row of the scaled (and ALiBi-biased,
//         soft-capped) scores (lse_i = log sum_j exp(s_ij), masked j excluded).
//
// Masked tiles (causal, window, documents) are never loaded or computed, in forward and backward.
// Attention dropout (dropout_p > 0) runs in the general kernels, forward and backward; the
// backward must get the forward's dropout_p and dropout_key.
//
// bf16 = true : bf16 in/out, fp32 accumulation, Hopper tensor cores (wgmma; the forward and the
//               backward's main pass, every mask kind and mode, are FlashAttention-3 style: TMA
//               producer warp, mbarrier ring, consumer warpgroups).
// bf16 = false: fp32 in/out, tensor cores with split TF32 products (flash_attention_f32.cu):
//               3xTF32 (fp32 accuracy; the parity reference of the GPU tests), or with
//               tf32 = true 1xTF32 (device.precision = "tf32": TF32's 10-bit mantissa).
//
// Requirements (violations throw attn::Error): D in {64, 128}; H % Hkv == 0; B, T, H >= 1;
// every pointer 16-byte aligned and every stride a multiple of 16 bytes (8 bf16 / 4 fp32).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/device_value.h"
#include "kernels/attention_variant.h"

struct CUstream_st;
typedef CUstream_st* cudaStream_t;

namespace attn {

// The variants' arguments (VariantArgs, kernels/attention_variant.h) are its base: causal,
// window, doc_ids, alibi, softcap, ... (each variant's Args).
struct FlashAttentionParams : VariantArgs {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  float* lse = nullptr;  // (B, H, T)
  int B = 0, T = 0, H = 0, Hkv = 0, D = 0;
  int64_t q_batch_stride = 0, q_token_stride = 0;
  int64_t k_batch_stride = 0, k_token_stride = 0;
  int64_t v_batch_stride = 0, v_token_stride = 0;
  int64_t o_batch_stride = 0, o_token_stride = 0;
  float scale = 0.0f;  // usually 1/sqrt(D)
  bool bf16 = true;    // else fp32
  bool tf32 = false;   // fp32 only: 1xTF32 products instead of 3xTF32
  // Attention dropout (training): P_ij -> keep ? P_ij / (1 - p) : 0, the mask of
  // model/dropout_sites.h drawn from dropout_key (kernels/flash_attention_dropout.cuh). 0: off.
  float dropout_p = 0.0f;
  DeviceValue<uint64_t> dropout_key;
};

void flash_attention_forward(const FlashAttentionParams& p, cudaStream_t stream);

struct FlashAttentionBackwardParams {
  FlashAttentionParams fwd;  // q, k, v, o and lse of the forward (o and lse as it wrote them)
  const void* dO = nullptr;
  int64_t do_batch_stride = 0, do_token_stride = 0;
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  int64_t dq_batch_stride = 0, dq_token_stride = 0;
  int64_t dk_batch_stride = 0, dk_token_stride = 0;
  int64_t dv_batch_stride = 0, dv_token_stride = 0;
  // true: no atomics, results bitwise identical across runs (dQ by a separate pass).
  bool deterministic = false;
};

// Workspace: D_i = rowsum(dO_i * O_i) in fp32 (B, H, T), plus (non-deterministic) an fp32 dQ
// accumulator (B, H, T, D). 256-byte aligned pointer expected.
size_t flash_attention_backward_workspace_bytes(const FlashAttentionBackwardParams& p);

void flash_attention_backward(const FlashAttentionBackwardParams& p, void* workspace,
                              cudaStream_t stream);

}  // namespace attn
