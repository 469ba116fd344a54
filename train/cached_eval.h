// `attnlab eval --cached`: the loss of `evaluate` (same batches) computed teacher-forced
// through the KV-cache decode path, once per cache precision, so that the effect of an
// 8-bit cache on the model's output is one number (acceptance: int8/fp8 within 0.01 of bf16).
#pragma once
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/config.h"
#include "data/loader.h"

namespace attn {

// Prints one line per precision (and its difference to the first); returns 0.
int eval_cached(Backend& model, const DataLoader& loader, const Config& cfg, const std::vector<std::string>& kv_caches,
                const std::string& split);

}  // namespace attn
