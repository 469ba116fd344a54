// Decode attention over a KV cache (generation), and the cache writes that feed it.
//
// Plain C++: includable without CUDA headers. Implemented in kernels/decode_attention.cu.
//
// The cache of one layer holds, per sequence b, kv head g and position t < max_len:
//   K[b, g, t, 0:D], V[b, g, t, 0:D]        in `cache` precision, contiguous in that order
//   (element (b, g, t, d) at ((b * Hkv + g) * max_len + t) * D + d),
//   and for the 8-bit precisions one fp32 scale per (b, g, t) for K and one for V:
//   stored = round(x / scale) (int8) or fp8_e4m3(x / scale), scale = amax(|x[0:D]|) / qmax
//   (qmax 127 for int8, 448 for e4m3; scale = 1 when amax = 0); x = stored * scale.
//
// Decode: one new query token per sequence (its K and V already written at position
// lengths[b] - 1, or appended by the call: append_at), for query head h (kv head g = h / (H / Hkv)):
//   s_t = scale * q_h . K[b, g, t]     for t < lengths[b]
//   o_h = sum_t softmax(s)_t V[b, g, t]
// Split along t across thread blocks ("flash-decoding"): each block produces a partial
// (max, sum, unnormalised o) for its chunk in fp32 workspace; the last block of each head group
// to finish merges them (one kernel per call) when each of its threads then folds at most one
// partial, else a combine kernel (one block per query head).
// The number of splits depends only on (B, Hkv, max_len), never on lengths[], so a decode
// step can be captured once in a CUDA graph and replayed while the lengths grow. Short caches
// (MHA over bf16, K and V of max_len rows within one block's shared memory, B H blocks resident
// at once) take one block per (sequence, head) that loads the whole head and needs no merge.
// bf16 activations over a bf16/fp8/int8 cache run on tensor cores (q, K, P and V as bf16, or
// fp16 for the 8-bit caches, fp32 accumulation); fp32 activations or an fp32 cache on CUDA
// cores in fp32.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/kv_cache_dtype.h"

struct CUstream_st;
typedef CUstream_st* cudaStream_t;

namespace attn {

// One layer's cache on the device.
struct KVCacheLayer {
  void* k = nullptr;          // (B, Hkv, max_len, D) stored elements
  void* v = nullptr;
  float* k_scale = nullptr;   // (B, Hkv, max_len), 8-bit precisions only (else nullptr)
  float* v_scale = nullptr;
};

struct KVCacheShape {
  int B = 0, Hkv = 0, max_len = 0, D = 0;
  KVCacheDType dtype = KVCacheDType::BF16;
};

// Writes K and V of n_new tokens per sequence from the packed qkv rows
//   qkv[b * qkv_batch_stride + i * qkv_token_stride + ...]  ((H + 2 Hkv) D per token: q heads,
//   then k heads, then v heads; activation dtype bf16 when act_bf16 else fp32)
// into cache positions start[b] + i, i < n_new (positions >= max_len are not written).
// start: (B) int32 on the device. Quantizes for the 8-bit precisions. Launched with
// programmatic dependent launch: it waits for the kernel before it, then lets the next start.
void kv_cache_write(const void* qkv, int64_t qkv_batch_stride, int64_t qkv_token_stride, bool act_bf16, int H,
                    int n_new, const int32_t* start, const KVCacheLayer& cache, const KVCacheShape& shape,
                    cudaStream_t stream);

struct DecodeAttentionParams {
  const void* q = nullptr;        // (B, H, D) activation dtype: q[b * q_batch_stride + h * D + d]
  int64_t q_batch_stride = 0;     // elements (the packed qkv row: (H + 2 Hkv) D)
  void* o = nullptr;              // (B, H, D) activation dtype: o[b * o_batch_stride + h * D + d]
  int64_t o_batch_stride = 0;
  bool act_bf16 = true;           // q and o bf16 (else fp32)
  KVCacheLayer cache;
  KVCacheShape shape;             // B, Hkv, max_len, D, cache dtype
  const int32_t* lengths = nullptr;  // (B) on the device, 1 <= lengths[b] <= max_len
  int H = 0;
  float scale = 0.0f;             // usually 1/sqrt(D)
  // When set, the newest row of each sequence (position append_at[b] = lengths[b] - 1, on the
  // device) is not in the cache yet: its K and V are the rest of the packed qkv row at q (K
  // heads, then V heads, after the H query heads), and the call appends them as
  // kv_cache_write(q, q_batch_stride, .., n_new = 1, append_at) would before attending. The
  // CUDA-core kernel (MHA) does it itself for a bf16 cache of bf16 activations
  // (decode_attention_fuses_append); otherwise a kv_cache_write runs first.
  const int32_t* append_at = nullptr;
};

// Whether decode_attention appends the new rows inside its own kernel (no kv_cache_write launch).
bool decode_attention_fuses_append(const DecodeAttentionParams& p);

// The preferred shared-memory carveout (percent, tiles::carveout_percent_for) decode_attention
// launches with, or -1 for none. The short-cache kernel asks for the smallest configuration that
// holds its block, not the largest; the decode step's GEMVs at B >= kGemvCarveoutFromBatch ask for
// the same one, so that the short kernel's blocks can start beside them (backend/generator.h).
int decode_attention_carveout(const DecodeAttentionParams& p);

// Workspace of a decode call (256-byte aligned pointer expected): the splits' partial results
// and, per head group, a count of its finished blocks that the last one resets. Zero the counts
// once with decode_attention_workspace_init before the first call (every call leaves them zero).
size_t decode_attention_workspace_bytes(const DecodeAttentionParams& p);
void decode_attention_workspace_init(const DecodeAttentionParams& p, void* workspace, cudaStream_t stream);

// Requirements (attn::Error otherwise): D in {64, 128}; H % Hkv == 0; every pointer 16-byte aligned.
// Launched with programmatic dependent launch: the kernel before it on the stream may still run
// while the call reads lengths[] and the cache rows below lengths[b] - 1, so that kernel may
// write q and the rows at lengths[b] - 1 (a decode step's K/V append), nothing else it reads.
void decode_attention(const DecodeAttentionParams& p, void* workspace, cudaStream_t stream);

// Benchmark and test knobs (bench_decode_attention's flags): how the calls are planned and run.
// Process-wide; set them before any decode call (the split count and the workspace size depend
// on them).
struct DecodeAttentionTuning {
  double waves = 0.0;        // > 0: splits sized for this many waves (else the kernel's own: 1, or 0.5 and at most a split per SM)
  bool tensor_cores = true;  // false: the CUDA-core split kernel also for bf16 activations (--cuda-cores)
  bool mha_tensor_cores = false;  // true: the tensor-core kernel also for MHA (--mha-tensor-cores)
  int min_split_rows = 0;   // cache rows per split at least this (--min-split-rows)
  long in_kernel_merge_bytes = -1;  // >= 0: the last block merges partials up to this size, else the combine kernel (--merge-bytes)
  double blocks_per_sm = 0.0;  // > 0: splits sized for this many blocks per SM, whatever fits (--blocks-per-sm)
  int mma_warps = 0;  // warps per block of the tensor-core kernel: 4 or 8 (0: the default, 8 for 8-bit caches at D = 128 over a long cache) (--mma-warps)
  bool fit_waves = true;  // false: no extra splits to fill the last wave (--no-fit-waves)
  bool short_heads = true;  // false: never the whole-head kernel of short caches (--no-short-heads)
};
void set_decode_attention_tuning(const DecodeAttentionTuning& t);

}  // namespace attn
