// The backend interface: what the training loop, `eval` and `sample` need from a model
// on some device. The CPU backend (Eigen) and the CUDA backend implement it; the trainer
// never touches device memory directly.
//
// Parameters, gradients and the two AdamW moments are flat fp32 buffers in the order of
// ParamLayout (model/param_layout.h); the host sees them only as whole buffers.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "core/dropout.h"
#include "core/step_profile.h"
#include "model/param_layout.h"

namespace attn {

class Communicator;
class Generator;  // backend/generator.h
struct GeneratorOptions;

struct Batch {
  const int32_t* inputs = nullptr;   // (B, T) token ids
  const int32_t* targets = nullptr;  // (B, T) next-token ids; -1 = ignored position
  int B = 0, T = 0;
};

struct AdamWConfig {
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
};

// One optimizer step as the trainer runs it (Backend::train_step): zero the gradients;
// forward_backward each micro-batch with its context and grad_scale; the gradient norm; AdamW
// at lr with bias correction for step t, the gradients multiplied by
// grad_clip_multiplier(norm, grad_clip) (core/grad_clip.h; grad_clip 0: no clipping).
struct TrainStep {
  std::vector<Batch> micro_batches;
  std::vector<StepContext> contexts;  // one per micro-batch
  float grad_scale = 1.0f;
  AdamWConfig adamw;
  float lr = 0.0f;
  double grad_clip = 0.0;
  int64_t t = 1;
};
struct TrainStepResult {
  std::vector<float> losses;  // mean loss of each micro-batch
  float norm = 0.0f;          // gradient norm before clipping
};

// Bytes per memory category, now and at peak (the CPU backend reports what it allocated).
struct MemoryCategory {
  std::string name;
  size_t bytes = 0, peak = 0;
};
struct MemoryReport {
  std::vector<MemoryCategory> categories;  // parameters, gradients, optimizer, activations, ...
  size_t total_peak = 0;                   // peak of the sum
  size_t device_used = 0;                  // what the driver says (CUDA), 0 on the CPU
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu", "cuda"
  virtual const ParamLayout& layout() const = 0;

  // Whole-buffer transfers (host fp32, layout().total() elements). Under data parallelism
  // get_params and get_optimizer_state are collective (every rank calls them: ZeRO-1 gathers).
  virtual void set_params(const float* host) = 0;
  virtual void get_params(float* host) const = 0;
  virtual void get_grads(float* host) const = 0;
  virtual void set_optimizer_state(const float* m, const float* v) = 0;
  virtual void get_optimizer_state(float* m, float* v) const = 0;

  // State of the precision's own that a resumed run needs (device.precision = "fp8": the
  // per-tensor scales and amax histories, backend/cuda_fp8.h); empty for the others.
  // Checkpoints save it beside the optimizer state. set_precision_state ignores an empty
  // vector (a checkpoint of another precision) and, in a precision with no state, any vector.
  virtual std::vector<float> precision_state() const { return {}; }
  virtual void set_precision_state(const std::vector<float>& /*state*/) {}

  virtual void zero_grad() = 0;
  // Forward and backward of one micro-batch: grads += grad_scale * d(mean loss)/d(params).
  // Returns the mean loss over non-ignored targets.
  virtual float forward_backward(const Batch& batch, float grad_scale, const StepContext& ctx) = 0;
  // Mean loss with no gradient and no dropout.
  virtual float forward_loss(const Batch& batch) = 0;
  // Logits of the last position of each row: out is (B, vocab_size).
  virtual void last_logits(const int32_t* tokens, int B, int T, float* out) = 0;

  // sqrt(sum of squared gradients) over the whole buffer.
  virtual float grad_norm() = 0;
  // One AdamW step on all parameters with grads multiplied by grad_multiplier first (clipping).
  // t is the 1-based step count for bias correction.
  virtual void adamw_step(const AdamWConfig& cfg, float lr, float grad_multiplier, int64_t t) = 0;

  // The whole step (TrainStep). Default: the separate calls above, in that order. CUDA with
  // BackendOptions::cuda_graph: captured once into a CUDA graph and replayed (the same kernels
  // in the same order, so the same bits), except while profiling or data-parallel.
  virtual TrainStepResult train_step(const TrainStep& step);
  // How train_step runs now, for logs: "graph", or "calls (<why not a graph>)".
  virtual std::string train_step_mode() const { return "calls (device.cuda_graph applies to the CUDA backend)"; }

  virtual MemoryReport memory() const = 0;
  // Returns once every call made so far has finished on the device (CPU: at once).
  virtual void synchronize() {}

  // Data-parallel training over comm's ranks (src/distributed/comm.h), for the rest of this
  // backend's life. forward_backward with ctx.sync_grads then leaves the mean gradient over
  // the ranks (with zero1: only this rank's ZeRO-1 shard of it, buckets.h); grad_norm is the
  // global norm; adamw_step updates the parameters identically on every rank (zero1: AdamW on
  // the shard, moments kept for the shard only, parameters all-gathered). Moments in
  // get/set_optimizer_state stay whole buffers, so checkpoints do not depend on the ranks;
  // with zero1 get_optimizer_state is collective. Default: refused.
  virtual void enable_data_parallel(Communicator& comm, bool zero1, size_t bucket_bytes);
  // Cached generation over this backend's current parameters (backend/generator.h);
  // allocates the KV cache, refusing one that does not fit. Must not outlive the backend.
  virtual std::unique_ptr<Generator> make_generator(const GeneratorOptions& opt) = 0;

  // Time per operation category (core/step_profile.h). Off by default; when off no call
  // is timed and nothing is synchronised. profile() waits for the timed work to finish
  // (CUDA: once, on the last event) and returns what accumulated since reset_profile().
  virtual void set_profiling(bool on) = 0;
  virtual StepProfile profile() const = 0;
  virtual void reset_profile() = 0;
};

struct BackendOptions {
  std::string device = "auto";     // auto | cpu | cuda
  std::string precision = "fp32";  // fp32 | tf32 | bf16 | fp8 (core/precision.h)
  AttentionOptions attention;
  int max_batch = 0, max_seq = 0;  // sizes to plan activation memory for
  int threads = 0;                 // CPU threads (0 = all cores)
  // Generation/evaluation only: the CUDA backend allocates no gradients, no optimizer state
  // and (bf16) no fp32 master copy, and refuses the training calls (the CPU backend ignores it).
  bool inference_only = false;
  // CUDA: train_step replays one captured CUDA graph (device.cuda_graph).
  bool cuda_graph = true;
  // CUDA: time cuBLASLt's candidate algorithms at each matmul shape's first call
  // (device.matmul_autotune).
  bool matmul_autotune = true;
};

// Creates the backend named by opts.device ("auto": resolve_device, core/device.h).
// Throws attn::Error for combinations a backend does not support.
std::unique_ptr<Backend> make_backend(const GPTConfig& model, const BackendOptions& opts);

}  // namespace attn
