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

kern::Fp8ScaleState allocate_fp8_scale_state(CudaAllocator& mem, const std::vector<kern::Fp8Format>& formats,
                                             int history, cudaStream_t stream) {
  kern::Fp8ScaleState s;
  s.n = static_cast<int>(formats.size()), s.history = history;
  const size_t floats = kern::Fp8ScaleState::floats(s.n, history);
  ATTN_CHECK(s.n >= 1 && floats > 0, "fp8 scale state: {} tensors, history {} (must fit a record)", s.n, history);
  s.base = mem.allocate_n<float>(floats, MemCategory::Workspace);
  std::vector<float> init(floats, 0.0f);
  const kern::Fp8ScaleState host{init.data(), s.n, history};
  for (int t = 0; t < s.n; ++t) {
    *host.scale(t) = *host.scale_inv(t) = 1.0f;
    *host.max(t) = kern::fp8_max(formats[t]);
  }
  CUDA_CHECK(cudaMemcpyAsync(s.base, init.data(), floats * sizeof(float), cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));  // (init is pageable)
  return s;
}

CudaFp8Linears::CudaFp8Linears(const std::vector<LinearWeight>& weights, int max_rows, CudaMatmul& matmul,
                               CudaAllocator& mem, CudaOpTimer& timer, cudaStream_t stream)
    : weights_(weights),
      n_linears_(static_cast<int>(weights.size())),
      max_rows_(max_rows),
      matmul_(matmul),
      timer_(timer),
      stream_(stream) {
  ATTN_CHECK(n_linears_ >= 1 && max_rows >= 1, "fp8 linears: {} linears, {} rows", n_linears_, max_rows);
  for (const LinearWeight& w : weights_) {
    ATTN_CHECK(w.data != nullptr && w.out >= 1 && w.in >= 1, "fp8 linears: a weight without data or shape");
    max_in_ = std::max(max_in_, w.in), max_out_ = std::max(max_out_, w.out);
  }
  std::vector<kern::Fp8Format> formats(static_cast<size_t>(n_linears_) * kRoles);
  for (size_t t = 0; t < formats.size(); ++t) formats[t] = format_of(static_cast<int>(t % kRoles));
  scales_ = allocate_fp8_scale_state(mem, formats, kHistory, stream_);
  jobs_ = mem.allocate_n<kern::Fp8CastJob>(weights_.size(), MemCategory::Workspace);
  seen_.assign(scales_.n, 0);
}

CudaFp8Linears::ScratchPlan CudaFp8Linears::plan(int group) const {
  ATTN_CHECK(group >= 1 && group <= kern::kFp8CastManyMaxJobs,
             "fp8 linears: weights cast {} at a time (1 to {} per launch)", group, kern::kFp8CastManyMaxJobs);
  const size_t in = static_cast<size_t>(max_rows_) * max_in_, out = static_cast<size_t>(max_rows_) * max_out_;
  ArenaPlan arena;
  ScratchPlan p;
  p.x = arena.add(in), p.dy = arena.add(out), p.dy_t = arena.add(out);
  p.partials = arena.add(kern::fp8_column_partials_floats(max_rows_, max_out_) * sizeof(float));
  // the weight slots: each group's weights side by side, every group from the same start
  p.slot.resize(weights_.size());
  size_t widest = 0;
  for (int first = 0; first < n_linears_; first += group) {
    ArenaPlan slots;
    for (int i = first; i < std::min(n_linears_, first + group); ++i)
      p.slot[i] = slots.add(static_cast<size_t>(weights_[i].out) * weights_[i].in);
    widest = std::max(widest, slots.bytes());
  }
  p.weights = arena.add(widest);
  p.bytes = arena.bytes();
  return p;
}

size_t CudaFp8Linears::scratch_bytes(int group) const { return plan(group).bytes; }

// Also the weight casts' job table: per linear its weight, its slot, its scale and amax, its
// first tile within its group's launch.
void CudaFp8Linears::set_scratch(void* scratch, int group) {
  const ScratchPlan p = plan(group);
  char* base = static_cast<char*>(scratch);
  x_q_ = base + p.x, dy_q_ = base + p.dy, dy_t_ = base + p.dy_t;
  dy_partials_ = reinterpret_cast<float*>(base + p.partials);
  group_ = group;
  host_jobs_.assign(weights_.size(), kern::Fp8CastJob{});
  group_tiles_.assign(groups(), 0);
  for (int i = 0; i < n_linears_; ++i) {
    const LinearWeight& w = weights_[i];
    const int t = tensor(i, Weight);
    int& tiles = group_tiles_[i / group_];
    host_jobs_[i] = kern::Fp8CastJob{w.data, base + p.weights + p.slot[i], scales_.scale(t), scales_.amax_history(t),
                                     w.out, w.in, tiles};
    tiles += kern::fp8_cast_tiles(w.out, w.in);
  }
  CUDA_CHECK(cudaMemcpyAsync(jobs_, host_jobs_.data(), host_jobs_.size() * sizeof(kern::Fp8CastJob),
                             cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));  // (host_jobs_ is pageable)
  cast_group_ = CastGroup{};
}

CudaMatmul::Fp8Operand CudaFp8Linears::operand(const void* data, int t) const {
  return CudaMatmul::Fp8Operand{data, format_of(t % kRoles) == kern::Fp8Format::E5M2, scales_.scale_inv(t)};
}

void CudaFp8Linears::cast(int t, void* q, void* q_t, const bf16* x, int rows, int cols, const char* name,
                          const bf16* gelu_in, float* column_partials, bool gelu_of_x, const bf16* gelu_bias) {
  const size_t n = static_cast<size_t>(rows) * cols;
  const double bytes = n * (2.0 + (q ? 1.0 : 0.0) + (q_t ? 1.0 : 0.0) + (gelu_in ? 2.0 : 0.0));
  timer_.time(OpTag(OpCategory::Fp8Cast, name, 0, bytes), [&] {
    if (!seen_[t]) {  // first cast of this tensor: its own amax sets the scale
      check_not_capturing(t);
      if (gelu_in || gelu_of_x) {  // (the amax of a GELU's gradient or output: a pass that writes nothing but it)
        kern::fp8_cast_transpose(nullptr, nullptr, x, rows, cols, format_of(t % kRoles), scales_.scale(t),
                                 scales_.amax_history(t), stream_, gelu_in, nullptr, gelu_of_x, gelu_bias);
      } else {
        kern::fp8_amax(x, n, scales_.amax_history(t), stream_);
      }
      kern::fp8_update_scales(scales_, t, 1, /*roll=*/false, stream_);
      seen_[t] = 1;
    }
    if (q_t || gelu_in || column_partials || gelu_of_x)
      kern::fp8_cast_transpose(q, q_t, x, rows, cols, format_of(t % kRoles), scales_.scale(t),
                               scales_.amax_history(t), stream_, gelu_in, column_partials, gelu_of_x, gelu_bias);
    else
      kern::fp8_cast(q, x, n, format_of(t % kRoles), scales_.scale(t), scales_.amax_history(t), stream_);
  });
}

const void* CudaFp8Linears::weight_copy(int linear, bool transposed) {
  const int g = linear / group_;
  const int first = g * group_, last = std::min(n_linears_, first + group_) - 1;
  if (linear == (transposed ? last : first)) cast_weights(g, transposed);
  ATTN_CHECK(cast_group_.group == g && cast_group_.transposed == transposed,
             "fp8 linear {}: its weight's fp8 {} was not cast (a {} pass opens each group of {} linears at linear {})",
             linear, transposed ? "W^T" : "W", transposed ? "backward" : "forward", group_, transposed ? last : first);
  return host_jobs_[linear].q;
}

void CudaFp8Linears::cast_weights(int g, bool transposed) {
  const int first = g * group_, count = std::min(n_linears_, first + group_) - first;
  double bytes = 0;
  for (int i = first; i < first + count; ++i) bytes += 3.0 * weights_[i].out * weights_[i].in;
  timer_.time(OpTag(OpCategory::Fp8Cast, transposed ? "fp8 cast W^T" : "fp8 cast W", 0, bytes), [&] {
    bool unseen = false;
    for (int i = first; i < first + count; ++i) unseen |= !seen_[tensor(i, Weight)];
    if (unseen) {  // first cast of (some of) these weights: their own amax sets their scale
      check_not_capturing(tensor(first, Weight));
      kern::fp8_cast_many(jobs_ + first, count, group_tiles_[g], kern::Fp8Format::E4M3, kern::Fp8CastLayout::AmaxOnly,
                          stream_);
      for (int i = first; i < first + count; ++i) {
        const int t = tensor(i, Weight);
        if (seen_[t]) continue;  // (its slot 0 got the amax its cast records anyway)
        kern::fp8_update_scales(scales_, t, 1, /*roll=*/false, stream_);
        seen_[t] = 1;
      }
    }
    kern::fp8_cast_many(jobs_ + first, count, group_tiles_[g], kern::Fp8Format::E4M3,
                        transposed ? kern::Fp8CastLayout::Transposed : kern::Fp8CastLayout::RowMajor, stream_);
  });
  cast_group_ = CastGroup{g, transposed};
}

void CudaFp8Linears::check_shape(int linear, int N, const char* pass) const {
  ATTN_CHECK(linear >= 0 && linear < n_linears_ && x_q_ != nullptr, "fp8 linear {} of {} (scratch set: {})", linear,
             n_linears_, x_q_ != nullptr);
  const int IC = weights_[linear].in, OC = weights_[linear].out;
  ATTN_CHECK(N <= max_rows_ && supports(N, IC, OC),
             "fp8 linear {}: {} of ({} x {}) @ ({} x {})^T outside its plan or not multiples of 16", linear, pass, N,
             IC, OC, IC);
}

void CudaFp8Linears::check_not_capturing(int t) const {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream_, &capture));
  ATTN_CHECK(capture == cudaStreamCaptureStatusNone,
             "fp8 tensor {}: its first cast (its scale from its own amax) inside a CUDA graph capture, where every "
             "replay would repeat it (the uncaptured step before a capture casts every tensor)",
             t);
}

void CudaFp8Linears::forward_matmul(int linear, bf16* out, const void* w_q, const bf16* bias, int N, const char* name) {
  const int IC = weights_[linear].in, OC = weights_[linear].out;
  timer_.time(OpTag(OpCategory::Matmul, name, 2.0 * N * IC * OC), [&] {
    matmul_.fp8_matmul(out, DType::BF16, operand(x_q_, tensor(linear, Input)), operand(w_q, tensor(linear, Weight)),
                       N, OC, IC, 0.0f, bias, kForwardFastAccum);
  });
}

void CudaFp8Linears::forward(int linear, bf16* out, const bf16* inp, const bf16* bias, int N, const char* name,
                             void* inp_t, bool gelu_of_inp, const bf16* gelu_bias) {
  ATTN_CHECK(!gelu_bias || gelu_of_inp, "fp8 linear {}: a GELU bias without the GELU", linear);
  check_shape(linear, N, "forward");
  const void* w_q = weight_copy(linear, /*transposed=*/false);
  const char* cast_name = gelu_of_inp ? (inp_t ? "fp8 cast gelu+x+x^T" : "fp8 cast gelu+x")
                                      : (inp_t ? "fp8 cast x+x^T" : "fp8 cast x");
  cast(tensor(linear, Input), x_q_, inp_t, inp, N, weights_[linear].in, cast_name, nullptr, nullptr, gelu_of_inp,
       gelu_bias);
  forward_matmul(linear, out, w_q, bias, N, name);
}

kern::Fp8CastTarget CudaFp8Linears::input_target(int linear, int N, void* inp_t) const {
  check_shape(linear, N, "input cast by its producer");
  const int t = tensor(linear, Input);
  ATTN_CHECK(seen_[t] && inp_t != nullptr,
             "fp8 linear {}: its input cast by its producer before its first cast (scale known: {}) or without x^T",
             linear, seen_[t] != 0);
  return kern::Fp8CastTarget{x_q_, inp_t, scales_.scale(t), scales_.amax_history(t)};
}

void CudaFp8Linears::forward_precast(int linear, bf16* out, const bf16* bias, int N, const char* name) {
  check_shape(linear, N, "forward");
  ATTN_CHECK(input_scaled(linear), "fp8 linear {}: a forward on a pre-cast input before the input's first cast",
             linear);
  forward_matmul(linear, out, weight_copy(linear, /*transposed=*/false), bias, N, name);
}

void CudaFp8Linears::backward(int linear, bf16* dinp, float* dweight, float* dbias, const bf16* dout, const bf16* inp,
                              int N, const bf16* dout_gelu_input, const char* wgrad_name, const char* dgrad_name,
                              const void* inp_t, const bf16* gelu_bias) {
  ATTN_CHECK(!gelu_bias || dout_gelu_input, "fp8 linear {}: a GELU bias without the dGELU", linear);
  check_shape(linear, N, "backward");
  const int IC = weights_[linear].in, OC = weights_[linear].out;
  const int tx = tensor(linear, Input), tw = tensor(linear, Weight), tg = tensor(linear, GradOutput);
  const void* w_t = weight_copy(linear, /*transposed=*/true);
  // dy (and its dGELU, and its column sums for the bias) in one pass over dout
  cast(tg, dy_q_, dy_t_, dout, N, OC, dout_gelu_input ? "fp8 cast dgelu+dy+dy^T" : "fp8 cast dy+dy^T",
       dout_gelu_input, dbias ? dy_partials_ : nullptr, false, gelu_bias);
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
  // dgrad: dx (N, IC) = dy (N, OC) . (W^T (IC, OC))^T
  timer_.time(OpTag(OpCategory::Matmul, dgrad_name, 2.0 * N * IC * OC), [&] {
    matmul_.fp8_matmul(dinp, DType::BF16, operand(dy_q_, tg), operand(w_t, tw), N, IC, OC, 0.0f);
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
