// Step profile: where a training step's time goes, by operation category.
//
// A backend with profiling on times each named call of its forward/backward/optimizer
// (CUDA: a cudaEvent pair on the stream; CPU: steady_clock) and adds it to its category.
// Categories: attention_fwd, attention_bwd, matmul (the blocks' linear layers), norm
// (layernorms), classifier (LM head matmuls + softmax cross-entropy), optimizer (grad norm +
// AdamW), communication (data-parallel collectives; CUDA overlaps them with backward, so this
// is the exposed part: the time the compute stream waited for them), fp8_cast (device.precision
// = "fp8": the casts of the linear layers' operands to e4m3/e5m2 with their amax, and the
// scale updates; backend/cuda_fp8.h), other (embedding, residual, GELU, dropout, zero_grad, batch upload).
//
// Inside a category each call may also carry a name and its work (OpTag): calls of the same
// name add up (the 12 layers' "fc fwd" are one row), so the report can list the top operations
// with their achieved TFLOP/s (matmuls, attention) or GB/s (memory-bound kernels).
#pragma once
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

namespace attn {

enum class OpCategory { AttentionFwd, AttentionBwd, Matmul, Norm, Classifier, Optimizer, Communication, Fp8Cast, Other };
inline constexpr size_t kNumOpCategories = 9;

inline const char* op_category_name(OpCategory c) {
  static constexpr const char* names[kNumOpCategories] = {"attention_fwd", "attention_bwd", "matmul", "norm",
                                                          "classifier",    "optimizer",     "communication", "fp8_cast",
                                                          "other"};
  return names[static_cast<size_t>(c)];
}

// Milliseconds per category, accumulated since the last reset_profile().
// A timed call: its category, a name (a static string; unnamed calls go by their category's
// name) and the work of one call, 0 where not counted: floating-point operations, or the
// fewest bytes it must move through device memory.
struct OpTag {
  OpCategory category;
  const char* name;
  double flops = 0, bytes = 0;
  OpTag(OpCategory c, const char* n = nullptr, double f = 0, double b = 0)  // implicit from a category
      : category(c), name(n ? n : op_category_name(c)), flops(f), bytes(b) {}
};

// The accumulated calls of one name.
struct OpStats {
  OpCategory category = OpCategory::Other;
  double ms = 0;
  int64_t calls = 0;
  double flops = 0, bytes = 0;  // summed over the calls
  OpStats& operator+=(const OpStats& o) {
    category = o.category, ms += o.ms, calls += o.calls, flops += o.flops, bytes += o.bytes;
    return *this;
  }
};

struct StepProfile {
  std::array<double, kNumOpCategories> ms{};
  std::map<std::string, OpStats> ops;  // by name
  double& operator[](OpCategory c) { return ms[static_cast<size_t>(c)]; }
  double operator[](OpCategory c) const { return ms[static_cast<size_t>(c)]; }
  double total_ms() const {
    double s = 0;
    for (double v : ms) s += v;
    return s;
  }
  void add(const OpTag& op, double call_ms) {
    (*this)[op.category] += call_ms;
    ops[op.name] += OpStats{op.category, call_ms, 1, op.flops, op.bytes};
  }
  // Another profile's times and calls added to this one's (steps summed into a report).
  void add(const StepProfile& other) {
    for (size_t i = 0; i < kNumOpCategories; ++i) ms[i] += other.ms[i];
    for (const auto& [name, o] : other.ops) ops[name] += o;
  }
};

// Wall-clock timer for host-side (CPU backend) calls. Off: time() just runs the call.
class HostOpTimer {
 public:
  void set_enabled(bool on) { enabled_ = on; }
  bool enabled() const { return enabled_; }
  template <typename F>
  void time(const OpTag& op, F&& call) {
    if (!enabled_) {
      std::forward<F>(call)();
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::forward<F>(call)();
    profile_.add(op, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  void add(OpCategory c, double ms) { profile_.add(OpTag(c), ms); }
  const StepProfile& profile() const { return profile_; }
  void reset() { profile_ = StepProfile{}; }

 private:
  bool enabled_ = false;
  StepProfile profile_;
};

}  // namespace attn
