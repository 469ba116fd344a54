// device.precision = "tf32" on the CUDA backend against the fp32 CPU backend: one GPT
// forward+backward on the same parameters and batch, for both attentions (naive: its GEMMs
// in TF32 too; flash: its 1xTF32 kernels; fp32 flash runs 3xTF32, within the fp32 bound).
//
// The bounds, from TF32's 10-bit mantissa: every matmul operand is rounded to nearest with
// relative error |d| <= u = 2^-11 (accumulation stays fp32). A product a b of rounded operands
// is off by a b (d_a + d_b), at most 2u. Normwise over one matmul with independent roundings
// (d uniform in [-u, u], variance u^2 / 3) the error is ~sqrt(2/3) u ~ 0.8u, with 2u as the
// worst case. The deepest gradient chain of this 2-layer model crosses ~30 matmuls (forward:
// 2 x (4 linear + 2 attention GEMMs) + lm_head; backward: lm_head + 2 x (4 + 4)), and first-
// order errors add: at most 30 x 2u = 60u, so tf32 must be within 64u = 2^-5 (every tensor).
// TF32 silently off: the whole gradient would match fp32, so it must be off by >= u/4 (a
// single TF32 matmul alone gives ~0.8u). TF32 silently on in fp32: fp32 must stay within
// u/8 over the whole gradient (each tensor: the fp32 parity tol 1e-4) and 4x below tf32.
#include <cmath>
#include <string>

#include "backend/backend.h"
#include "backend/cuda_backend.h"
#include "backend_parity.h"
#include "test_util.h"

namespace {

using tu::Vec;

constexpr double kU = 0x1p-11;  // TF32 unit roundoff

// head_dim 64 (the flash kernels' size), GQA; dims multiples of 64 so that cuBLASLt takes its
// tensor-core kernels.
attn::GPTConfig tf32_config() {
  attn::GPTConfig c;
  c.vocab_size = 101, c.padded_vocab_size = 128, c.block_size = 64;
  c.n_layer = 2, c.n_head = 4, c.n_kv_head = 2, c.n_embd = 256;
  return c;
}

std::unique_ptr<attn::Backend> backend(const std::string& device, const std::string& precision,
                                       const std::string& impl) {
  return tu::parity_backend(tf32_config(), device, precision, impl);
}

// Runs one step on cpu and gpu (expect_loss_and_grads_match with tol per tensor) and returns
// the relative error of the whole gradient vector.
double step_error(attn::Backend& cpu, attn::Backend& gpu, double tol, const std::string& what) {
  const int B = 3, T = 64;
  std::mt19937_64 g(5);
  std::vector<int32_t> x(B * T), y(B * T);
  for (auto& v : x) v = static_cast<int32_t>(g() % 101);
  for (auto& v : y) v = static_cast<int32_t>(g() % 101);
  tu::expect_loss_and_grads_match(cpu, gpu, attn::Batch{x.data(), y.data(), B, T}, attn::StepContext{7, 3, 0, true},
                                  tol, what);
  std::vector<float> gc(cpu.layout().total()), gg(gc.size());
  cpu.get_grads(gc.data());
  gpu.get_grads(gg.data());
  const double e = tu::rel_err(Vec(gg.begin(), gg.end()), Vec(gc.begin(), gc.end()));
  std::printf("    [rel] %-40s %.3e\n", (what + " whole gradient").c_str(), e);
  return e;
}

class Tf32 : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Attention, Tf32, ::testing::Values("naive", "flash"));

TEST_P(Tf32, StepWithinTheTf32BoundAndLooserThanFp32) {
  SKIP_WITHOUT_GPU();
  const std::string impl = GetParam();
  auto cpu = backend("cpu", "fp32", impl);
  auto fp32 = backend("cuda", "fp32", impl);
  auto tf32 = backend("cuda", "tf32", impl);
  tu::set_same_initial_params(*cpu, *fp32);
  tu::set_same_initial_params(*cpu, *tf32);
  const double e_fp32 = step_error(*cpu, *fp32, 1e-4, "fp32 " + impl);  // per tensor: the fp32 parity tol
  const double e_tf32 = step_error(*cpu, *tf32, 64 * kU, "tf32 " + impl);
  EXPECT_GE(e_tf32, kU / 4) << "tf32 " << impl << " matches fp32 too closely: TF32 matmuls are off";
  EXPECT_LE(e_fp32, kU / 8) << "fp32 " << impl << " is off by a TF32-sized error: TF32 is on in fp32";
  EXPECT_LT(4 * e_fp32, e_tf32) << impl;
}

}  // namespace
