// The CPU backend: CpuGPT<float> plus AdamW moments, behind the Backend interface.
#include "backend/cpu_backend.h"

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <vector>
#ifdef _OPENMP
#include <omp.h>

#include "model/cpu_layers.h"
#endif

#include "attention/cpu_attention.h"
#include "attention/registry.h"
#include "backend/cpu_generator.h"
#include "backend/host_data_parallel.h"
#include "core/error.h"
#include "core/precision.h"
#include "model/adamw.h"
#include "model/gpt_cpu.h"

namespace attn {

namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(const GPTConfig& model, const BackendOptions& opts)
      : model_(model, opts.attention, opts.max_batch, opts.max_seq),
        m_(model_.num_scalars(), 0.0f),
        v_(model_.num_scalars(), 0.0f) {
    peak_acts_ = model_.activation_bytes();
    model_.set_op_timer(&timer_);
  }

  std::string name() const override { return "cpu"; }
  const ParamLayout& layout() const override { return model_.layout(); }

  void set_params(const float* host) override { std::copy(host, host + n(), model_.params()); }
  void get_params(float* host) const override { std::copy(model_.params(), model_.params() + n(), host); }
  void get_grads(float* host) const override { std::copy(model_.grads(), model_.grads() + n(), host); }
  void set_optimizer_state(const float* m, const float* v) override {
    if (dp_ && dp_->zero1()) return dp_->set_moments(m, v);
    std::copy(m, m + n(), m_.begin());
    std::copy(v, v + n(), v_.begin());
  }
  void get_optimizer_state(float* m, float* v) const override {
    if (dp_ && dp_->zero1()) return dp_->get_moments(m, v);
    std::copy(m_.begin(), m_.end(), m);
    std::copy(v_.begin(), v_.end(), v);
  }

  void zero_grad() override {
    timer_.time(OpCategory::Other, [&] { model_.zero_grad(); });
  }

  float forward_backward(const Batch& batch, float grad_scale, const StepContext& ctx) override {
    ATTN_CHECK(batch.targets != nullptr, "forward_backward needs targets");
    float loss = 0;
    whole_call([&] {
      loss = model_.forward(batch.inputs, batch.targets, batch.B, batch.T, ctx);
      model_.backward(grad_scale);
    });
    if (dp_ && ctx.sync_grads) timer_.time(OpCategory::Communication, [&] { dp_->sync_grads(model_.grads()); });
    track();
    return loss;
  }

  float forward_loss(const Batch& batch) override {
    ATTN_CHECK(batch.targets != nullptr, "forward_loss needs targets");
    StepContext ctx;
    ctx.train = false;
    const float loss = model_.forward(batch.inputs, batch.targets, batch.B, batch.T, ctx);
    track();
    return loss;
  }

  void last_logits(const int32_t* tokens, int B, int T, float* out) override {
    model_.last_logits(tokens, B, T, out);
    track();
  }

  float grad_norm() override {
    const float* g = model_.grads();
    const std::ptrdiff_t nn = static_cast<std::ptrdiff_t>(n());
    double sum = 0;
    if (dp_ && dp_->zero1()) {
      timer_.time(OpCategory::Communication, [&] { sum = dp_->grad_norm_squared(); });
      return static_cast<float>(std::sqrt(sum));
    }
    timer_.time(OpCategory::Optimizer, [&] {
      sum = ordered_parallel_sum(nn, [g](std::ptrdiff_t i) { return static_cast<double>(g[i]) * g[i]; });
    });
    return static_cast<float>(std::sqrt(sum));
  }

  void adamw_step(const AdamWConfig& cfg, float lr, float grad_multiplier, int64_t t) override {
    ATTN_CHECK(t >= 1, "adamw_step: step count t = {} must be >= 1", t);
    if (dp_ && dp_->zero1()) {
      timer_.time(OpCategory::Optimizer, [&] { dp_->adamw_step(model_.params(), cfg, lr, grad_multiplier, t); });
      return;
    }
    // One call per tensor (weight decay on matrices only); the alignment gaps stay zero.
    timer_.time(OpCategory::Optimizer, [&] {
      for (const ParamTensor& pt : model_.layout().tensors()) {
        const size_t o = pt.offset;
        adamw_update(model_.params() + o, model_.grads() + o, m_.data() + o, v_.data() + o, pt.numel, lr, cfg.beta1,
                     cfg.beta2, cfg.eps, pt.decay() ? cfg.weight_decay : 0.0f, grad_multiplier, t);
      }
    });
  }

  std::unique_ptr<Generator> make_generator(const GeneratorOptions& opt) override {
    AttentionUse use;
    use.decode = true;
    check_attention(model_.attention(), use);
    return make_cpu_generator(model_, opt);
  }

  MemoryReport memory() const override {
    const size_t p = n() * sizeof(float), a = model_.activation_bytes();
    const size_t o = 2 * (dp_ && dp_->zero1() ? dp_->moment_floats() * sizeof(float) : p);
    MemoryReport r;
    r.categories = {{"parameters", p, p}, {"gradients", p, p}, {"optimizer", o, o}, {"activations", a, peak_acts_}};
    r.total_peak = 2 * p + o + peak_acts_;
    r.device_used = 0;
    return r;
  }

  void enable_data_parallel(Communicator& comm, bool zero1, size_t) override {
    dp_ = std::make_unique<HostDataParallel>(comm, zero1, model_.layout());
    if (zero1) m_ = AlignedVector<float>(), v_ = AlignedVector<float>();  // the shards live in dp_
  }

  void set_profiling(bool on) override { timer_.set_enabled(on); }
  StepProfile profile() const override { return timer_.profile(); }
  void reset_profile() override { timer_.reset(); }

 private:
  size_t n() const { return model_.num_scalars(); }
  void track() { peak_acts_ = std::max(peak_acts_, model_.activation_bytes()); }
  // Runs a call whose named ops time themselves; what the call spends outside them (token
  // checks, copies of the batch) is added to "other".
  template <typename F>
  void whole_call(F&& call) {
    if (!timer_.enabled()) return call();
    const double inside_before = timer_.profile().total_ms();
    const auto t0 = std::chrono::steady_clock::now();
    call();
    const double whole = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const double inside = timer_.profile().total_ms() - inside_before;
    timer_.add(OpCategory::Other, std::max(0.0, whole - inside));
  }

  CpuGPT<float> model_;
  AlignedVector<float> m_, v_;
  size_t peak_acts_ = 0;
  HostOpTimer timer_;
  std::unique_ptr<HostDataParallel> dp_;  // data-parallel training, when enabled
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const GPTConfig& model, const BackendOptions& opts) {
  // bf16 and tf32 are GPU formats (tensor cores): refused rather than silently run in fp32,
  // so that a result labelled tf32 never comes from fp32 matmuls.
  const std::optional<Precision> precision = parse_precision(opts.precision);
  ATTN_CHECK(precision.has_value(), "device.precision = \"{}\" is unknown (expected {})", opts.precision,
             kPrecisionChoices);
  if (*precision != Precision::FP32)
    fail("device.precision = \"{}\" needs the cuda backend (a GPU); on the CPU add --device.precision=fp32",
         opts.precision);
  check_attention(opts.attention, AttentionUse{});  // the cpu: the reference runs everything
  ATTN_CHECK(opts.threads >= 0, "device.threads = {} must be >= 0", opts.threads);
  if (opts.threads > 0) {
#ifdef _OPENMP
    omp_set_num_threads(opts.threads);
#endif
    Eigen::setNbThreads(opts.threads);
  }
  return std::make_unique<CpuBackend>(model, opts);
}

}  // namespace attn
