// A bandwidth-bound GEMV for the few rows of a decode step (kernels/gemv.cu).
//
// For M <= kGemvMaxRows rows of bf16 activations a (M, K) and bf16 weights W (N, K) (row-major,
// torch.nn.Linear's layout), with bf16(x) the round-to-nearest-even to bf16:
//   prologue   a'[m, :] = bf16(layernorm(a[m, :]; ln_w, ln_b))   when ln_w (eps 1e-5), else a
//   y[m, n]    = bf16(f(sum_k a'[m, k] W[n, k] + bias[n]))        fp32 accumulation,
//                f = gelu_tanh when gelu, else identity; bias optional
//   out[m, n]  = bf16(residual[m, n] + y[m, n]) when residual (residual may be out), else y
// and, each optional:
//   out_f32[m * ld_f32 + n] = float(out[m, n])        (logits; `out` may then be null)
//   argmax[m] = the first n of the largest out[m, n] (NaNs skipped; 0 if none), greedy decoding
//   cache append: the columns [cache_col0, cache_col0 + 2 Hkv D) are (k heads, v heads) of a
//     packed qkv row: column cache_col0 + (kv Hkv + g) D + d is stored at
//     (kv ? v_cache : k_cache)[((m Hkv + g) max_len + positions[m]) D + d] (bf16 cache; skipped
//     when positions[m] >= max_len).
// Each of these is what the unfused path computes (layernorm, the matmul's bias/GELU epilogue,
// residual_forward, logits_argmax, kv_cache_write), with the same roundings; the layernorm's
// variance is taken in one pass here (E[a^2] - mean^2, fp32), in two there (gemv.cu says why).
//
// The kernel streams W once with 16-byte loads straight into mma.sync fragments (tensor cores,
// 8 weight rows a tile, K split over 4 warps, several loads in flight), keeps a' in shared
// memory, and is launched with programmatic dependent launch: it loads its first weights before
// waiting for the kernel before it (tiles/pdl.cuh).
// Requirements (attn::Error otherwise): 1 <= M <= kGemvMaxRows, K % 8 == 0, M (K + 8) bf16 of
// shared memory within the kernel's 100 KiB, every pointer 16-byte aligned, argmax_scratch given
// with argmax. Graph-safe: argmax_scratch (argmax_scratch_bytes(M) of kernels/generation.h,
// zeroed once by the caller) is zero again whenever a call has finished (kernels/grid_argmax.cuh).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace attn::kern {

constexpr int kGemvMaxRows = 8;  // decode steps of at most this many sequences take this path

struct GemvArgs {
  const __nv_bfloat16* a = nullptr;  // (M, K)
  const __nv_bfloat16* w = nullptr;  // (N, K)
  const __nv_bfloat16* bias = nullptr;
  const __nv_bfloat16* ln_w = nullptr;  // layernorm prologue when set (then ln_b too)
  const __nv_bfloat16* ln_b = nullptr;
  int M = 0, N = 0, K = 0;
  bool gelu = false;
  const __nv_bfloat16* residual = nullptr;  // (M, N), may alias out
  __nv_bfloat16* out = nullptr;             // (M, N) or null
  float* out_f32 = nullptr;                 // out_f32[m * ld_f32 + n], or null
  int64_t ld_f32 = 0;
  int32_t* argmax = nullptr;               // (M) or null
  unsigned long long* argmax_scratch = nullptr;  // argmax_scratch_bytes(M), zeroed once
  // cache append (bf16 cache), when k_cache
  __nv_bfloat16* k_cache = nullptr;
  __nv_bfloat16* v_cache = nullptr;
  const int32_t* positions = nullptr;  // (M) on the device
  int cache_col0 = 0, Hkv = 0, D = 0, max_len = 0;
};

// carveout_percent >= 0: the launch's preferred shared-memory carveout (tiles/pdl.cuh), the one
// the decode step's other kernels ask for (decode_attention_carveout); -1: none.
void gemv(const GemvArgs& args, cudaStream_t stream, int carveout_percent = -1);

}  // namespace attn::kern
