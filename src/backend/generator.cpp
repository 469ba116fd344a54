// The KV-cache size formula and the checks every generator shares (host code).
#include "backend/generator.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "model/gpt_config.h"

namespace attn {

size_t kv_cache_bytes(const GPTConfig& cfg, int batch, int max_len, KVCacheDType dtype) {
  const size_t slots = 2ull * cfg.n_layer * batch * cfg.n_kv_head * max_len;  // (K, V) x layer x b x g x t
  const size_t scales = kv_cache_is_scaled(dtype) ? slots * sizeof(float) : 0;
  return slots * cfg.head_dim() * kv_cache_element_bytes(dtype) + scales;
}

}  // namespace attn

namespace attn {

void check_kv_cache_fits(size_t need, size_t available, const GPTConfig& cfg, const GeneratorOptions& opt,
                         const char* where) {
  auto gib = [](size_t b) { return static_cast<double>(b) / (1ull << 30); };
  ATTN_CHECK(need <= available,
             "the KV cache for batch {} x {} positions in {} needs {:.2f} GiB (2 x {} layers x {} kv heads x {} head "
             "dim) but only {:.2f} GiB is free on {}; lower the batch, the length or use --kv-cache int8/fp8",
             opt.batch, opt.max_len, kv_cache_dtype_name(opt.cache), gib(need), cfg.n_layer, cfg.n_kv_head,
             cfg.head_dim(), gib(available), where);
}

int resolved_max_len(const GPTConfig& cfg, const GeneratorOptions& opt) {
  ATTN_CHECK(opt.batch >= 1, "generation batch = {} must be >= 1", opt.batch);
  const int len = opt.max_len > 0 ? opt.max_len : cfg.block_size;
  ATTN_CHECK(len <= cfg.block_size, "generation length {} exceeds model.block_size = {} (no positions beyond it)", len,
             cfg.block_size);
  return len;
}

}  // namespace attn

namespace attn {
void Generator::decode_greedy(const int32_t* tokens, int32_t* next) {
  const int V = vocab_size();
  std::vector<float> logits(static_cast<size_t>(batch()) * V);
  decode(tokens, logits.data());
  for (int b = 0; b < batch(); ++b) {
    const float* row = logits.data() + static_cast<size_t>(b) * V;
    next[b] = static_cast<int32_t>(std::max_element(row, row + V) - row);
  }
}

void Generator::decode_greedy_steps(const int32_t* tokens, int steps, int32_t* out) {
  check_room_for_steps(*this, steps);
  for (int s = 0; s < steps; ++s)
    decode_greedy(s == 0 ? tokens : out + static_cast<size_t>(s - 1) * batch(), out + static_cast<size_t>(s) * batch());
}

void check_room_for_steps(const Generator& gen, int steps) {
  ATTN_CHECK(steps >= 1, "a greedy run needs at least one step (asked {})", steps);
  for (int b = 0; b < gen.batch(); ++b)
    ATTN_CHECK(gen.length(b) + steps <= gen.max_len(),
               "a greedy run of {} steps does not fit: sequence {} has {} of the cache's {} positions left", steps, b,
               gen.max_len() - gen.length(b), gen.max_len());
}
}  // namespace attn
