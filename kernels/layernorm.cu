// LayerNorm over the last dimension C, eps = 1e-5 (nanoGPT / torch.nn.LayerNorm).
#include <algorithm>

#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/fp8_cast.cuh"
#include "kernels/fp8_cast.h"
#include "kernels/kernels.h"
#include "kernels/tiles/pdl.cuh"

namespace attn::kern {

namespace {
constexpr float kEps = 1e-5f;
constexpr int kRowsPerChunk = 128;  // rows per partial sum of the parameter gradients (generic path)

// ---- the generic path: any C (C % pack != 0 or C > 1024) ------------------------------------
// mean = sum_c x_c / C;  rstd = 1 / sqrt(sum_c (x_c - mean)^2 / C + eps)
// out_c = (x_c - mean) * rstd * w_c + b_c.    One warp per row; mean, rstd saved (fp32).
template <typename T>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* inp, const T* w, const T* b,
                                         int N, int C) {
  const int lane = threadIdx.x % 32;
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= N) return;
  const T* x = inp + static_cast<size_t>(row) * C;
  float s = 0.0f;
  for (int c = lane; c < C; c += 32) s += to_f(x[c]);
  const float m = warp_sum(s) / C;
  float v = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float d = to_f(x[c]) - m;
    v += d * d;
  }
  const float r = rsqrtf(warp_sum(v) / C + kEps);
  T* o = out + static_cast<size_t>(row) * C;
  for (int c = lane; c < C; c += 32) o[c] = from_f<T>((to_f(x[c]) - m) * r * to_f(w[c]) + to_f(b[c]));
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

// Input gradient, one warp per row, with norm_c = (x_c - mean) * rstd, g_c = w_c * dout_c:
//   dinp_c += (g_c - mean_c(g) - norm_c * mean_c(g * norm)) * rstd
template <typename T>
__global__ void layernorm_backward_input_kernel(T* dinp, const T* dout, const T* inp, const T* w, const float* mean,
                                                const float* rstd, int N, int C) {
  const int lane = threadIdx.x % 32;
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= N) return;
  const size_t base = static_cast<size_t>(row) * C;
  const float m = mean[row], r = rstd[row];
  float sg = 0.0f, sgn = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float g = to_f(w[c]) * to_f(dout[base + c]);
    sg += g;
    sgn += g * (to_f(inp[base + c]) - m) * r;
  }
  const float g_mean = warp_sum(sg) / C, gn_mean = warp_sum(sgn) / C;
  for (int c = lane; c < C; c += 32) {
    const float norm = (to_f(inp[base + c]) - m) * r;
    const float g = to_f(w[c]) * to_f(dout[base + c]);
    dinp[base + c] = from_f<T>(to_f(dinp[base + c]) + (g - g_mean - norm * gn_mean) * r);
  }
}

// Stage 1 of the parameter gradients: block (32 columns x 8 row lanes), blockIdx.y = chunk
// of kRowsPerChunk rows. Each thread sums its rows in order, the 8 lanes are added in
// order:  scratch[chunk][c] = sum dout*norm,  scratch[chunk][C + c] = sum dout.
template <typename T>
__global__ void layernorm_backward_params_partial_kernel(float* scratch, const T* dout, const T* inp,
                                                         const float* mean, const float* rstd, int N, int C) {
  __shared__ float sw[8][33], sb[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int chunk = blockIdx.y;
  const int row_end = min(N, (chunk + 1) * kRowsPerChunk);
  float dw = 0.0f, db = 0.0f;
  if (c < C) {
    for (int n = chunk * kRowsPerChunk + threadIdx.y; n < row_end; n += 8) {
      const size_t i = static_cast<size_t>(n) * C + c;
      const float d = to_f(dout[i]);
      dw += d * (to_f(inp[i]) - mean[n]) * rstd[n];
      db += d;
    }
  }
  sw[threadIdx.y][threadIdx.x] = dw;
  sb[threadIdx.y][threadIdx.x] = db;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float tw = 0.0f, tb = 0.0f;
    for (int k = 0; k < 8; ++k) tw += sw[k][threadIdx.x], tb += sb[k][threadIdx.x];
    scratch[static_cast<size_t>(chunk) * 2 * C + c] = tw;
    scratch[static_cast<size_t>(chunk) * 2 * C + C + c] = tb;
  }
}

// Stage 2: dweight[c] += sum_chunks scratch[chunk][c], dbias[c] += sum_chunks scratch[chunk][C + c].
__global__ void layernorm_backward_params_final_kernel(float* dweight, float* dbias, const float* scratch, int chunks,
                                                       int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float tw = 0.0f, tb = 0.0f;
  for (int k = 0; k < chunks; ++k) {
    tw += scratch[static_cast<size_t>(k) * 2 * C + c];
    tb += scratch[static_cast<size_t>(k) * 2 * C + C + c];
  }
  dweight[c] += tw;
  dbias[c] += tb;
}

// ---- the fast path: one warp per row, the row held in registers ---------------------------
//
// Why: the kernels above read each element with a 2-byte load, three times in the forward
// (mean, variance, output) and twice more for the parameter gradients in a second kernel.
// Here every lane owns the same 128-bit packs of every row (packs lane, lane + 32, ...), so
// a row is read from memory once, with 16-byte loads, and the parameter gradients of the
// lane's columns are summed in its registers over all the rows its warp handles: no second
// read of dout and x, no atomics. Needs C % (16 / sizeof(T)) == 0 and C <= 32 * kRowRegs.

// bf16 and fp32 both keep 32 floats of a row per lane: C <= 1024 (GPT-2 small/medium).
constexpr int kRowRegs = 32;
constexpr int kWarpsPerBlock = 8;  // forward
// Forward rows kernels over fewer rows than this (decode steps, short passes) run one warp a
// block, so that the rows' loads come from as many SMs as there are rows (32 rows of a B = 32
// decode step: 32 SMs, not 4).
constexpr int kSpreadRows = 1024;
int forward_warps_per_block(int N) { return N < kSpreadRows ? 1 : kWarpsPerBlock; }
// Backward: at most ~160 registers per thread (two rows' packs + the fp32 gradient sums), so
// blocks of 4 warps fit 3 to an SM and 384 blocks are one wave on an H100 (132 SMs). The grid depends on
// N only: the summation order does not depend on the GPU.
constexpr int kBackwardWarps = 4;
constexpr int kBackwardMaxBlocks = 384;

template <typename T>
bool rows_fit_registers(int C) {
  constexpr int W = Pack128<T>::size;
  return C % W == 0 && C <= 32 * kRowRegs;
}

// Where the fused residual's branch comes from: pack pk of row `row` (its W elements at flat index
// i = row C + pk W). Stored: the branch tensor (null: no residual). Split-K: summed from the fp32
// partials of CudaMatmul::forward_split_k_partials plus the bias,
//   branch_c = T(sum_s parts[s][row, c] + bias_c)   (s in order),
// what cuBLASLt's split-K reduction with the bias epilogue stores for the unsplit matmul.
template <typename T>
struct StoredBranch {
  const T* p;
  __device__ __forceinline__ bool present() const { return p != nullptr; }
  __device__ __forceinline__ Pack128<T> load(size_t i, int /*c*/) const { return load128cs(p + i); }
};
template <typename T>
struct SplitKBranch {
  const float* parts;  // (splits, N, C)
  const T* bias;       // (C)
  size_t split_stride;  // N C
  int splits;
  __device__ __forceinline__ bool present() const { return true; }
  __device__ __forceinline__ Pack128<T> load(size_t i, int c) const {
    constexpr int W = Pack128<T>::size;
    static_assert(W % 4 == 0, "a pack is whole float4s of partials");
    // every slice's loads issued before the first add (unrolled to the most slices, predicated): one
    // L2 round trip, not one a slice
    float4 v[kResidualLayernormMaxSplits][W / 4];
#pragma unroll
    for (int s = 0; s < kResidualLayernormMaxSplits; ++s)
#pragma unroll
      for (int j = 0; j < W / 4; ++j)
        v[s][j] = s < splits ? __ldcs(reinterpret_cast<const float4*>(parts + s * split_stride + i) + j)
                             : make_float4(0.f, 0.f, 0.f, 0.f);
    float acc[W] = {};
#pragma unroll
    for (int s = 0; s < kResidualLayernormMaxSplits; ++s)
#pragma unroll
      for (int j = 0; j < W / 4; ++j)
        acc[4 * j] += v[s][j].x, acc[4 * j + 1] += v[s][j].y, acc[4 * j + 2] += v[s][j].z, acc[4 * j + 3] += v[s][j].w;
    const Pack128<T> b = load128(bias + c);
    Pack128<T> out;
#pragma unroll
    for (int j = 0; j < W; ++j) out.set(j, acc[j] + b.get(j));
    return out;
  }
};

// The row math of the forward kernels below, by one warp for row n. With a branch present (the
// fused residual of the transformer block):
//   r_c = T(res_c + drop(branch_c)),  res_out[n, c] = r_c,  and r is normalised below
// (the rounded value, exactly what a separate residual kernel would have stored); else r = inp.
//   mean = sum_c r_c / C;  rstd = 1 / sqrt(sum_c (r_c - mean)^2 / C + eps)
//   out_c = T((r_c - mean) * rstd * w_c + b_c)
// mean[n] and rstd[n] are written; each pack of out (row n's pack pk) goes to emit(pk, pack):
// the bf16/fp32 kernel stores it, the fp8 one casts it. Dropout indices are the flat element
// index n * C + c, as in residual_forward. Every lane of the warp calls it (shuffles).
template <bool kLoadsFirst, typename T, typename Branch, typename Emit>
__device__ __forceinline__ void layernorm_row(int row, float* mean, float* rstd, T* res_out, const T* inp,
                                              const Branch& branch, const T* w, const T* b, int C, float drop_p,
                                              float drop_scale, uint64_t drop_key, Emit&& emit) {
  constexpr int W = Pack128<T>::size, kPacks = kRowRegs / W;
  const int lane = threadIdx.x % 32;
  const int packs = C / W;
  const size_t base = static_cast<size_t>(row) * C;
  float x[kRowRegs];
  float sum = 0.0f;
  // kLoadsFirst: every pack's loads before the first store (res_out may alias inp, so a store
  // keeps the next pack's loads behind it): one memory round trip a row, not one a pack, for the
  // registers of all the packs (the decode step's few rows wait on that latency; the fp8 kernel,
  // held to 64 registers, loads a pack at a time)
  Pack128<T> in[kPacks], br[kPacks];
  auto load_pack = [&](int k) {
    const size_t i = base + static_cast<size_t>(k * 32 + lane) * W;
    in[k] = load128(inp + i);
    if (branch.present()) br[k] = branch.load(i, (k * 32 + lane) * W);
  };
  if constexpr (kLoadsFirst) {
#pragma unroll
    for (int k = 0; k < kPacks; ++k)
      if (k * 32 + lane < packs) load_pack(k);
  }
#pragma unroll
  for (int k = 0; k < kPacks; ++k) {
    const int pk = k * 32 + lane;
    if (pk < packs) {
      const size_t i = base + static_cast<size_t>(pk) * W;
      if constexpr (!kLoadsFirst) load_pack(k);
      Pack128<T> r = in[k];
      if (branch.present()) {
#pragma unroll
        for (int j = 0; j < W; ++j) {
          const float m = drop_p > 0.0f ? dropout_mult(drop_key, i + j, drop_p, drop_scale) : 1.0f;
          r.set(j, r.get(j) + br[k].get(j) * m);
        }
        store128(res_out + i, r);
      }
#pragma unroll
      for (int j = 0; j < W; ++j) x[k * W + j] = r.get(j), sum += x[k * W + j];
    }
  }
  const float m = warp_sum(sum) / C;
  float var = 0.0f;
#pragma unroll
  for (int k = 0; k < kPacks; ++k)
    if (k * 32 + lane < packs)
#pragma unroll
      for (int j = 0; j < W; ++j) var += (x[k * W + j] - m) * (x[k * W + j] - m);
  const float r = rsqrtf(warp_sum(var) / C + kEps);
#pragma unroll
  for (int k = 0; k < kPacks; ++k) {
    const int pk = k * 32 + lane;
    if (pk < packs) {
      const Pack128<T> wk = load128(w + pk * W), bk = load128(b + pk * W);
      Pack128<T> o;
#pragma unroll
      for (int j = 0; j < W; ++j) o.set(j, (x[k * W + j] - m) * r * wk.get(j) + bk.get(j));
      emit(pk, o);
    }
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

// One warp per row (layernorm_row): out[n, :] = the row's output packs.
template <typename T, typename Branch = StoredBranch<T>>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    layernorm_forward_rows_kernel(T* out, float* mean, float* rstd, T* res_out, const T* inp, Branch branch,
                                  const T* w, const T* b, int N, int C, float drop_p, float drop_scale,
                                  DeviceValue<uint64_t> drop_key_src) {
  // Launched with programmatic dependent launch: its launch overlaps the tail of the kernel
  // before it (the decode step's rows are few, so the launch is most of its time).
  tiles::wait_for_predecessor();
  tiles::launch_dependents();
  const uint64_t drop_key = drop_key_src.get();  // core/device_value.h
  constexpr int W = Pack128<T>::size;
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= N) return;
  T* out_row = out + static_cast<size_t>(row) * C;
  layernorm_row<true>(row, mean, rstd, res_out, inp, branch, w, b, C, drop_p, drop_scale, drop_key,
                [&](int pk, const Pack128<T>& o) { store128(out_row + pk * W, o); });
}

// The rows kernel over N rows (one warp a row; forward_warps_per_block), on programmatic
// dependent launch.
template <typename T, typename Branch>
void launch_layernorm_rows(T* out, float* mean, float* rstd, T* res_out, const T* inp, const Branch& branch,
                           const T* w, const T* b, int N, int C, float drop_p, float drop_scale,
                           DeviceValue<uint64_t> drop_key, cudaStream_t stream) {
  const int warps = forward_warps_per_block(N);
  tiles::launch_pdl(layernorm_forward_rows_kernel<T, Branch>, dim3(ceil_div(N, warps)), dim3(warps * 32), 0, stream,
                    out, mean, rstd, res_out, inp, branch, w, b, N, C, drop_p, drop_scale, drop_key);
}

// ---- the fp8 output: an fp8 linear's input, cast where it is produced ----------------------
//
// The rows kernel above, but the bf16 output y = out_c of each row is cast instead of stored
// (exactly fp8_cast_transpose's bytes for that bf16 tensor: fp8_cast.h):
//   q[n, c] = sat(float(y[n, c]) * scale) (e4m3),  q_t[c, n] = q[n, c],  *amax = max(*amax, max |y|)
// A block of kFp8LnWarps warps owns kFp8LnTileRows consecutive rows (each warp kFp8LnRowsPerWarp
// of them, one after the other), and:
//   1. per row, its q bytes (8-byte stores, coalesced along the row) and a copy in shared memory,
//      the tile's row-major rows of round_up(C, 128) bytes; tile rows 16..31 keep each 128-byte
//      segment's two 64-byte halves swapped (4-byte word w at w ^ 16), so that step 2's reads of
//      rows 0-15 and 16-31 fall in different banks;
//   2. after a barrier, q_t: per work item (4 columns, 16 rows: the two items of a column group
//      side by side in a warp), 16 word loads (rows x 4 columns), 4 x 4 byte transposes, and per
//      column one 16-byte store of its 16 rows (the item pair: one whole 32-byte segment of q_t).
// N is a multiple of 16 (fp8 linears' rows, CudaFp8Linears::supports): a tile's last 16-row half
// is either whole or past N (skipped); q_t rows (N bytes) start 16-byte aligned.
constexpr int kFp8LnTileRows = 32;
constexpr int kFp8LnWarps = kWarpsPerBlock;
constexpr int kFp8LnRowsPerWarp = kFp8LnTileRows / kFp8LnWarps;
constexpr int kFp8LnHalf = 16;                  // rows per q_t store (16 bytes)
constexpr int kFp8LnSwizzleWords = 16;          // step 1's word swap in tile rows 16..31
constexpr int kFp8LnSegment = 128;              // tile rows are whole 128-byte segments (32 banks)
constexpr int kFp8LnMaxStride = 32 * kRowRegs;  // the longest row the rows kernel takes, in bytes
// 4 blocks per SM (<= 64 registers a thread; 4 x 32 KB of tiles): GPT-2's N = 16384 rows are 512
// blocks, one wave on 132 SMs.
constexpr int kFp8LnBlocksPerSm = 4;
static_assert(kFp8LnTileRows == 2 * kFp8LnHalf, "a tile is two 16-row halves");
static_assert(kFp8LnRowsPerWarp * kFp8LnWarps == kFp8LnTileRows, "whole rows per warp");
static_assert(kFp8LnMaxStride % kFp8LnSegment == 0, "the tile's rows are whole segments");

// Byte offset in the shared tile (rows of `stride` bytes) of tile row tr's 4-byte word w.
__device__ __forceinline__ int fp8_ln_tile_offset(int tr, int w, int stride) {
  return tr * stride + 4 * (w ^ (tr / kFp8LnHalf * kFp8LnSwizzleWords));
}

// Step 2: q_t's columns c of the tile (rows r0 .. r0 + 32 of x, those below N), from the shared tile.
__device__ __forceinline__ void store_fp8_ln_transposed(const uint8_t* tile, uint8_t* __restrict__ q_t, int N, int C,
                                                        int r0, int stride) {
  const int items = 2 * (C / 4);  // (column group of 4, 16-row half)
  for (int v = threadIdx.x; v < items; v += blockDim.x) {
    const int g = v / 2, half = v % 2;
    const int row = r0 + half * kFp8LnHalf;
    if (row >= N) continue;
    uint32_t a[kFp8LnHalf];
#pragma unroll
    for (int i = 0; i < kFp8LnHalf; ++i)
      a[i] = *reinterpret_cast<const uint32_t*>(tile + fp8_ln_tile_offset(half * kFp8LnHalf + i, g, stride));
    uint32_t col[4][4];  // [column j][4-row group s]: rows 4s..4s+4 of column 4g + j
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      const uint32_t rows4[4] = {a[4 * s], a[4 * s + 1], a[4 * s + 2], a[4 * s + 3]};
      uint32_t cols4[4];
      transpose4x4(rows4, cols4);
#pragma unroll
      for (int j = 0; j < 4; ++j) col[j][s] = cols4[j];
    }
#pragma unroll
    for (int j = 0; j < 4; ++j)
      *reinterpret_cast<uint4*>(q_t + static_cast<size_t>(4 * g + j) * N + row) =
          make_uint4(col[j][0], col[j][1], col[j][2], col[j][3]);
  }
}

__global__ void __launch_bounds__(kFp8LnWarps * 32, kFp8LnBlocksPerSm)
    layernorm_forward_fp8_kernel(uint8_t* __restrict__ q, uint8_t* __restrict__ q_t, const float* scale_at,
                                 float* amax, float* mean, float* rstd, bf16* res_out, const bf16* inp,
                                 const bf16* branch, const bf16* w, const bf16* b, int N, int C, float drop_p,
                                 float drop_scale, DeviceValue<uint64_t> drop_key_src) {
  __shared__ alignas(16) uint8_t tile[kFp8LnTileRows * kFp8LnMaxStride];
  constexpr int W = Pack128<bf16>::size;
  const uint64_t drop_key = drop_key_src.get();
  const float scale = *scale_at;
  const int stride = ceil_div(C, kFp8LnSegment) * kFp8LnSegment;
  const int r0 = blockIdx.x * kFp8LnTileRows, warp = threadIdx.x / 32;
  float m = 0.0f;
  for (int i = 0; i < kFp8LnRowsPerWarp; ++i) {
    const int tr = warp * kFp8LnRowsPerWarp + i, row = r0 + tr;
    if (row >= N) break;
    uint8_t* q_row = q + static_cast<size_t>(row) * C;
    layernorm_row<false>(row, mean, rstd, res_out, inp, StoredBranch<bf16>{branch}, w, b, C, drop_p, drop_scale, drop_key,
                  [&](int pk, const Pack128<bf16>& o) {
                    float f[W];
#pragma unroll
                    for (int j = 0; j < W; ++j) f[j] = o.get(j);
                    const uint2 bytes = cast8<Fp8Format::E4M3>(f, scale, m);
                    *reinterpret_cast<uint2*>(q_row + pk * W) = bytes;
                    *reinterpret_cast<uint2*>(tile + fp8_ln_tile_offset(tr, 2 * pk, stride)) = bytes;
                  });
  }
  __syncthreads();  // the tile, written by every warp above, read across warps below
  store_fp8_ln_transposed(tile, q_t, N, C, r0, stride);
  record_amax(amax, m);
}

// Backward, one pass over dout and x. Warp g of G = gridDim.x * kBackwardWarps handles rows
// g, g + G, ... in order; per row, with norm_c = (x_c - mean) * rstd and g_c = w_c * dout_c,
//   dinp_c += (g_c - mean_c(g) - norm_c * mean_c(g * norm)) * rstd
// and each lane adds dout_c * norm_c and dout_c of its own columns to registers. At the end the
// block's warps add their sums in warp order (shared memory, no atomics) and the block writes
//   scratch[block][c] = sum dout * norm,  scratch[block][C + c] = sum dout
// for layernorm_params_final_kernel.
// The loads of x and dout for the warp's next row are issued before the current row is
// computed, and the current row's dinp before its sums: the grid is fixed at a few warps per
// SM, and with one row's loads in flight (and dinp read only after the row's sums) the kernel
// waited on memory latency, not bandwidth. (Prefetching dinp a row ahead too spilled.) Rows of
// more packs per lane (bf16 C > 768, fp32 C > 640) skip the prefetch: two rows spill there.
// kPacks = packs per lane (C / W / 32 rounded up): the registers a row needs, no more.
template <typename T, int kPacks>
struct LayerNormBackwardRow {
  Pack128<T> x[kPacks], dout[kPacks];
  float mean = 0.0f, rstd = 0.0f;

  __device__ void load(const T* inp, const T* dout_all, const float* means, const float* rstds, int row, int C,
                       int packs, int lane) {
    const size_t base = static_cast<size_t>(row) * C;
    mean = means[row], rstd = rstds[row];
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
      const int pk = k * 32 + lane;
      if (pk < packs) {
        const size_t i = base + static_cast<size_t>(pk) * Pack128<T>::size;
        x[k] = load128cs(inp + i);
        dout[k] = load128cs(dout_all + i);
      }
    }
  }
};

template <typename T, int kPacks>
__global__ void __launch_bounds__(kBackwardWarps * 32, 3)
    layernorm_backward_rows_kernel(T* dinp, float* scratch, const T* dout, const T* inp, const T* w,
                                   const float* mean, const float* rstd, int N, int C, bool add_dinp) {
  constexpr int W = Pack128<T>::size;
  // registers: a row's x and dout (8 per pack), dx (4), the gradient sums (2 W): ptxas spills past ~140
  constexpr bool kPrefetch = (2 * 8 + 4 + 2 * W) * kPacks <= 140;
  __shared__ float block_sums[2 * 32 * kRowRegs];  // [dweight | dbias] partials, 2C <= this
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int packs = C / W;
  float dw[kPacks * W], db[kPacks * W];
#pragma unroll
  for (int e = 0; e < kPacks * W; ++e) dw[e] = 0.0f, db[e] = 0.0f;
  const int warps = gridDim.x * kBackwardWarps;
  int row = blockIdx.x * kBackwardWarps + warp;
  LayerNormBackwardRow<T, kPacks> cur, next;
  if (kPrefetch && row < N) cur.load(inp, dout, mean, rstd, row, C, packs, lane);
  for (; row < N; row += warps) {
    if constexpr (kPrefetch) {
      if (row + warps < N) next.load(inp, dout, mean, rstd, row + warps, C, packs, lane);
    } else {
      cur.load(inp, dout, mean, rstd, row, C, packs, lane);
    }
    const size_t base = static_cast<size_t>(row) * C;
    Pack128<T> dx[kPacks];  // dinp of this row: issued now where registers allow, else just before use
    if constexpr (kPrefetch) {
#pragma unroll
      for (int k = 0; k < kPacks; ++k)
        if (add_dinp && k * 32 + lane < packs) dx[k] = load128(dinp + base + static_cast<size_t>(k * 32 + lane) * W);
    }
    const float m = cur.mean, r = cur.rstd;
    float sg = 0.0f, sgn = 0.0f;
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
      const int pk = k * 32 + lane;
      if (pk < packs) {
        const Pack128<T> wk = load128(w + pk * W);
#pragma unroll
        for (int j = 0; j < W; ++j) {
          const float norm = (cur.x[k].get(j) - m) * r, d = cur.dout[k].get(j), g = wk.get(j) * d;
          sg += g;
          sgn += g * norm;
          dw[k * W + j] += d * norm;
          db[k * W + j] += d;
        }
      }
    }
    const float g_mean = warp_sum(sg) / C, gn_mean = warp_sum(sgn) / C;
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
      const int pk = k * 32 + lane;
      if (pk < packs) {
        const Pack128<T> wk = load128(w + pk * W);
        if constexpr (!kPrefetch) {
          if (add_dinp) dx[k] = load128(dinp + base + static_cast<size_t>(pk) * W);
        }
#pragma unroll
        for (int j = 0; j < W; ++j) {
          const float norm = (cur.x[k].get(j) - m) * r, g = wk.get(j) * cur.dout[k].get(j);
          const float d = (g - g_mean - norm * gn_mean) * r;
          dx[k].set(j, add_dinp ? dx[k].get(j) + d : d);
        }
        store128(dinp + base + static_cast<size_t>(pk) * W, dx[k]);
      }
    }
    if constexpr (kPrefetch) cur = next;
  }
  // warps add into the block's sums one after the other: a fixed order
  for (int turn = 0; turn < kBackwardWarps; ++turn) {
    if (warp == turn) {
#pragma unroll
      for (int k = 0; k < kPacks; ++k) {
        const int pk = k * 32 + lane;
        if (pk < packs)
#pragma unroll
          for (int j = 0; j < W; ++j) {
            const int c = pk * W + j;
            block_sums[c] = turn == 0 ? dw[k * W + j] : block_sums[c] + dw[k * W + j];
            block_sums[C + c] = turn == 0 ? db[k * W + j] : block_sums[C + c] + db[k * W + j];
          }
      }
    }
    __syncthreads();
  }
  for (int c = threadIdx.x; c < 2 * C; c += blockDim.x)
    scratch[static_cast<size_t>(blockIdx.x) * 2 * C + c] = block_sums[c];
}

// Launches the backward rows kernel with the fewest packs per lane that hold a row of C.
template <typename T, int kPacks = 1>
void launch_layernorm_backward_rows(int blocks, T* dinp, float* scratch, const T* dout, const T* inp, const T* w,
                                    const float* mean, const float* rstd, int N, int C, bool add_dinp,
                                    cudaStream_t stream) {
  constexpr int W = Pack128<T>::size;
  if constexpr (kPacks < kRowRegs / W) {
    if (C > kPacks * 32 * W)
      return launch_layernorm_backward_rows<T, kPacks + 1>(blocks, dinp, scratch, dout, inp, w, mean, rstd, N, C,
                                                           add_dinp, stream);
  }
  layernorm_backward_rows_kernel<T, kPacks>
      <<<blocks, kBackwardWarps * 32, 0, stream>>>(dinp, scratch, dout, inp, w, mean, rstd, N, C, add_dinp);
  CUDA_CHECK_LAUNCH();
}

// dweight[c] (+)= sum_k scratch[k][c],  dbias[c] (+)= sum_k scratch[k][C + c]   (k = 0..blocks-1;
// "=" when add is false). Block (32 columns x 32 lanes) over the 2C columns [dweight | dbias]:
// lane y sums k = y, y + 32, ... in order, then the 32 lanes are added in order: deterministic.
// (32 lanes rather than 8: the 2C / 32 blocks are few, so each must have many loads in flight.)
constexpr int kFinalLanes = 32;
__global__ void __launch_bounds__(32 * kFinalLanes)
    layernorm_params_final_kernel(float* dweight, float* dbias, const float* scratch, int blocks, int C, bool add) {
  __shared__ float s[kFinalLanes][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  float t = 0.0f;
  if (c < 2 * C)
    for (int k = threadIdx.y; k < blocks; k += kFinalLanes) t += scratch[static_cast<size_t>(k) * 2 * C + c];
  s[threadIdx.y][threadIdx.x] = t;
  __syncthreads();
  if (threadIdx.y != 0 || c >= 2 * C) return;
  float total = 0.0f;
  for (int y = 0; y < kFinalLanes; ++y) total += s[y][threadIdx.x];
  float* dst = c < C ? dweight + c : dbias + (c - C);
  *dst = add ? *dst + total : total;
}

int backward_blocks(int N) { return std::min(ceil_div(N, kBackwardWarps), kBackwardMaxBlocks); }

}  // namespace

size_t layernorm_backward_scratch_floats(int N, int C) {
  const size_t parts = std::max(ceil_div(N, kRowsPerChunk), backward_blocks(N));
  return parts * 2 * static_cast<size_t>(C);
}

template <typename T>
void layernorm_forward(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias, int N, int C,
                       cudaStream_t stream) {
  if (N == 0) return;
  if (rows_fit_registers<T>(C)) {
    launch_layernorm_rows(out, mean, rstd, static_cast<T*>(nullptr), inp, StoredBranch<T>{nullptr}, weight, bias, N, C,
                          0.0f, 1.0f, DeviceValue<uint64_t>(0), stream);
    return;
  }
  const int block = 256, rows_per_block = block / 32;
  layernorm_forward_kernel<<<ceil_div(N, rows_per_block), block, 0, stream>>>(out, mean, rstd, inp, weight, bias, N,
                                                                              C);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void residual_layernorm_forward(T* res_out, T* out, float* mean, float* rstd, const T* res, const T* branch,
                                const T* weight, const T* bias, int N, int C, DropoutState drop,
                                cudaStream_t stream) {
  if (N == 0) return;
  if (!rows_fit_registers<T>(C)) {  // the two separate kernels give the same result
    residual_forward(res_out, res, branch, static_cast<size_t>(N) * C, drop, stream);
    layernorm_forward(out, mean, rstd, res_out, weight, bias, N, C, stream);
    return;
  }
  const float scale = drop.p > 0.0f ? 1.0f / (1.0f - drop.p) : 1.0f;
  launch_layernorm_rows(out, mean, rstd, res_out, res, StoredBranch<T>{branch}, weight, bias, N, C, drop.p, scale,
                        drop.device_key(), stream);
}

template <typename T>
void residual_layernorm_forward_split_k(T* res_out, T* out, float* mean, float* rstd, const T* res,
                                        const float* partials, int splits, const T* branch_bias, const T* weight,
                                        const T* bias, int N, int C, cudaStream_t stream) {
  ATTN_CHECK(residual_layernorm_split_k_supports<T>(C) && splits >= 1 && splits <= kResidualLayernormMaxSplits &&
                 partials && branch_bias,
             "residual + layernorm from split-K partials: C = {} must be a multiple of {} up to {}, splits = {} in "
             "[1, {}], partials and the branch's bias given", C, Pack128<T>::size, 32 * kRowRegs, splits,
             kResidualLayernormMaxSplits);
  if (N == 0) return;
  launch_layernorm_rows(out, mean, rstd, res_out, res, SplitKBranch<T>{partials, branch_bias, static_cast<size_t>(N) * C, splits},
                        weight, bias, N, C, 0.0f, 1.0f, DeviceValue<uint64_t>(0), stream);
}

template <typename T>
bool residual_layernorm_split_k_supports(int C) {
  return rows_fit_registers<T>(C);
}

bool layernorm_fp8_supports(int N, int C) { return N % kFp8LnHalf == 0 && rows_fit_registers<bf16>(C); }

namespace {
void launch_layernorm_fp8(const Fp8CastTarget& out, float* mean, float* rstd, bf16* res_out, const bf16* inp,
                          const bf16* branch, const bf16* weight, const bf16* bias, int N, int C, float drop_p,
                          DeviceValue<uint64_t> drop_key, cudaStream_t stream) {
  ATTN_CHECK(layernorm_fp8_supports(N, C), "layernorm with fp8 output: {} rows of {} (rows a multiple of {}, C a "
             "multiple of 8 up to {})", N, C, kFp8LnHalf, 32 * kRowRegs);
  ATTN_CHECK(out.q && out.q_t && out.scale && out.amax, "layernorm with fp8 output: q, q_t, scale and amax all needed");
  if (N == 0) return;
  const float drop_scale = drop_p > 0.0f ? 1.0f / (1.0f - drop_p) : 1.0f;
  layernorm_forward_fp8_kernel<<<ceil_div(N, kFp8LnTileRows), kFp8LnWarps * 32, 0, stream>>>(
      static_cast<uint8_t*>(out.q), static_cast<uint8_t*>(out.q_t), out.scale, out.amax, mean, rstd, res_out, inp,
      branch, weight, bias, N, C, drop_p, drop_scale, drop_key);
  CUDA_CHECK_LAUNCH();
}
}  // namespace

void layernorm_forward_fp8(const Fp8CastTarget& out, float* mean, float* rstd, const bf16* inp, const bf16* weight,
                           const bf16* bias, int N, int C, cudaStream_t stream) {
  launch_layernorm_fp8(out, mean, rstd, nullptr, inp, nullptr, weight, bias, N, C, 0.0f, 0, stream);
}

void residual_layernorm_forward_fp8(bf16* res_out, const Fp8CastTarget& out, float* mean, float* rstd, const bf16* res,
                                    const bf16* branch, const bf16* weight, const bf16* bias, int N, int C,
                                    DropoutState drop, cudaStream_t stream) {
  launch_layernorm_fp8(out, mean, rstd, res_out, res, branch, weight, bias, N, C, drop.p, drop.device_key(), stream);
}

template <typename T>
void layernorm_backward(T* dinp, float* dweight, float* dbias, float* scratch, const T* dout, const T* inp,
                        const T* weight, const float* mean, const float* rstd, int N, int C, bool add_dinp,
                        bool add_params, cudaStream_t stream) {
  if (rows_fit_registers<T>(C) && N > 0) {
    const int blocks = backward_blocks(N);
    launch_layernorm_backward_rows(blocks, dinp, scratch, dout, inp, weight, mean, rstd, N, C, add_dinp, stream);
    layernorm_params_final_kernel<<<ceil_div(2 * C, 32), dim3(32, kFinalLanes), 0, stream>>>(dweight, dbias, scratch,
                                                                                            blocks, C, add_params);
    CUDA_CHECK_LAUNCH();
    return;
  }
  // the generic path (and N = 0) adds: an output written rather than added is zeroed first
  if (!add_dinp) CUDA_CHECK(cudaMemsetAsync(dinp, 0, static_cast<size_t>(N) * C * sizeof(T), stream));
  if (!add_params) {
    CUDA_CHECK(cudaMemsetAsync(dweight, 0, C * sizeof(float), stream));
    CUDA_CHECK(cudaMemsetAsync(dbias, 0, C * sizeof(float), stream));
  }
  if (N == 0) return;
  const int block = 256, rows_per_block = block / 32;
  layernorm_backward_input_kernel<<<ceil_div(N, rows_per_block), block, 0, stream>>>(dinp, dout, inp, weight, mean,
                                                                                     rstd, N, C);
  CUDA_CHECK_LAUNCH();
  const int chunks = ceil_div(N, kRowsPerChunk);
  layernorm_backward_params_partial_kernel<<<dim3(ceil_div(C, 32), chunks), dim3(32, 8), 0, stream>>>(
      scratch, dout, inp, mean, rstd, N, C);
  CUDA_CHECK_LAUNCH();
  layernorm_backward_params_final_kernel<<<ceil_div(C, 256), 256, 0, stream>>>(dweight, dbias, scratch, chunks, C);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                                                              \
  template void layernorm_forward<T>(T*, float*, float*, const T*, const T*, const T*, int, int, cudaStream_t);    \
  template void layernorm_backward<T>(T*, float*, float*, float*, const T*, const T*, const T*, const float*,      \
                                      const float*, int, int, bool, bool, cudaStream_t);                         \
  template void residual_layernorm_forward<T>(T*, T*, float*, float*, const T*, const T*, const T*, const T*, int, \
                                              int, DropoutState, cudaStream_t);                                  \
  template void residual_layernorm_forward_split_k<T>(T*, T*, float*, float*, const T*, const float*, int,       \
                                                      const T*, const T*, const T*, int, int, cudaStream_t);     \
  template bool residual_layernorm_split_k_supports<T>(int);
INSTANTIATE(float)
INSTANTIATE(bf16)

}  // namespace attn::kern
