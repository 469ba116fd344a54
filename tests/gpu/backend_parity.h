// The CUDA backend against the CPU backend on the same model: both start from the same
// GPT-2 initialisation, run forward+backward on the same batch, and must agree on the loss
// and every parameter gradient to a relative error (rel_err, test_util.h) of `tol`.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/param_layout.h"
#include "test_util.h"

namespace tu {

// A backend of the parity tests (batch <= 3, the config's block size); the cpu one always runs
// the reference attention (naive), the cuda one `impl`.
inline std::unique_ptr<attn::Backend> parity_backend(const attn::GPTConfig& cfg, const std::string& device,
                                                     const std::string& precision, const std::string& impl) {
  attn::BackendOptions o;
  o.device = device, o.precision = precision, o.max_batch = 3, o.max_seq = cfg.block_size, o.threads = 2;
  o.attention.impl = device == "cpu" ? "naive" : impl;
  return attn::make_backend(cfg, o);
}

// Loads one GPT-2 initialisation (seed 1) into both backends; returns it.
inline std::vector<float> set_same_initial_params(attn::Backend& cpu, attn::Backend& gpu) {
  const attn::ParamLayout& layout = cpu.layout();
  std::vector<float> params(layout.total());
  attn::init_gpt2_params(layout, 1, params.data());
  cpu.set_params(params.data());
  gpu.set_params(params.data());
  return params;
}

// Zeroes both gradients, runs forward+backward on `batch` and expects the losses and each
// parameter tensor's gradient to agree within tol (messages start with `what`).
inline void expect_loss_and_grads_match(attn::Backend& cpu, attn::Backend& gpu, const attn::Batch& batch,
                                        const attn::StepContext& ctx, double tol, const std::string& what) {
  const attn::ParamLayout& layout = cpu.layout();
  cpu.zero_grad();
  gpu.zero_grad();
  const float lc = cpu.forward_backward(batch, 1.0f, ctx);
  const float lg = gpu.forward_backward(batch, 1.0f, ctx);
  EXPECT_REL(Vec{lg}, Vec{lc}, tol, what + " loss vs cpu");
  std::vector<float> gc(layout.total()), gg(layout.total());
  cpu.get_grads(gc.data());
  gpu.get_grads(gg.data());
  for (const attn::ParamTensor& t : layout.tensors()) {
    const Vec a(gg.begin() + t.offset, gg.begin() + t.offset + t.numel);
    const Vec b(gc.begin() + t.offset, gc.begin() + t.offset + t.numel);
    EXPECT_REL(a, b, tol, what + " grad " + t.name);
  }
}

}  // namespace tu
