// cuBLASLt matmuls (CudaMatmul) against the float64 reference: bias, GELU (fused epilogue
// and the unfused path), input and weight gradients with the bias gradient.
#include <string>

#include "backend/cuda_matmul.h"
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
                         {231, 37, 101, true, true}};    // odd sizes everywhere

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
  }
}

}  // namespace
