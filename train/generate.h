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

// nanoGPT's context past block_size: the model sees at most block_size tokens. A prompt keeps
// its last block_size - 1 tokens (room for the first new one), then the window slides.
std::vector<int32_t> crop_prompt(const std::vector<int32_t>& prompt, int block_size);

// Generates max_new_tokens (fewer only at the stop token) after `prompt` (cropped by
// crop_prompt) for `rows` independent samples, feeding the last min(length, block_size)
// tokens. on_token(row, token) streams each new token.
std::vector<std::vector<int32_t>> generate(Backend& model, const std::vector<int32_t>& prompt, int rows,
                                           const SamplingOptions& opt,
                                           const std::function<void(int, int32_t)>& on_token);

// Cached generation (backend/generator.h): the prompts (any lengths, one sequence each) are
// prefilled together, then every sequence advances one token per decode step. Sampling uses
// the same keys as generate(), so the same logits give the same tokens. A sequence ends at
// opt.stop_token; the others go on to max_new_tokens each. Prompts are cropped as in
// generate(); once a sequence fills the cache (block_size positions) every step re-prefills the
// last block_size - 1 tokens and decodes the newest, so the context is always the last
// block_size tokens, exactly generate()'s (CUDA: the captured decode graph is unchanged).
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
