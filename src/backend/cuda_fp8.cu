#include "backend/cuda_fp8.h"

#include <algorithm>

#include "core/arena_plan.h"
#include "core/cuda_check.h"
#include "core/error.h"
#include "kernels/kernels.h"

namespace attn {

namespace {
kern::Fp8Format format_of(int role) {
  return role == CudaFp8Linears::GradOutput ? kern::Fp8Format::E5M2 : kern::Fp8Format::E4M3;
}
}  // namespace

CudaFp8Linears::CudaFp8Linears(int n_linears, int max_rows, int max_in, int max_out, CudaMatmul& matmul,
                               CudaAllocator& mem, CudaOpTimer& timer, cudaStream_t stream)
    : n_linears_(n_linears),
      max_rows_(max_rows),
      max_in_(max_in),
      max_out_(max_out),
      matmul_(matmul),
      timer_(timer),
      stream_(stream) {
  ATTN_CHECK(n_linears >= 1 && max_rows >= 1 && max_in >= 1 && max_out >= 1, "fp8 linears: empty shape");
  scales_.n = n_linears * kRoles, scales_.history = kHistory;
  const size_t floats = kern::Fp8ScaleState::floats(scales_.n, kHistory);
  scales_.base = mem.allocate_n<float>(floats, MemCategory::Workspace);
  // scale 1 until a tensor's first cast sets it from its amax; empty histories
  ATTN_CHECK(floats > 0, "fp8 scale state: history {} does not fit a record", kHistory);
  std::vector<float> init(floats, 0.0f);
  const kern::Fp8ScaleState host{init.data(), scales_.n, kHistory};
  for (int t = 0; t < scales_.n; ++t) {
    *host.scale(t) = *host.scale_inv(t) = 1.0f;
    *host.max(t) = kern::fp8_max(format_of(t % kRoles));
  }
  CUDA_CHECK(cudaMemcpyAsync(scales_.base, init.data(), floats * sizeof(float), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  seen_.assign(scales_.n, 0);
}

size_t CudaFp8Linears::scratch_bytes() const {
  const size_t in = static_cast<size_t>(max_rows_) * max_in_, w = static_cast<size_t>(max_in_) * max_out_,
               out = static_cast<size_t>(max_rows_) * max_out_;
  ArenaPlan plan;
  plan.add(in), plan.add(w), plan.add(out), plan.add(out);
  plan.add(kern::fp8_column_partials_floats(max_rows_, max_out_) * sizeof(float));
  return plan.bytes();
}

void CudaFp8Linears::set_scratch(void* scratch) {
  const size_t in = static_cast<size_t>(max_rows_) * max_in_, w = static_cast<size_t>(max_in_) * max_out_,
               out = static_cast<size_t>(max_rows_) * max_out_;
  ArenaPlan plan;
  const size_t a = plan.add(in), b = plan.add(w), c = plan.add(out), d = plan.add(out);
  const size_t e = plan.add(kern::fp8_column_partials_floats(max_rows_, max_out_) * sizeof(float));
  char* base = static_cast<char*>(scratch);
  x_q_ = base + a, w_q_ = base + b, dy_q_ = base + c, dy_t_ = base + d;
  dy_partials_ = reinterpret_cast<float*>(base + e);
}

CudaMatmul::Fp8Operand CudaFp8Linears::operand(const void* data, int t) const {
  return CudaMatmul::Fp8Operand{data, format_of(t % kRoles) == kern::Fp8Format::E5M2, scales_.scale_inv(t)};
}

void CudaFp8Linears::cast(int t, void* q, void* q_t, const bf16* x, int rows, int cols, const char* name,
                          const bf16* gelu_in, float* column_partials, bool gelu_of_x) {
  const size_t n = static_cast<size_t>(rows) * cols;
  const double bytes = n * (2.0 + (q ? 1.0 : 0.0) + (q_t ? 1.0 : 0.0) + (gelu_in ? 2.0 : 0.0));
  timer_.time(OpTag(OpCategory::Fp8Cast, name, 0, bytes), [&] {
    if (!seen_[t]) {  // first cast of this tensor: its own amax sets the scale
      if (gelu_in || gelu_of_x) {  // (the amax of a GELU's gradient or output: a pass that writes nothing but it)
        kern::fp8_cast_transpose(nullptr, nullptr, x, rows, cols, format_of(t % kRoles), scales_.scale(t),
                                 scales_.amax_history(t), stream_, gelu_in, nullptr, gelu_of_x);
      } else {
        kern::fp8_amax(x, n, scales_.amax_history(t), stream_);
      }
      kern::fp8_update_scales(scales_, t, 1, /*roll=*/false, stream_);
      seen_[t] = 1;
    }
    if (q_t || gelu_in || column_partials || gelu_of_x)
      kern::fp8_cast_transpose(q, q_t, x, rows, cols, format_of(t % kRoles), scales_.scale(t),
                               scales_.amax_history(t), stream_, gelu_in, column_partials, gelu_of_x);
    else
      kern::fp8_cast(q, x, n, format_of(t % kRoles), scales_.scale(t), scales_.amax_history(t), stream_);
  });
}

void CudaFp8Linears::forward(int linear, bf16* out, const bf16* inp, const bf16* weight, const bf16* bias, int N,
                             int IC, int OC, const char* name, void* inp_t, bool gelu_of_inp) {
  ATTN_CHECK(linear >= 0 && linear < n_linears_ && N <= max_rows_ && IC <= max_in_ && OC <= max_out_ &&
                 supports(N, IC, OC),
             "fp8 linear {}: ({} x {}) @ ({} x {})^T outside its plan or not multiples of 16", linear, N, IC, OC, IC);
  const int tx = tensor(linear, Input), tw = tensor(linear, Weight);
  const char* cast_name = gelu_of_inp ? (inp_t ? "fp8 cast gelu+x+x^T" : "fp8 cast gelu+x")
                                      : (inp_t ? "fp8 cast x+x^T" : "fp8 cast x");
  cast(tx, x_q_, inp_t, inp, N, IC, cast_name, nullptr, nullptr, gelu_of_inp);
  cast(tw, w_q_, nullptr, weight, OC, IC, "fp8 cast W");
  timer_.time(OpTag(OpCategory::Matmul, name, 2.0 * N * IC * OC), [&] {
    matmul_.fp8_matmul(out, DType::BF16, operand(x_q_, tx), operand(w_q_, tw), N, OC, IC, 0.0f, bias);
  });
}

void CudaFp8Linears::backward(int linear, bf16* dinp, float* dweight, float* dbias, const bf16* dout, const bf16* inp,
                              const bf16* weight, int N, int IC, int OC, const bf16* dout_gelu_input,
                              const char* wgrad_name, const char* dgrad_name, const void* inp_t) {
  ATTN_CHECK(linear >= 0 && linear < n_linears_ && N <= max_rows_ && IC <= max_in_ && OC <= max_out_ &&
                 supports(N, IC, OC),
             "fp8 linear {}: backward of ({} x {}) @ ({} x {})^T outside its plan or not multiples of 16", linear, N,
             IC, OC, IC);
  const int tx = tensor(linear, Input), tw = tensor(linear, Weight), tg = tensor(linear, GradOutput);
  // dy (and its dGELU, and its column sums for the bias) in one pass over dout
  cast(tg, dy_q_, dy_t_, dout, N, OC, dout_gelu_input ? "fp8 cast dgelu+dy+dy^T" : "fp8 cast dy+dy^T",
       dout_gelu_input, dbias ? dy_partials_ : nullptr);
  if (dbias)
    timer_.time(OpTag(OpCategory::Matmul, "fp8 bias grad", 0, 4.0 * kern::fp8_column_partials_floats(N, OC)),
                [&] { kern::fp8_add_column_sums(dbias, dy_partials_, N, OC, stream_); });
  if (!inp_t) {  // the forward kept no x^T: cast the bf16 x again (the same scale, so the same bytes)
    ATTN_CHECK(inp != nullptr, "fp8 linear {}: backward without its input or the input's transpose", linear);
    cast(tx, nullptr, x_q_, inp, N, IC, "fp8 cast x^T");
    inp_t = x_q_;
  }
  // wgrad: dW (OC, IC) += dy^T (OC, N) . (x^T (IC, N))^T
  timer_.time(OpTag(OpCategory::Matmul, wgrad_name, 2.0 * N * IC * OC), [&] {
    matmul_.fp8_matmul(dweight, DType::F32, operand(dy_t_, tg), operand(inp_t, tx), OC, IC, N, 1.0f);
  });
  cast(tw, nullptr, w_q_, weight, OC, IC, "fp8 cast W^T");
  // dgrad: dx (N, IC) = dy (N, OC) . (W^T (IC, OC))^T
  timer_.time(OpTag(OpCategory::Matmul, dgrad_name, 2.0 * N * IC * OC), [&] {
    matmul_.fp8_matmul(dinp, DType::BF16, operand(dy_q_, tg), operand(w_q_, tw), N, IC, OC, 0.0f);
  });
}

void CudaFp8Linears::update_scales() {
  timer_.time(OpTag(OpCategory::Fp8Cast, "fp8 scale update"),
              [&] { kern::fp8_update_scales(scales_, 0, scales_.n, /*roll=*/true, stream_); });
}

std::vector<float> CudaFp8Linears::state() const {
  const size_t floats = kern::Fp8ScaleState::floats(scales_.n, kHistory);
  std::vector<float> s = {kStateVersion, static_cast<float>(scales_.n), static_cast<float>(kHistory)};
  s.resize(3 + floats + scales_.n);
  CUDA_CHECK(cudaMemcpyAsync(s.data() + 3, scales_.base, floats * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (int t = 0; t < scales_.n; ++t) s[3 + floats + t] = seen_[t] ? 1.0f : 0.0f;
  return s;
}

void CudaFp8Linears::set_state(const std::vector<float>& s) {
  const size_t floats = kern::Fp8ScaleState::floats(scales_.n, kHistory);
  ATTN_CHECK(s.size() == 3 + floats + scales_.n && s[0] == kStateVersion && s[1] == static_cast<float>(scales_.n) &&
                 s[2] == static_cast<float>(kHistory),
             "fp8 scaling state: {} floats for {} tensors x history {} (version {}), this model needs {} tensors x {} "
             "(version {})",
             s.size(), s.size() > 1 ? s[1] : 0.0f, s.size() > 2 ? s[2] : 0.0f, s.empty() ? 0.0f : s[0], scales_.n,
             kHistory, kStateVersion);
  CUDA_CHECK(cudaMemcpyAsync(scales_.base, s.data() + 3, floats * sizeof(float), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (int t = 0; t < scales_.n; ++t) seen_[t] = s[3 + floats + t] != 0.0f;
}

}  // namespace attn
