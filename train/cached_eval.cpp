#include "train/cached_eval.h"

#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "backend/generator.h"
#include "core/rng.h"
#include "train/generate.h"
#include "train/trainer.h"

namespace attn {

int eval_cached(Backend& model, const DataLoader& loader, const Config& cfg, const std::vector<std::string>& kv_caches,
                const std::string& split) {
  const int B = cfg.training.batch_size, T = cfg.seq_len(), iters = cfg.training.eval_iters;
  const uint64_t seed = mix64(static_cast<uint64_t>(cfg.training.seed) ^ 0xE7A1);  // evaluate()'s batches
  std::vector<int32_t> x(static_cast<size_t>(B) * T), y(x.size());
  double first = 0, full = 0;
  for (int i = 0; i < iters; ++i) {
    loader.batch(seed, i, 0, B, T, x.data(), y.data());
    full += model.forward_loss(Batch{x.data(), y.data(), B, T});
  }
  full /= iters;
  fmt::print("{} loss {:.6f} (full forward, no cache) over {} batches of {}x{} tokens\n", split, full, iters, B, T);
  for (size_t k = 0; k < kv_caches.size(); ++k) {
    const KVCacheDType dt = kv_cache_dtype_from_name(kv_caches[k]);
    const auto t0 = std::chrono::steady_clock::now();
    double sum = 0;
    for (int i = 0; i < iters; ++i) {
      loader.batch(seed, i, 0, B, T, x.data(), y.data());
      sum += cached_teacher_forced_loss(model, x.data(), y.data(), B, T, dt);
    }
    const double loss = sum / iters;
    if (k == 0) first = loss;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print("{} loss {:.6f} cached ({} KV cache, teacher-forced decode): {:+.6f} vs full forward, {:+.6f} vs {} "
               "({:.1f} s)\n",
               split, loss, kv_caches[k], loss - full, loss - first, kv_caches[0], s);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace attn
