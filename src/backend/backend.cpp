#include "backend/backend.h"

#include "backend/cpu_backend.h"
#include "core/device.h"
#include "core/error.h"
#include "core/grad_clip.h"
#if defined(ATTN_WITH_CUDA)
#include "backend/cuda_backend.h"
#endif

namespace attn {

void Backend::enable_data_parallel(Communicator&, bool, size_t) {
  fail("the {} backend does not support data-parallel training (distributed.nproc > 1)", name());
}

TrainStepResult Backend::train_step(const TrainStep& step) {
  ATTN_CHECK(!step.micro_batches.empty() && step.contexts.size() == step.micro_batches.size(),
             "train_step: {} micro-batches and {} contexts (one each, at least one)", step.micro_batches.size(),
             step.contexts.size());
  TrainStepResult r;
  zero_grad();
  for (size_t m = 0; m < step.micro_batches.size(); ++m)
    r.losses.push_back(forward_backward(step.micro_batches[m], step.grad_scale, step.contexts[m]));
  r.norm = grad_norm();
  adamw_step(step.adamw, step.lr, grad_clip_multiplier(r.norm, step.grad_clip), step.t);
  return r;
}

std::unique_ptr<Backend> make_backend(const GPTConfig& model, const BackendOptions& opts) {
  const std::string device = resolve_device(opts.device);
  if (device == "cpu") return make_cpu_backend(model, opts);
  if (device == "cuda") {
#if defined(ATTN_WITH_CUDA)
    ATTN_CHECK(cuda_device_count() > 0, "device.backend = \"cuda\" but no CUDA device is visible");
    return make_cuda_backend(model, opts);
#else
    fail("device.backend = \"cuda\" but this binary was built without CUDA (nvcc was not found)");
#endif
  }
  fail("device.backend: unknown backend '{}' (expected auto, cpu or cuda)", device);
}

}  // namespace attn
