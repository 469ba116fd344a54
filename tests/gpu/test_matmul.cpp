// cuBLASLt matmuls (CudaMatmul) against the float64 reference: bias, GELU (fused epilogue
// and the unfused path), input and weight gradients with the bias gradient.
#include <string>
#include <tuple>

#include <fmt/format.h>

#include "backend/cuda_matmul.h"
#include "core/error.h"
#include "kernels/kernels.h"
#include "reference.h"
#include "test_util.h"

namespace {

using tu::DevBuf;
using tu::Vec;

template <typename T>
class Matmul : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(Matmul, Types);

// (N, IC, OC) shapes of the model's linears with B=3, T=77, C=72, Vp=128; GELU on c_fc.
struct Shape {
  int N, IC, OC;
  bool bias, gelu;
};
const Shape kShapes[] = {{231, 72, 216, true, false},    // c_attn (H=6, Hkv=3, D=12)
                         {231, 72, 72, true, false},     // attn c_proj
                         {231, 72, 288, true, true},     // mlp c_fc + GELU
                         {231, 288, 72, true, false},    // mlp c_proj
                         {231, 72, 128, false, false},   // logits over the padded vocab
                         {231, 37, 101, true, true},     // odd sizes everywhere
                         {4096, 48, 40, true, false}};   // K of the weight gradient >> its output: split-K candidates

TYPED_TEST(Matmul, ForwardBackward) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  using E = attn::CudaMatmul::Epilogues;
  for (E epi : {E::All, E::NoGelu, E::None}) {
    const bool fuse = epi == E::All;
    const char* epi_name = epi == E::All ? " epilogues=all" : epi == E::NoGelu ? " epilogues=nogelu" : " epilogues=none";
    DevBuf<char> ws(attn::CudaMatmul::kWorkspaceBytes);
    attn::CudaMatmul mm(tu::dtype_of<T>(), epi, ws.get(), 0);
    for (const Shape& s : kShapes) {
      const std::string tag = std::string(" ") + tu::type_name<T>() + epi_name + " N=" +
                              std::to_string(s.N) + " IC=" + std::to_string(s.IC) + " OC=" + std::to_string(s.OC) +
                              (s.gelu ? " gelu" : "");
      const Vec x = tu::rounded<T>(tu::random_vec(static_cast<size_t>(s.N) * s.IC, 1));
      const Vec W = tu::rounded<T>(tu::random_vec(static_cast<size_t>(s.OC) * s.IC, 2, 0.2));
      const Vec b = tu::rounded<T>(tu::random_vec(s.OC, 3));
      const Vec dout = tu::rounded<T>(tu::random_vec(static_cast<size_t>(s.N) * s.OC, 4));
      Vec dW = tu::random_vec(W.size(), 5), db = tu::random_vec(s.OC, 6);
      DevBuf<T> d_x(x), d_W(W), d_b(b), d_out(dout.size()), d_pre(dout.size()), d_dout(dout), d_dx(x.size());
      DevBuf<float> d_dW(dW), d_db(db), scratch(attn::CudaMatmul::backward_weight_scratch_floats(s.N, s.OC));

      // forward
      mm.forward(d_out.get(), d_x.get(), d_W.get(), s.bias ? d_b.get() : nullptr, s.N, s.IC, s.OC,
                 s.gelu ? d_pre.get() : nullptr);
      Vec pre, out;
      ref::linear_forward(pre, x, W, s.bias ? b.data() : nullptr, s.N, s.IC, s.OC);
      out = pre;
      if (s.gelu)
        for (double& v : out) v = ref::gelu(v);
      // fused GELU in fp32: cuBLASLt's own GELU approximation; its error is printed (1e-4 bound)
      const double tol_out = (s.gelu && fuse && std::is_same_v<T, float>) ? 1e-4 : tu::tol<T>();
      EXPECT_REL(d_out.download(), out, tol_out, "forward out" + tag);
      if (s.gelu) EXPECT_REL(d_pre.download(), pre, tu::tol<T>(), "forward pre-gelu" + tag);

      // backward: dinp = dout W, dweight += dout^T x, dbias += colsum(dout)
      mm.backward_input(d_dx.get(), d_dout.get(), d_W.get(), s.N, s.IC, s.OC);
      Vec dx;
      ref::linear_backward(dx, dW.data(), s.bias ? db.data() : nullptr, dout, x, W, s.N, s.IC, s.OC);
      mm.backward_weight(d_dW.get(), s.bias ? d_db.get() : nullptr, d_dout.get(), d_x.get(), s.N, s.IC, s.OC,
                         scratch.get());
      EXPECT_REL(d_dx.download(), dx, tu::tol<T>(), "backward dinp" + tag);
      EXPECT_REL(d_dW.download(), dW, 1e-5, "backward dweight (fp32 acc)" + tag);
      if (s.bias) EXPECT_REL(d_db.download(), db, 1e-5, "backward dbias (fp32 acc)" + tag);
      // accumulate = false (a step's first backward): written over what dweight and dbias hold
      mm.backward_weight(d_dW.get(), s.bias ? d_db.get() : nullptr, d_dout.get(), d_x.get(), s.N, s.IC, s.OC,
                         scratch.get(), /*accumulate=*/false);
      Vec dW_new(dW.size(), 0.0), db_new(db.size(), 0.0), dx_new;
      ref::linear_backward(dx_new, dW_new.data(), s.bias ? db_new.data() : nullptr, dout, x, W, s.N, s.IC, s.OC);
      EXPECT_REL(d_dW.download(), dW_new, 1e-5, "backward dweight written" + tag);
      if (s.bias) EXPECT_REL(d_db.download(), db_new, 1e-5, "backward dbias written" + tag);

      // DGELU: dinp = (dout W) * gelu'(pre_in) with pre_in (N, IC) (the mlp c_proj backward)
      if (s.gelu) {
        const Vec pre_in = tu::rounded<T>(tu::random_vec(x.size(), 7, 1.5));
        DevBuf<T> d_pre_in(pre_in);
        mm.backward_input(d_dx.get(), d_dout.get(), d_W.get(), s.N, s.IC, s.OC, d_pre_in.get());
        Vec dxg = dx;
        for (size_t i = 0; i < dxg.size(); ++i) dxg[i] *= ref::gelu_grad(pre_in[i]);
        const double tol_g = (fuse && std::is_same_v<T, float>) ? 1e-4 : tu::tol<T>();
        EXPECT_REL(d_dx.download(), dxg, tol_g, "backward dinp * gelu'" + tag);
      }
    }
    for (const std::string& f : mm.fallbacks()) std::printf("    [note] %s fallback: %s\n", tu::type_name<T>(), f.c_str());
    // The checks above ran through the autotuned first calls (the accumulating dW of each shape
    // was timed several times and restored, else it would be off by whole multiples).
    std::printf("    [autotune] %s%s: %d shapes timed, %d changed the heuristic's pick\n", tu::type_name<T>(),
                epi_name, mm.autotuned_shapes(), mm.autotune_changes());
    EXPECT_GT(mm.autotuned_shapes(), 0) << epi_name;
  }
}

// forward_split_k_partials: partials[s] = x[:, slice s] W[:, slice s]^T in fp32, each slice
// against the float64 reference (GPT-2's c_proj at the decode step's 32 and 3 rows, 6 and 4
// slices; an odd N; a slice count that does not divide IC is refused).
TYPED_TEST(Matmul, SplitKPartials) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  DevBuf<char> ws(attn::CudaMatmul::kWorkspaceBytes);
  attn::CudaMatmul mm(tu::dtype_of<T>(), attn::CudaMatmul::Epilogues::All, ws.get(), 0);
  const std::tuple<int, int, int, int> shapes[] = {{32, 3072, 768, 6}, {3, 3072, 768, 4}, {7, 288, 72, 3}};
  for (const auto& [N, IC, OC, S] : shapes) {
    const Vec x = tu::rounded<T>(tu::random_vec(static_cast<size_t>(N) * IC, 41));
    const Vec W = tu::rounded<T>(tu::random_vec(static_cast<size_t>(OC) * IC, 42, 0.2));
    DevBuf<T> d_x(x), d_W(W);
    DevBuf<float> d_parts(static_cast<size_t>(S) * N * OC);
    mm.forward_split_k_partials(d_parts.get(), d_x.get(), d_W.get(), N, IC, OC, S);
    const Vec got = d_parts.download();
    const int k = IC / S;
    for (int s = 0; s < S; ++s) {
      Vec want(static_cast<size_t>(N) * OC, 0.0), part(static_cast<size_t>(N) * OC);
      for (int n = 0; n < N; ++n)
        for (int o = 0; o < OC; ++o) {
          double acc = 0.0;
          for (int i = s * k; i < (s + 1) * k; ++i) acc += x[static_cast<size_t>(n) * IC + i] * W[static_cast<size_t>(o) * IC + i];
          want[static_cast<size_t>(n) * OC + o] = acc;
          part[static_cast<size_t>(n) * OC + o] = got[(static_cast<size_t>(s) * N + n) * OC + o];
        }
      EXPECT_REL(part, want, 1e-5, fmt::format(" {} N={} IC={} OC={} slice {} of {}", tu::type_name<T>(), N, IC, OC, s, S));
    }
  }
  DevBuf<float> d_parts(1024);
  DevBuf<T> d_x(1024), d_W(1024);
  EXPECT_THROW(mm.forward_split_k_partials(d_parts.get(), d_x.get(), d_W.get(), 1, 72, 8, 5), attn::Error);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

// tf32 (device.precision = "tf32"): fp32 buffers, CUBLAS_COMPUTE_32F_FAST_TF32. Each operand is
// rounded to TF32's 10-bit mantissa (relative error <= u = 2^-11), so a product is off by up
// to 2u; with independent roundings (uniform in [-u, u]) the normwise error of a K-term matmul
// is ~sqrt(2/3) u ~ 0.8u. Bounds: within 2u, and at least u/4 (else TF32 is off); fp32 stays
// at fp32 rounding (else TF32 is on there too).
TEST(MatmulTf32, ForwardAndGradientsAtTf32Rounding) {
  SKIP_WITHOUT_GPU();
  using E = attn::CudaMatmul::Epilogues;
  constexpr double u = 0x1p-11;
  const int N = 256, IC = 256, OC = 192;
  const Vec x = tu::random_vec(static_cast<size_t>(N) * IC, 1), W = tu::random_vec(static_cast<size_t>(OC) * IC, 2);
  const Vec dout = tu::random_vec(static_cast<size_t>(N) * OC, 4);
  Vec out, dx, dW(W.size(), 0.0);
  ref::linear_forward(out, x, W, nullptr, N, IC, OC);
  ref::linear_backward(dx, dW.data(), nullptr, dout, x, W, N, IC, OC);
  DevBuf<char> ws(attn::CudaMatmul::kWorkspaceBytes);
  for (const bool tf32 : {false, true}) {
    attn::CudaMatmul mm(attn::DType::F32, E::NoGelu, ws.get(), 0, attn::CudaMatmul::kWorkspaceBytes, tf32);
    EXPECT_EQ(mm.tf32(), tf32);
    DevBuf<float> d_x(x), d_W(W), d_dout(dout), d_out(out.size()), d_dx(x.size()), d_dW(Vec(W.size(), 0.0));
    DevBuf<float> scratch(attn::CudaMatmul::backward_weight_scratch_floats(N, OC));
    mm.forward(d_out.get(), d_x.get(), d_W.get(), nullptr, N, IC, OC);
    mm.backward_input(d_dx.get(), d_dout.get(), d_W.get(), N, IC, OC);
    mm.backward_weight(d_dW.get(), nullptr, d_dout.get(), d_x.get(), N, IC, OC, scratch.get());
    const char* mode = tf32 ? "tf32 " : "fp32 ";
    for (const auto& [got, want, what] :
         {std::tuple{d_out.download(), out, "forward"}, std::tuple{d_dx.download(), dx, "dinp"},
          std::tuple{d_dW.download(), dW, "dweight"}}) {
      const double e = tu::rel_err(got, want);
      std::printf("    [rel] %s%-10s %.3e\n", mode, what, e);
      if (tf32) {
        EXPECT_LE(e, 2 * u) << what;
        EXPECT_GE(e, u / 4) << what << ": TF32 rounding is off";
      } else {
        EXPECT_LE(e, u / 64) << what << ": fp32 matmul at TF32-sized error";
      }
    }
  }
}

}  // namespace
