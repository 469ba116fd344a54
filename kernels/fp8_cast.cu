// fp8 casts with per-tensor scaling and amax, and the delayed-scaling update (fp8_cast.h).
#include <algorithm>

#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/fp8_cast.cuh"
#include "kernels/fp8_cast.h"
#include "kernels/gelu_math.cuh"
#include "kernels/tiles/hardware.cuh"

namespace attn::kern {

namespace {

using tiles::kWarpSize;  // the one header of hardware numbers

// ---- fp8_cast: the row-major copy alone ----------------------------------------------------------

// q[8g .. 8g+8) = sat(x * scale) for the groups g of 8 elements. Block b owns kCastGroups *
// kCastThreads consecutive groups, its thread t the groups b * kCastGroups * kCastThreads +
// i * kCastThreads + t (i < kCastGroups): each 16-byte load and 8-byte store instruction of a
// warp covers one contiguous 512- or 256-byte span, and a thread's loads come before its first
// conversion (up to 64 bytes in flight per thread). One amax atomic per block.
constexpr int kCastThreads = 256, kCastGroups = 4, kGroup = 8;
constexpr int kCastBlockGroups = kCastGroups * kCastThreads;
template <Fp8Format F>
__global__ void __launch_bounds__(kCastThreads) fp8_cast_kernel(uint8_t* __restrict__ q, const bf16* __restrict__ x,
                                                                size_t groups, const float* scale_at, float* amax) {
  const float scale = *scale_at;
  const size_t first = static_cast<size_t>(blockIdx.x) * kCastBlockGroups + threadIdx.x;
  Pack128<bf16> v[kCastGroups];
#pragma unroll
  for (int i = 0; i < kCastGroups; ++i) {
    const size_t g = first + static_cast<size_t>(i) * kCastThreads;
    if (g < groups) v[i] = load128(x + kGroup * g);
  }
  float m = 0.0f;
#pragma unroll
  for (int i = 0; i < kCastGroups; ++i) {
    const size_t g = first + static_cast<size_t>(i) * kCastThreads;
    if (g >= groups) break;
    float f[kGroup];
#pragma unroll
    for (int j = 0; j < kGroup; ++j) f[j] = v[i].get(j);
    *reinterpret_cast<uint2*>(q + kGroup * g) = cast8<F>(f, scale, m);
  }
  record_amax(amax, m);
}

// max |x| over groups of 8 (grid-stride).
__global__ void __launch_bounds__(kCastThreads) fp8_amax_kernel(const bf16* x, size_t groups, float* amax) {
  float m = 0.0f;
  for (size_t g = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups;
       g += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const Pack128<bf16> v = load128(x + kGroup * g);
#pragma unroll
    for (int j = 0; j < kGroup; ++j) m = fmaxf(m, fabsf(v.get(j)));
  }
  record_amax(amax, m);
}

// ---- fp8_cast_transpose ------------------------------------------------------------------------
//
// One kTile x kTile tile of x (rows r0.., cols c0..) per block of kCtThreads threads; each thread
// owns an 8 x 8 micro-tile of it, the 16 threads of a half-warp side by side along the tile's
// 128 columns (so a warp's load instruction reads two whole 256-byte tile rows, and its q store
// writes two 128-byte ones):
//   1. all the micro-tile's loads (8 rows of 16 bytes, with gelu_in 16 loads), then per row the
//      gradient g, its 8 fp8 bytes (q: 8-byte stores) and, for the bias, the column sums of g
//   2. the 8 x 8 bytes transposed in registers (byte permutes) and written, one 8-byte word per
//      tile column, into the block's transposed tile in shared memory (kTile rows of kTile bytes:
//      tile column c, tile rows 8s..8s+8 sit in 8-byte slot s ^ (c / 8) of row c, a swizzle that
//      puts the 16 words a half-warp writes at once in 16 different bank pairs)
//   3. after the block's barrier, q_t: 16 rows of one column per 16-byte shared load (8 threads
//      read one row of the transposed tile, conflict-free under the swizzle) and 16-byte global
//      store (8 threads write that column's 128 contiguous bytes); the tile's column sums from
//      the 8-row sums in a fixed order.
// rows and cols are multiples of 8, so a micro-tile lies wholly inside x or wholly outside; the
// last 16-row chunk of a q_t row may hold only 8 rows, and with rows % 16 != 0 every other row of
// q_t starts 8-byte aligned only: 8-byte stores there.
constexpr int kMicro = 8;                                  // micro-tile: kMicro x kMicro elements
constexpr int kTile = 128;                                 // tile: kTile x kTile elements
constexpr int kMicrosPerRow = kTile / kMicro;              // 16 micro-tiles across a tile, and down
constexpr int kCtThreads = kMicrosPerRow * kMicrosPerRow;  // 256
constexpr int kChunk = 16;                                 // q_t bytes per store: 16 rows of a column
constexpr int kChunksPerRow = kTile / kChunk;              // per row of the transposed tile
static_assert(kMicrosPerRow == kWarpSize / 2, "a half-warp spans the tile's columns");
static_assert(kChunk == 2 * kMicro, "a chunk is two 8-byte slots");

// 8 x 8 bytes: rows[i] = row i (.x: columns 0-3, .y: 4-7) -> cols[j] = column j (.x: rows 0-3, .y: 4-7).
__device__ __forceinline__ void transpose8x8(const uint2 (&rows)[kMicro], uint2 (&cols)[kMicro]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {  // columns 4h..4h+4
#pragma unroll
    for (int v = 0; v < 2; ++v) {  // rows 4v..4v+4
      uint32_t a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = h ? rows[4 * v + i].y : rows[4 * v + i].x;
      transpose4x4(a, b);
#pragma unroll
      for (int j = 0; j < 4; ++j) (v ? cols[4 * h + j].y : cols[4 * h + j].x) = b[j];
    }
  }
}

// Byte offset in the transposed tile of tile column c's rows 8s..8s+8 (see the swizzle above).
__device__ __forceinline__ int transposed_slot(int c, int s) { return c * kTile + kMicro * (s ^ (c / kMicro)); }

// Tile column c's rows 16k..16k+16 from the transposed tile: slots 2k and 2k+1 sit in 16-byte
// chunk k ^ (key / 2) (key = c / 8), swapped when key is odd.
__device__ __forceinline__ uint4 load_transposed_chunk(const uint8_t* tile_t, int c, int k) {
  const int key = c / kMicro;
  const uint4 v = *reinterpret_cast<const uint4*>(tile_t + c * kTile + kChunk * (k ^ (key / 2)));
  return key % 2 ? make_uint4(v.z, v.w, v.x, v.y) : v;
}

// 16 bytes at dst, or its first 8 only (!full); two 8-byte stores when dst may be 8-byte aligned only.
__device__ __forceinline__ void store_chunk(uint8_t* dst, uint4 v, bool full, bool aligned16) {
  if (full && aligned16) {
    *reinterpret_cast<uint4*>(dst) = v;
    return;
  }
  *reinterpret_cast<uint2*>(dst) = make_uint2(v.x, v.y);
  if (full) *reinterpret_cast<uint2*>(dst + kMicro) = make_uint2(v.z, v.w);
}

// What a cast pass converts (fp8_cast.h): g = x, g = x * gelu'(gelu_in), or g = gelu(x) (the
// GELU's tanh on the MUFU unit: gelu_math.cuh's FastTanh).
enum class CastOf { kX, kXTimesGeluGrad, kGeluOfX };

// Phase 1 of a micro-tile at x + at (and gelu_in + at): its 8 rows of fp8 bytes, m = max |g|, and
// with kSums col_sum[j] = the sum of g over its rows (in row order). bias: the micro-tile's 8
// columns of gelu_bias, or null (GELU casts only).
template <Fp8Format F, CastOf kOf, bool kSums>
__device__ __forceinline__ void cast_micro_tile(const bf16* __restrict__ x, const bf16* __restrict__ gelu_in,
                                                const bf16* __restrict__ bias, size_t at, int cols, float scale,
                                                float& m, uint2 (&bytes)[kMicro], float (&col_sum)[kMicro]) {
  constexpr bool kGeluIn = kOf == CastOf::kXTimesGeluGrad;
  Pack128<bf16> xv[kMicro], pv[kGeluIn ? kMicro : 1];
#pragma unroll
  for (int i = 0; i < kMicro; ++i) {
    xv[i] = load128(x + at + static_cast<size_t>(i) * cols);
    if constexpr (kGeluIn) pv[i] = load128(gelu_in + at + static_cast<size_t>(i) * cols);
  }
  float b[kMicro] = {};  // (x + 0 is x: no bias, the same bits)
  if constexpr (kOf != CastOf::kX) {
    if (bias) {
      const Pack128<bf16> bv = load128(bias);
#pragma unroll
      for (int j = 0; j < kMicro; ++j) b[j] = bv.get(j);
    }
  }
#pragma unroll
  for (int i = 0; i < kMicro; ++i) {
    float g[kMicro];
#pragma unroll
    for (int j = 0; j < kMicro; ++j) {
      g[j] = xv[i].get(j);
      if constexpr (kGeluIn) g[j] *= gelu_grad<FastTanh>(pv[i].get(j) + b[j]);
      if constexpr (kOf == CastOf::kGeluOfX) g[j] = gelu<FastTanh>(g[j] + b[j]);
      if constexpr (kSums) col_sum[j] += g[j];
    }
    bytes[i] = cast8<F>(g, scale, m);
  }
}

// Phase 3, column sums: partials[tile_row][c] = the sum of the tile's 8-row sums of column c, in
// order (one thread per column).
__device__ __forceinline__ void finish_column_sums(const float* row_sums, float* __restrict__ partials, int rows,
                                                   int cols, int tile_row, int c0) {
  const int c = threadIdx.x;
  const int r0 = tile_row * kTile;
  if (c >= kTile || c0 + c >= cols) return;
  const int n = min(kMicrosPerRow, (rows - r0) / kMicro);
  float total = 0.0f;
  for (int s = 0; s < n; ++s) total += row_sums[s * kTile + c];
  partials[static_cast<size_t>(tile_row) * cols + c0 + c] = total;
}

// Phase 3, q_t: the block's transposed tile to global memory, kChunk bytes per store.
__device__ __forceinline__ void store_transposed_tile(const uint8_t* tile_t, uint8_t* __restrict__ q_t, int rows,
                                                      int cols, int r0, int c0) {
  constexpr int kPerThread = kTile * kChunksPerRow / kCtThreads;
  static_assert(kTile * kChunksPerRow % kCtThreads == 0, "whole chunks per thread");
  const bool aligned16 = rows % kChunk == 0;
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int v = static_cast<int>(threadIdx.x) + i * kCtThreads;
    const int c = v / kChunksPerRow, k = v % kChunksPerRow;
    const int row = r0 + k * kChunk;
    if (c0 + c >= cols || row >= rows) continue;
    store_chunk(q_t + static_cast<size_t>(c0 + c) * rows + row, load_transposed_chunk(tile_t, c, k),
                rows - row >= kChunk, aligned16);
  }
}

// One tile (tile_row, tile_col) of the layout above, by the whole block: q (when non-null) and
// q_t (when non-null) = sat(g * scale), g = x, x * gelu'(gelu_in) or gelu(x) (kOf); with kSums
// the tile's column sums of g into partials. Has barriers: every thread of the block calls it.
template <Fp8Format F, CastOf kOf, bool kSums>
__device__ __forceinline__ void cast_transpose_tile(uint8_t* __restrict__ q, uint8_t* __restrict__ q_t,
                                                    const bf16* __restrict__ x, int rows, int cols, float scale,
                                                    float* amax, const bf16* __restrict__ gelu_in,
                                                    const bf16* __restrict__ gelu_bias, float* __restrict__ partials,
                                                    int tile_row, int tile_col) {
  __shared__ alignas(16) uint8_t tile_t[kTile * kTile];
  __shared__ alignas(16) float row_sums[kSums ? kMicrosPerRow * kTile : 1];  // [8-row group][tile column]
  const int r0 = tile_row * kTile, c0 = tile_col * kTile;
  const int mc = threadIdx.x % kMicrosPerRow, mr = threadIdx.x / kMicrosPerRow;  // the thread's micro-tile
  const int r = r0 + mr * kMicro, c = c0 + mc * kMicro;
  float m = 0.0f;
  if (r < rows && c < cols) {
    const size_t at = static_cast<size_t>(r) * cols + c;
    uint2 bytes[kMicro];
    float col_sum[kMicro] = {};
    cast_micro_tile<F, kOf, kSums>(x, gelu_in, gelu_bias ? gelu_bias + c : nullptr, at, cols, scale, m, bytes,
                                   col_sum);
    if (q) {
#pragma unroll
      for (int i = 0; i < kMicro; ++i) *reinterpret_cast<uint2*>(q + at + static_cast<size_t>(i) * cols) = bytes[i];
    }
    if (q_t) {
      uint2 t[kMicro];
      transpose8x8(bytes, t);
#pragma unroll
      for (int j = 0; j < kMicro; ++j) *reinterpret_cast<uint2*>(tile_t + transposed_slot(mc * kMicro + j, mr)) = t[j];
    }
    if constexpr (kSums) {
      float* s = row_sums + mr * kTile + mc * kMicro;
      *reinterpret_cast<float4*>(s) = make_float4(col_sum[0], col_sum[1], col_sum[2], col_sum[3]);
      *reinterpret_cast<float4*>(s + 4) = make_float4(col_sum[4], col_sum[5], col_sum[6], col_sum[7]);
    }
  }
  record_amax(amax, m);
  if (!q_t && !kSums) return;
  __syncthreads();  // the transposed tile and the row sums, written above, read across threads below
  if constexpr (kSums) finish_column_sums(row_sums, partials, rows, cols, tile_row, c0);
  if (q_t) store_transposed_tile(tile_t, q_t, rows, cols, r0, c0);
}

// The operands of one cast+transpose launch (fp8_cast_transpose's, less the format and stream).
struct CastTransposeArgs {
  uint8_t *q, *q_t;
  const bf16* x;
  int rows, cols;
  const float* scale;
  float* amax;
  const bf16 *gelu_in, *gelu_bias;
  float* partials;
};

// One tensor, one tile per block (blockIdx.y: tile row, blockIdx.x: tile column).
template <Fp8Format F, CastOf kOf, bool kSums>
__global__ void __launch_bounds__(kCtThreads) fp8_cast_transpose_kernel(const CastTransposeArgs a) {
  cast_transpose_tile<F, kOf, kSums>(a.q, a.q_t, a.x, a.rows, a.cols, *a.scale, a.amax, a.gelu_in, a.gelu_bias,
                                     a.partials, blockIdx.y, blockIdx.x);
}

template <Fp8Format F, CastOf kOf>
void launch_cast_transpose(const CastTransposeArgs& a, cudaStream_t stream) {
  const dim3 grid(ceil_div(a.cols, kTile), ceil_div(a.rows, kTile));
  const auto launch = [&](auto kernel) { kernel<<<grid, kCtThreads, 0, stream>>>(a); };
  a.partials ? launch(fp8_cast_transpose_kernel<F, kOf, true>) : launch(fp8_cast_transpose_kernel<F, kOf, false>);
}
template <Fp8Format F>
void launch_cast_transpose(CastOf of, const CastTransposeArgs& a, cudaStream_t stream) {
  switch (of) {
    case CastOf::kX: return launch_cast_transpose<F, CastOf::kX>(a, stream);
    case CastOf::kXTimesGeluGrad: return launch_cast_transpose<F, CastOf::kXTimesGeluGrad>(a, stream);
    case CastOf::kGeluOfX: return launch_cast_transpose<F, CastOf::kGeluOfX>(a, stream);
  }
}

// ---- many tensors in one launch ------------------------------------------------------------------

// Block b casts tile b of the launch: that of the job j whose tiles hold it (the last job with
// first_tile <= b: first tiles ascend, and thread i < count compares job i's, so one barrier
// count finds j), tiles numbered row by row within the job. The job's layout as for one tensor.
static_assert(kFp8CastManyMaxJobs <= kCtThreads, "a thread per job finds the block's job");
template <Fp8Format F>
__global__ void __launch_bounds__(kCtThreads)
    fp8_cast_many_kernel(const Fp8CastJob* __restrict__ jobs, int count, Fp8CastLayout layout) {
  const int tile = blockIdx.x, i = threadIdx.x;
  const int j = __syncthreads_count(i < count && jobs[i].first_tile <= tile) - 1;
  const Fp8CastJob job = jobs[j];
  const int local = tile - job.first_tile, tiles_across = ceil_div(job.cols, kTile);
  auto* out = static_cast<uint8_t*>(job.q);
  cast_transpose_tile<F, CastOf::kX, false>(layout == Fp8CastLayout::RowMajor ? out : nullptr,
                                            layout == Fp8CastLayout::Transposed ? out : nullptr, job.x, job.rows,
                                            job.cols, *job.scale, job.amax, nullptr, nullptr, nullptr,
                                            local / tiles_across, local % tiles_across);
}

// ---- the bias gradient ---------------------------------------------------------------------------

// sums[c] += sum over b < blocks of partials[b][c]. One block per kSumCols columns; its kSumLanes
// rows of threads each sum the partial rows b = lane, lane + kSumLanes, ... in order (a warp
// reads one 128-byte row segment per load), then a fixed tree over the lanes in shared memory:
// the same order on every run, whatever the timing (deterministic), with ~blocks / kSumLanes
// loads per thread in flight at once rather than one thread walking all the rows.
constexpr int kSumCols = kWarpSize, kSumLanes = 32, kSumThreads = kSumCols * kSumLanes;
__global__ void __launch_bounds__(kSumThreads)
    fp8_add_column_sums_kernel(float* __restrict__ sums, const float* __restrict__ partials, int blocks, int cols) {
  __shared__ float lane_sum[kSumLanes][kSumCols];
  const int tx = threadIdx.x % kSumCols, lane = threadIdx.x / kSumCols;
  const int c = blockIdx.x * kSumCols + tx;
  float total = 0.0f;
  if (c < cols) {
#pragma unroll 4
    for (int b = lane; b < blocks; b += kSumLanes) total += partials[static_cast<size_t>(b) * cols + c];
  }
  lane_sum[lane][tx] = total;
#pragma unroll
  for (int half = kSumLanes / 2; half > 0; half /= 2) {
    __syncthreads();
    if (lane < half) lane_sum[lane][tx] += lane_sum[lane + half][tx];
  }
  if (lane == 0 && c < cols) sums[c] += lane_sum[0][tx];
}

// ---- the scale update --------------------------------------------------------------------------

// One thread per tensor: the delayed-scaling rule of fp8_cast.h.
__global__ void fp8_update_scales_kernel(Fp8ScaleState s, int first, int count, bool roll) {
  const int t = first + static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (t >= first + count) return;
  float* hist = s.amax_history(t);
  float m = 0.0f;
  for (int i = 0; i < s.history; ++i) m = fmaxf(m, hist[i]);
  const float scale = *s.max(t) / m;
  if (m > 0.0f && isfinite(m) && isfinite(scale) && scale > 0.0f) {
    *s.scale(t) = scale;
    *s.scale_inv(t) = 1.0f / scale;
  }
  if (!roll) return;
  for (int i = s.history - 1; i > 0; --i) hist[i] = hist[i - 1];
  hist[0] = 0.0f;
}

constexpr int kAmaxBlocksPerSm = 16;  // the amax pass: at most one wave of blocks

}  // namespace

void fp8_cast(void* q, const bf16* x, size_t n, Fp8Format f, const float* scale, float* amax, cudaStream_t stream) {
  if (n == 0) return;
  const size_t groups = n / kGroup;
  const auto blocks = static_cast<unsigned>(ceil_div<size_t>(groups, kCastBlockGroups));
  auto* out = static_cast<uint8_t*>(q);
  if (f == Fp8Format::E4M3)
    fp8_cast_kernel<Fp8Format::E4M3><<<blocks, kCastThreads, 0, stream>>>(out, x, groups, scale, amax);
  else
    fp8_cast_kernel<Fp8Format::E5M2><<<blocks, kCastThreads, 0, stream>>>(out, x, groups, scale, amax);
  CUDA_CHECK_LAUNCH();
}

void fp8_cast_transpose(void* q, void* q_t, const bf16* x, int rows, int cols, Fp8Format f, const float* scale,
                        float* amax, cudaStream_t stream, const bf16* gelu_in, float* column_partials, bool gelu_of_x,
                        const bf16* gelu_bias) {
  ATTN_CHECK(!(gelu_in && gelu_of_x), "fp8_cast_transpose: gelu_in (a GELU's gradient) and gelu_of_x (its output) both set");
  ATTN_CHECK(!gelu_bias || ((gelu_in || gelu_of_x) && reinterpret_cast<uintptr_t>(gelu_bias) % 16 == 0),
             "fp8_cast_transpose: a GELU bias without a GELU, or not 16-byte aligned");
  if (rows == 0 || cols == 0) return;
  const CastTransposeArgs a{static_cast<uint8_t*>(q), static_cast<uint8_t*>(q_t), x, rows, cols, scale, amax, gelu_in,
                            gelu_bias, column_partials};
  const CastOf of = gelu_in ? CastOf::kXTimesGeluGrad : gelu_of_x ? CastOf::kGeluOfX : CastOf::kX;
  if (f == Fp8Format::E4M3)
    launch_cast_transpose<Fp8Format::E4M3>(of, a, stream);
  else
    launch_cast_transpose<Fp8Format::E5M2>(of, a, stream);
  CUDA_CHECK_LAUNCH();
}

int fp8_cast_tiles(int rows, int cols) { return ceil_div(rows, kTile) * ceil_div(cols, kTile); }

void fp8_cast_many(const Fp8CastJob* jobs, int count, int tiles, Fp8Format f, Fp8CastLayout layout,
                   cudaStream_t stream) {
  if (count <= 0 || tiles <= 0) return;
  ATTN_CHECK(count <= kFp8CastManyMaxJobs, "fp8_cast_many: {} tensors in one launch (at most {})", count,
             kFp8CastManyMaxJobs);
  if (f == Fp8Format::E4M3)
    fp8_cast_many_kernel<Fp8Format::E4M3><<<tiles, kCtThreads, 0, stream>>>(jobs, count, layout);
  else
    fp8_cast_many_kernel<Fp8Format::E5M2><<<tiles, kCtThreads, 0, stream>>>(jobs, count, layout);
  CUDA_CHECK_LAUNCH();
}

size_t fp8_column_partials_floats(int rows, int cols) { return static_cast<size_t>(ceil_div(rows, kTile)) * cols; }

void fp8_add_column_sums(float* sums, const float* column_partials, int rows, int cols, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  fp8_add_column_sums_kernel<<<ceil_div(cols, kSumCols), kSumThreads, 0, stream>>>(sums, column_partials,
                                                                                   ceil_div(rows, kTile), cols);
  CUDA_CHECK_LAUNCH();
}

void fp8_amax(const bf16* x, size_t n, float* amax, cudaStream_t stream) {
  if (n == 0) return;
  const size_t groups = n / kGroup;
  const size_t one_wave = static_cast<size_t>(tiles::sm_count()) * kAmaxBlocksPerSm;
  const auto blocks = static_cast<int>(std::min<size_t>(ceil_div<size_t>(groups, kCastThreads), one_wave));
  fp8_amax_kernel<<<blocks, kCastThreads, 0, stream>>>(x, groups, amax);
  CUDA_CHECK_LAUNCH();
}

void fp8_update_scales(const Fp8ScaleState& s, int first, int count, bool roll, cudaStream_t stream) {
  if (count <= 0) return;
  fp8_update_scales_kernel<<<ceil_div(count, 128), 128, 0, stream>>>(s, first, count, roll);
  CUDA_CHECK_LAUNCH();
}

}  // namespace attn::kern
