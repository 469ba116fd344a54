// Autoregressive sampling: temperature, top-k, top-p (nucleus), greedy at temperature 0.
// Random draws come from the counter RNG keyed by (seed, sample index), so a seed
// reproduces the same text on any backend that produces the same logits.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "backend/backend.h"
#include "backend/generator.h"

namespace attn {

struct SamplingOptions {
  int max_new_tokens = 200;
  double temperature = 0.8;
  int top_k = 0;       // 0: off
  double top_p = 1.0;  // 1: off
  uint64_t seed = 42;
  int stop_token = -1;  // end generation when sampled (e.g. end-of-text)
};

// Picks the next token from one row of logits.
int32_t sample_token(const float* logits, int vocab, const SamplingOptions& opt, uint64_t key, uint64_t index);

// Generates up to max_new_tokens after `prompt` for `rows` independent samples (same prompt),
// feeding at most block_size tokens of context. on_token(row, token) streams each new token.
std::vector<std::vector<int32_t>> generate(Backend& model, const std::vector<int32_t>& prompt, int rows,
                                           const SamplingOptions& opt,
                                           const std::function<void(int, int32_t)>& on_token);

// Cached generation (backend/generator.h): the prompts (any lengths, one sequence each) are
// prefilled together, then every sequence advances one token per decode step. Sampling uses
// the same keys as generate(), so the same logits give the same tokens. A sequence ends at
// opt.stop_token; all end after max_new_tokens or when the cache (block_size positions) is
// full. Prompts longer than block_size - 1 keep their last block_size - 1 tokens.
// Returns each sequence's new tokens (without the stop token).
std::vector<std::vector<int32_t>> generate_cached(Backend& model, const std::vector<std::vector<int32_t>>& prompts,
                                                  const SamplingOptions& opt, KVCacheDType cache,
                                                  const std::function<void(int, int32_t)>& on_token);

// Mean cross-entropy of targets (B, T; -1 ignored) computed teacher-forced through the cached
// path: prefill of the first token, then one decode step per position. Equals
// Backend::forward_loss up to the cache precision (the acceptance check of 8-bit caches).
double cached_teacher_forced_loss(Backend& model, const int32_t* inputs, const int32_t* targets, int B, int T,
                                  KVCacheDType cache);

}  // namespace attn
