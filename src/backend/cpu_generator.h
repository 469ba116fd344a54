// Cached generation on the CPU (backend/generator.h) over a CpuGPT<S>'s parameters.
// The cache holds S values; the 8-bit and bf16 cache precisions are applied by rounding
// each K/V vector as the GPU stores it (same scale rule as kernels/decode_attention.h), so
// the CPU shows the precision's effect on the output while keeping the code simple.
#pragma once
#include <memory>

#include "backend/generator.h"
#include "model/gpt_cpu.h"

namespace attn {

template <typename S>
std::unique_ptr<Generator> make_cpu_generator(const CpuGPT<S>& model, const GeneratorOptions& opt);

// x rounded as the cache of precision t stores it: a vector x[0:D] -> stored * scale.
// (exposed for tests)
void round_like_kv_cache(float* x, int D, KVCacheDType t);
void round_like_kv_cache(double* x, int D, KVCacheDType t);

}  // namespace attn
