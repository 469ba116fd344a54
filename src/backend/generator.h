// Cached autoregressive generation: a KV cache per layer and the two passes that use it.
//
//   prefill(tokens (B, T) right-padded, lengths (B)): runs every prompt through the model,
//     writes K and V of positions [0, lengths[b]) of every layer into the cache, returns the
//     logits at each prompt's last position (B, vocab).
//   decode(tokens (B)): appends one token per sequence at position lengths[b] (then
//     lengths[b] += 1), attends over the cache, returns (B, vocab) logits.
//
// Both compute exactly the function of Backend::last_logits on the sequence so far (the
// cache only avoids recomputing K and V), up to the rounding of the cache precision.
// A Generator is created by its Backend (Backend::make_generator) and reads the backend's
// parameters as they are at each call; it must not outlive the backend.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/kv_cache_dtype.h"
#include "model/gpt_config.h"

namespace attn {

// Greedy steps decoded ahead at a time by generate_cached and bench-generate (decode_greedy_steps):
// the host waits once a run, and a stop token wastes at most kGreedyRunAhead - 1 steps (~4 ms
// for GPT-2 124M at batch 1); streamed tokens arrive in runs that short.
constexpr int kGreedyRunAhead = 16;

struct GeneratorOptions {
  int batch = 1;                          // sequences generated together
  int max_len = 0;                        // cache positions per sequence (0: model.block_size)
  int max_prompt = 0;                     // longest padded prompt prefill accepts (0: max_len); sizes
                                          // the prefill activations
  int prefill_rows = 0;                   // CUDA: rows (sequences x prompt length) of one prefill pass;
                                          // more sequences run in several passes (0: 1024)
  KVCacheDType cache = KVCacheDType::FP32;  // what K and V are stored in
  bool cuda_graph = true;                 // CUDA: replay the captured decode step (else launch each kernel)
  int fc_proj_splits = 0;                 // CUDA, bf16 decode steps on cuBLASLt (B > 8): c_proj's product in
                                          // this many K slices, summed by the residual + layernorm after it
                                          // (0: the default, 1: cuBLASLt's own matmul and reduction)
  bool prefill_graph = true;              // CUDA, with cuda_graph: a prompt length's prefill replayed as a graph
                                          // after its first call (bench-generate --no-prefill-graph)
  int gemv_carveout_from_batch = 0;       // CUDA, GEMV decode steps whose attention runs the short-cache kernel: from
                                          // this batch on, the GEMVs launch with that kernel's shared-memory carveout
                                          // (decode_attention_carveout), so its blocks start beside theirs
                                          // (0: kGemvCarveoutFromBatch; above kGemvMaxRows: never)
};

// GeneratorOptions::gemv_carveout_from_batch's default. Why: an SM changes its L1 / shared split
// only when it is empty. The GEMVs (a few KB of shared memory) run at a small carveout, so the
// short-cache attention's 180 KB blocks could start only on SMs the qkv GEMV had left, and copied
// their heads after it instead of under it. At the attention's carveout the GEMVs keep 60 KB of
// L1 instead of ~200, which costs them more than the attention gains at small batches.
// Measured on the H100 (session 34, GPT-2 124M bf16, prompt 128 + 512, ms a step, main's kernels
// -> this): call F, GEMVs from B = 8: B = 1, 2, 4 level (0.245, 0.260, 0.288), B = 8 0.381 ->
// 0.339 / 0.341; call E, the GEMVs from B = 1: B = 1 0.246 -> 0.279, B = 2 0.261 -> 0.294,
// B = 4 0.290 -> 0.296, B = 8 0.340.
constexpr int kGemvCarveoutFromBatch = 8;

// Bytes of the KV cache: 2 (K and V) * layers * B * Hkv * max_len * D * element bytes,
// plus one fp32 scale per (layer, K/V, b, kv head, position) for the 8-bit precisions.
size_t kv_cache_bytes(const GPTConfig& cfg, int batch, int max_len, KVCacheDType dtype);

class Generator {
 public:
  virtual ~Generator() = default;
  virtual int batch() const = 0;
  virtual int max_len() const = 0;
  virtual int vocab_size() const = 0;  // columns of the logits
  virtual KVCacheDType cache_dtype() const = 0;
  // Bytes allocated for the cache (what kv_cache_bytes says, on the device or the host).
  virtual size_t cache_bytes() const = 0;

  // tokens: (batch, T) row-major, row b valid for t < lengths[b] (1 <= lengths[b] <= min(T,
  // max_len)); the rest is ignored. logits: (batch, vocab_size) on the host.
  virtual void prefill(const int32_t* tokens, const int* lengths, int T, float* logits) = 0;
  // tokens: (batch) on the host; every sequence must have room (lengths[b] < max_len).
  virtual void decode(const int32_t* tokens, float* logits) = 0;
  // Greedy decoding: one decode step whose logits stay where they are computed; next[b] is
  // the argmax of sequence b's new logits (the first index among equal maxima, exactly what
  // std::max_element over decode's logits gives). The CUDA generator runs the argmax on the
  // device and copies back only the B ids; this default calls decode and reduces on the host.
  // tokens and next may be the same array.
  virtual void decode_greedy(const int32_t* tokens, int32_t* next);
  // Greedy decoding run ahead: `steps` decode_greedy steps in a row, the first fed `tokens`,
  // each later one fed the ids of the step before; out (steps, batch) row s = the ids step s
  // gives. Every sequence needs room for all of them (length(b) + steps <= max_len). The CUDA
  // generator feeds the ids on the device and queues all the steps before it waits, so no
  // round trip to the host sits between two steps (as serving engines overlap their scheduler);
  // this default calls decode_greedy `steps` times.
  virtual void decode_greedy_steps(const int32_t* tokens, int steps, int32_t* out);
  // Current length of sequence b (prompt + decoded tokens).
  virtual int length(int b) const = 0;
  // Kernels launched by one decode step once it is captured (0: not captured, or no GPU).
  virtual int decode_step_kernels() const { return 0; }
};

}  // namespace attn

namespace attn {
// Throws attn::Error ("the KV cache needs X (...) but only Y is free on WHERE ...") when
// `need` bytes do not fit in `available`.
void check_kv_cache_fits(size_t need, size_t available, const GPTConfig& cfg, const GeneratorOptions& opt,
                         const char* where);
// Validates batch and max_len against the model (names the option) and returns max_len with
// 0 replaced by block_size.
int resolved_max_len(const GPTConfig& cfg, const GeneratorOptions& opt);
// Throws attn::Error unless steps >= 1 and every sequence has room for `steps` more positions.
void check_room_for_steps(const Generator& gen, int steps);
}  // namespace attn
