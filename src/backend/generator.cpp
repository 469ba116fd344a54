// The KV-cache size formula and dtype names (host code; also in builds without CUDA, so it
// does not call kv_cache_element_bytes from kernels/decode_attention.cu).
#include "backend/generator.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "model/gpt_config.h"

namespace attn {

namespace {
size_t element_bytes(KVCacheDType t) {
  switch (t) {
    case KVCacheDType::FP32: return 4;
    case KVCacheDType::BF16: return 2;
    case KVCacheDType::FP8_E4M3:
    case KVCacheDType::INT8: return 1;
  }
  return 4;
}
}  // namespace

const char* kv_cache_dtype_name(KVCacheDType t) {
  switch (t) {
    case KVCacheDType::FP32: return "fp32";
    case KVCacheDType::BF16: return "bf16";
    case KVCacheDType::FP8_E4M3: return "fp8";
    case KVCacheDType::INT8: return "int8";
  }
  return "?";
}

KVCacheDType kv_cache_dtype_from_name(const std::string& name) {
  for (KVCacheDType t : {KVCacheDType::FP32, KVCacheDType::BF16, KVCacheDType::FP8_E4M3, KVCacheDType::INT8})
    if (name == kv_cache_dtype_name(t)) return t;
  fail("--kv-cache = \"{}\" is unknown (expected bf16, fp8, int8 or fp32)", name);
}

size_t kv_cache_bytes(const GPTConfig& cfg, int batch, int max_len, KVCacheDType dtype) {
  const size_t slots = 2ull * cfg.n_layer * batch * cfg.n_kv_head * max_len;  // (K, V) x layer x b x g x t
  const bool scaled = dtype == KVCacheDType::FP8_E4M3 || dtype == KVCacheDType::INT8;
  return slots * cfg.head_dim() * element_bytes(dtype) + (scaled ? slots * sizeof(float) : 0);
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
}  // namespace attn
