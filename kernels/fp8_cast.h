// fp8 casts with per-tensor scaling, for the fp8 linear layers (backend/cuda_fp8.h).
//
// A tensor x (bf16) becomes q = sat(x * scale) in e4m3 (max 448: weights, activations) or
// e5m2 (max 57344: gradients), where sat() saturates to +-max (cuda_fp8.h's __NV_SATFINITE:
// an out-of-range or infinite value becomes +-max, never inf; NaN stays NaN). Every cast also
// records amax = max |x| of the unscaled input into *amax (atomicMax on the float's bits, so
// several casts of one tensor in a step fold into one value). cuBLASLt multiplies the
// product by scale_inv = 1 / scale of each operand.
//
// Scale state (Fp8ScaleState below): per tensor, its scale_inv, scale, fp8 max and an amax
// history of `history` steps whose slot 0 is the current step's. fp8_update_scales is the
// delayed-scaling rule: scale = fp8_max / max(history), then the history rolls.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "core/dropout.h"
#include "core/host_device.h"

namespace attn::kern {

enum class Fp8Format { E4M3, E5M2 };
inline constexpr float kE4M3Max = 448.0f;
inline constexpr float kE5M2Max = 57344.0f;
inline float fp8_max(Fp8Format f) { return f == Fp8Format::E4M3 ? kE4M3Max : kE5M2Max; }

// The device layout of the scaling state of n tensors with a history of h steps, one fp32
// buffer of one 256-byte record per tensor: [scale_inv | scale | fp8_max | - | amax history h |
// padding]. Each scale_inv (what cuBLASLt reads through A/B_SCALE_POINTER) starts a record, so it
// is 256-byte aligned like a buffer of its own (cuBLASLt refuses misaligned scale pointers).
struct Fp8ScaleState {
  static constexpr int kRecordFloats = 64;
  float* base = nullptr;
  int n = 0, history = 0;
  static size_t floats(int n, int history) {
    return history + 4 <= kRecordFloats ? static_cast<size_t>(n) * kRecordFloats : 0;
  }
  ATTN_HD float* scale_inv(int t) const { return base + static_cast<size_t>(t) * kRecordFloats; }
  ATTN_HD float* scale(int t) const { return scale_inv(t) + 1; }
  ATTN_HD float* max(int t) const { return scale_inv(t) + 2; }
  ATTN_HD float* amax_history(int t) const { return scale_inv(t) + 4; }
};

// Where a kernel that produces an fp8 linear's input writes it, cast (e4m3): q (rows, cols) and its
// transpose q_t (cols, rows), both sat(x * *scale), and *amax = max(*amax, max |x|)
// (layernorm_forward_fp8 below).
struct Fp8CastTarget {
  void* q = nullptr;
  void* q_t = nullptr;
  const float* scale = nullptr;
  float* amax = nullptr;
};

// q[i] = sat(x[i] * *scale), i < n (n a multiple of 8, pointers 16-byte aligned); *amax = max(*amax, |x|).
void fp8_cast(void* q, const __nv_bfloat16* x, size_t n, Fp8Format f, const float* scale, float* amax,
              cudaStream_t stream);
// x (rows, cols) row-major -> q (rows, cols) (when q != nullptr) and q_t = its transpose (cols,
// rows) (when q_t != nullptr), both sat(g * *scale), in one pass; rows and cols multiples of 8.
// g = x; with gelu_in (rows, cols) the gradient through a GELU, g = x * gelu'(gelu_in); with
// gelu_of_x the GELU's output, g = gelu(x) (x its input: the MLP's activation cast straight from
// the fc's output, never stored in bf16). gelu_bias (cols, or null): the GELU's input is gelu_in
// + gelu_bias, or x + gelu_bias, per column (the fc's bias, added here rather than in its
// matmul's epilogue). The amax is max |g|. With column_partials (fp8_column_partials_floats(rows, cols) floats),
// per 128-row tile the column sums of g; fp8_add_column_sums finishes them (the bias gradient
// of the pass that reads g anyway, deterministic: a fixed summation order). Pointers 16-byte
// aligned.
void fp8_cast_transpose(void* q, void* q_t, const __nv_bfloat16* x, int rows, int cols, Fp8Format f,
                        const float* scale, float* amax, cudaStream_t stream,
                        const __nv_bfloat16* gelu_in = nullptr, float* column_partials = nullptr,
                        bool gelu_of_x = false, const __nv_bfloat16* gelu_bias = nullptr);
size_t fp8_column_partials_floats(int rows, int cols);
// sums[c] += the column sums that fp8_cast_transpose left in column_partials (same rows, cols).
void fp8_add_column_sums(float* sums, const float* column_partials, int rows, int cols, cudaStream_t stream);
// *amax = max(*amax, max |x[i]|) only (a tensor's first cast: its scale from its own amax).
void fp8_amax(const __nv_bfloat16* x, size_t n, float* amax, cudaStream_t stream);
// ---- many tensors in one launch (the weights of a group of linear layers) ------------------------
// One tensor of fp8_cast_many: x (rows, cols) row-major bf16 -> q, its fp8 copy sat(x * *scale),
// row-major (rows, cols) or transposed (cols, rows) as the launch says; *amax = max(*amax, max |x|).
// rows and cols multiples of 8, pointers 16-byte aligned (as fp8_cast_transpose).
struct Fp8CastJob {
  const __nv_bfloat16* x = nullptr;
  void* q = nullptr;
  const float* scale = nullptr;
  float* amax = nullptr;
  int rows = 0, cols = 0;
  int first_tile = 0;  // its first tile in the launch: the fp8_cast_tiles of the jobs before it
};
enum class Fp8CastLayout { AmaxOnly, RowMajor, Transposed };
inline constexpr int kFp8CastManyMaxJobs = 256;
// The tiles (blocks) of one job.
int fp8_cast_tiles(int rows, int cols);
// Every job of jobs[0 .. count) (a device table, count <= kFp8CastManyMaxJobs, `tiles` = the tiles
// of them all) in one launch: each q holds what fp8_cast (RowMajor) or fp8_cast_transpose's q_t
// (Transposed) writes for its job, byte for byte, and each amax what they record; AmaxOnly
// records the amax and writes nothing.
void fp8_cast_many(const Fp8CastJob* jobs, int count, int tiles, Fp8Format f, Fp8CastLayout layout,
                   cudaStream_t stream);
// ---- the cast in the kernel that produces the operand ------------------------------------------
// A layernorm with fp8 output (layernorm.cu; the input of an fp8 linear, backend/cuda_fp8.h): as
// kernels.h's layernorm_forward / residual_layernorm_forward for bf16 (res_out still written), but
// the bf16 output y is not stored: out.q = sat(float(y) * *out.scale) in e4m3, (N, C) row-major,
// out.q_t its transpose (C, N), *out.amax = max(*out.amax, max |y|): fp8_cast_transpose's bytes and
// amax for the y that layernorm_forward writes, and the same mean and rstd. When
// layernorm_fp8_supports(N, C): N a multiple of 16, C a multiple of 8 up to 1024.
bool layernorm_fp8_supports(int N, int C);
void layernorm_forward_fp8(const Fp8CastTarget& out, float* mean, float* rstd, const __nv_bfloat16* inp,
                           const __nv_bfloat16* weight, const __nv_bfloat16* bias, int N, int C, cudaStream_t stream);
void residual_layernorm_forward_fp8(__nv_bfloat16* res_out, const Fp8CastTarget& out, float* mean, float* rstd,
                                    const __nv_bfloat16* res, const __nv_bfloat16* branch,
                                    const __nv_bfloat16* weight, const __nv_bfloat16* bias, int N, int C,
                                    DropoutState drop, cudaStream_t stream);

// For tensors [first, first + count): m = max of the amax history; when m > 0 and finite and
// fp8_max / m is finite: scale = fp8_max / m, scale_inv = 1 / scale (else both kept). With
// roll the history then moves one slot (slot i + 1 = slot i, the oldest dropped) and slot 0
// becomes 0 for the next step.
void fp8_update_scales(const Fp8ScaleState& s, int first, int count, bool roll, cudaStream_t stream);

}  // namespace attn::kern
