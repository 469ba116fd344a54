// The precisions a KV cache (generation) stores K and V in, their names and element sizes:
// one definition for the decode kernel (kernels/decode_attention.*), the generators
// (backend/generator.*) and the command line (--kv-cache).
//
// The 8-bit precisions also keep one fp32 scale per (b, kv head, position) for K and for V
// (kernels/decode_attention.h states the quantization).
#pragma once
#include <cstddef>
#include <string>

namespace attn {

enum class KVCacheDType { FP32, BF16, FP8_E4M3, INT8 };

// Bytes per stored element: 4, 2, 1, 1 (constexpr: the decode kernel sizes its loads by it).
constexpr size_t kv_cache_element_bytes(KVCacheDType t) {
  return t == KVCacheDType::FP32 ? 4 : t == KVCacheDType::BF16 ? 2 : 1;
}
// True for the precisions stored with a per-row fp32 scale (fp8 e4m3, int8).
constexpr bool kv_cache_is_scaled(KVCacheDType t) { return t == KVCacheDType::FP8_E4M3 || t == KVCacheDType::INT8; }

const char* kv_cache_dtype_name(KVCacheDType t);  // "fp32", "bf16", "fp8", "int8"
// The inverse of kv_cache_dtype_name; throws attn::Error naming --kv-cache and the value otherwise.
KVCacheDType kv_cache_dtype_from_name(const std::string& name);

}  // namespace attn
