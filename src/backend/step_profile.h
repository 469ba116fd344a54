// Step profile: where a training step's time goes, by operation category.
//
// A backend with profiling on times each named call of its forward/backward/optimizer
// (CUDA: a cudaEvent pair on the stream; CPU: steady_clock) and adds it to its category.
// Categories: attention_fwd, attention_bwd, matmul (the blocks' linear layers), norm
// (layernorms), classifier (LM head matmuls + softmax cross-entropy), optimizer (grad norm +
// AdamW), communication (data-parallel collectives; CUDA overlaps them with backward, so this
// is the exposed part: the time the compute stream waited for them), other (embedding, residual, GELU, dropout, zero_grad, batch upload).
#pragma once
#include <array>
#include <chrono>
#include <cstddef>
#include <string>
#include <utility>

namespace attn {

enum class OpCategory { AttentionFwd, AttentionBwd, Matmul, Norm, Classifier, Optimizer, Communication, Other };
inline constexpr size_t kNumOpCategories = 8;

inline const char* op_category_name(OpCategory c) {
  static constexpr const char* names[kNumOpCategories] = {"attention_fwd", "attention_bwd", "matmul", "norm",
                                                          "classifier",    "optimizer",     "communication", "other"};
  return names[static_cast<size_t>(c)];
}

// Milliseconds per category, accumulated since the last reset_profile().
struct StepProfile {
  std::array<double, kNumOpCategories> ms{};
  double& operator[](OpCategory c) { return ms[static_cast<size_t>(c)]; }
  double operator[](OpCategory c) const { return ms[static_cast<size_t>(c)]; }
  double total_ms() const {
    double s = 0;
    for (double v : ms) s += v;
    return s;
  }
};

// Wall-clock timer for host-side (CPU backend) calls. Off: time() just runs the call.
class HostOpTimer {
 public:
  void set_enabled(bool on) { enabled_ = on; }
  bool enabled() const { return enabled_; }
  template <typename F>
  void time(OpCategory c, F&& call) {
    if (!enabled_) {
      std::forward<F>(call)();
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::forward<F>(call)();
    profile_[c] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  void add(OpCategory c, double ms) { profile_[c] += ms; }
  const StepProfile& profile() const { return profile_; }
  void reset() { profile_ = StepProfile{}; }

 private:
  bool enabled_ = false;
  StepProfile profile_;
};

}  // namespace attn
