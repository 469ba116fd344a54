#include "backend/cuda_fp8_lm_head.h"

#include "backend/cuda_fp8.h"
#include "core/arena_plan.h"
#include "core/cuda_check.h"
#include "core/error.h"

namespace attn {

CudaFp8LmHead::CudaFp8LmHead(const bf16* wte, int Vp, int C, int max_rows, CudaMatmul& matmul, CudaAllocator& mem,
                             CudaOpTimer& timer, cudaStream_t stream)
    : wte_(wte), Vp_(Vp), C_(C), max_rows_(max_rows), matmul_(matmul), timer_(timer), stream_(stream) {
  ATTN_CHECK(wte != nullptr && supports(16, Vp, C) && max_rows >= 16,
             "fp8 LM head: wte ({} x {}) and {} rows, multiples of 16", Vp, C, max_rows);
  // (in Tensor's order: x, wte, dlogits)
  scales_ = allocate_fp8_scale_state(mem, {kern::Fp8Format::E4M3, kern::Fp8Format::E4M3, kern::Fp8Format::E5M2},
                                     /*history=*/1, stream_);
}

namespace {
struct LmHeadPlan {
  size_t x, w, w_t, dlogits, bytes;
};
LmHeadPlan lm_head_plan(int Vp, int C, int max_rows, int block_rows) {
  ArenaPlan arena;
  LmHeadPlan p{};
  const size_t w = static_cast<size_t>(Vp) * C;
  p.x = arena.add(static_cast<size_t>(max_rows) * C), p.w = arena.add(w), p.w_t = arena.add(w);
  p.dlogits = arena.add(static_cast<size_t>(block_rows) * Vp);
  p.bytes = arena.bytes();
  return p;
}
}  // namespace

size_t CudaFp8LmHead::scratch_bytes(int Vp, int C, int max_rows, int block_rows) {
  return lm_head_plan(Vp, C, max_rows, block_rows).bytes;
}

void CudaFp8LmHead::set_scratch(void* scratch, int block_rows) {
  ATTN_CHECK(scratch != nullptr && block_rows >= 16 && block_rows % 16 == 0,
             "fp8 LM head: scratch for blocks of {} rows (a multiple of 16)", block_rows);
  const LmHeadPlan p = lm_head_plan(Vp_, C_, max_rows_, block_rows);
  auto* base = static_cast<uint8_t*>(scratch);
  x_q_ = base + p.x, w_q_ = base + p.w, w_t_ = base + p.w_t, dlogits_q_ = base + p.dlogits;
  block_rows_ = block_rows;
}

CudaMatmul::Fp8Operand CudaFp8LmHead::operand(const void* data, Tensor t) const {
  return CudaMatmul::Fp8Operand{data, t == Dlogits, scales_.scale_inv(t)};
}

void CudaFp8LmHead::cast_operands(const bf16* x, int rows, bool with_transpose) {
  ATTN_CHECK(x_q_ != nullptr && rows <= max_rows_ && supports(rows, Vp_, C_),
             "fp8 LM head: {} rows (at most {}, a multiple of 16; scratch set: {})", rows, max_rows_, x_q_ != nullptr);
  const size_t nx = static_cast<size_t>(rows) * C_, nw = static_cast<size_t>(Vp_) * C_;
  const double bytes = 2.0 * (nx + nw) + 3.0 * nx + (with_transpose ? 4.0 : 3.0) * nw;  // amax passes, then casts
  timer_.time(OpTag(OpCategory::Fp8Cast, with_transpose ? "fp8 cast lm_head x, wte+wte^T" : "fp8 cast lm_head x, wte",
                    0, bytes),
              [&] {
                // current scaling: this step's amax of each (slot 0 of a history of 1), then the scale
                for (const Tensor t : {X, Wte})
                  CUDA_CHECK(cudaMemsetAsync(scales_.amax_history(t), 0, sizeof(float), stream_));
                kern::fp8_amax(x, nx, scales_.amax_history(X), stream_);
                kern::fp8_amax(wte_, nw, scales_.amax_history(Wte), stream_);
                kern::fp8_update_scales(scales_, X, 2, /*roll=*/false, stream_);
                kern::fp8_cast(x_q_, x, nx, kern::Fp8Format::E4M3, scales_.scale(X), scales_.amax_history(X), stream_);
                kern::fp8_cast_transpose(w_q_, with_transpose ? w_t_ : nullptr, wte_, Vp_, C_, kern::Fp8Format::E4M3,
                                         scales_.scale(Wte), scales_.amax_history(Wte), stream_);
              });
  x_rows_ = rows, transposed_ = with_transpose;
}

void CudaFp8LmHead::forward(bf16* logits, int r0, int rows, const char* name) {
  ATTN_CHECK(r0 >= 0 && rows <= block_rows_ && r0 + rows <= x_rows_ && supports(rows, Vp_, C_),
             "fp8 LM head: rows {}..{} of the {} cast (blocks of at most {}, multiples of 16)", r0, r0 + rows, x_rows_,
             block_rows_);
  timer_.time(OpTag(OpCategory::Classifier, name, 2.0 * rows * C_ * Vp_), [&] {
    matmul_.fp8_matmul(logits, DType::BF16, operand(x_q_ + static_cast<size_t>(r0) * C_, X), operand(w_q_, Wte), rows,
                       Vp_, C_, 0.0f, nullptr, CudaFp8Linears::kForwardFastAccum);
  });
}

kern::Fp8Dlogits CudaFp8LmHead::dlogits_target() const {
  return kern::Fp8Dlogits{dlogits_q_, scales_.scale_inv(Dlogits)};
}

void CudaFp8LmHead::dgrad(bf16* dx, int rows, const char* name) {
  ATTN_CHECK(transposed_ && rows <= block_rows_ && supports(rows, Vp_, C_),
             "fp8 LM head: a dgrad of {} rows (blocks of at most {}) without wte^T cast ({})", rows, block_rows_,
             transposed_);
  timer_.time(OpTag(OpCategory::Classifier, name, 2.0 * rows * C_ * Vp_), [&] {
    matmul_.fp8_matmul(dx, DType::BF16, operand(dlogits_q_, Dlogits), operand(w_t_, Wte), rows, C_, Vp_, 0.0f);
  });
}

}  // namespace attn
