#include "core/kv_cache_dtype.h"

#include "core/error.h"

namespace attn {

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

}  // namespace attn
