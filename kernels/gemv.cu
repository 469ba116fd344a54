// The decode-step GEMV: see kernels/gemv.h for the math of every part.
//
// On tensor cores: mma.sync m16n8k16 with the activations as A (row m = sequence, rows 8..15
// and rows >= M zero) and 8 weight rows as B, so a block's tile is 8 output columns n0..n0+7
// for all M rows. The contraction order is ours to choose (A and B agree on it): lane (g, t)
// (g = lane / 4, t = lane % 4) loads 16 bytes of weight row n0 + g at k = 32 c + 8 t of chunk c,
// and the same 8 elements of activation row g from shared memory; their words 0-1 are one
// k-step's b0, b1 (and a0, a2), words 2-3 the next. So every weight byte is one 16-byte global
// load and no conversion, two mma per 32 k, and no shuffle reduction (the accumulator is
// c0, c1 = (row g, columns 2t, 2t + 1)).
// The 4 warps of a block split K (chunk c goes to warp c % 4, kInFlight chunks a lane in
// flight) and add their partial tiles in a fixed order (deterministic); warp 0 applies the
// epilogue. Blocks grid-stride over the tiles and load the next tile's weights before the
// epilogue of the current one. Launched with programmatic dependent launch: the first
// tile's weights are loaded (and the rest of its rows prefetched to L2) before waiting for the
// kernel before it, and the cache append's position is read right after the wait, beside a'.
// Two instantiations: 8 chunks a lane in flight (96 registers, 5 blocks per SM), and 24 for
// calls of one tile a block of up to 3 load groups (fc_proj, K = 3072, 96 blocks), which then
// have their whole tile in registers before the wait instead of two groups to fetch after it.
// Measured on the H100 (bench-generate, GPT-2 124M, same call): the 24-chunk kernel took the
// decode step from 0.287 to 0.277 ms at B = 1 and from 0.477 to 0.407 at B = 8; the L2 prefetch
// and the early position about 4 us more (all of it on the H200: 0.270 -> 0.256 ms at B = 1,
// 0.458 -> 0.383 at B = 8, with decode attention's early loads). Tried and dropped on the H100:
// two accumulator chains (no change); a cp.async ring through shared memory (no faster, and with
// more than a few KiB of shared memory a block the step's kernels ask for different L1/shared
// splits, so SMs drain between them: 0.322 ms; with the max-shared split for all of them 0.292,
// but the CUDA-core decode attention then lost 4-6% standalone). A persistent kernel with a grid barrier between
// the step's stages is slower than this chain (tests/gpu/bench_step_boundary.cu: 1.9-2.7 us a
// barrier against 0.7-1.1 us a launch). Letting the next kernel start before this one's wait, so
// that several kernels' weights load ahead of the one computing, lost too (session 28, H100, B = 1:
// 0.263 -> 0.276 ms with the GEMVs early, 0.286-0.299 with decode attention as well): the waiting
// kernels' blocks slow the kernel on the critical path by more than their early loads save.
// Fusing fc and fc_proj into one kernel (blocks of 16 hidden units, their fc_proj partials summed
// by 64-bit atomics into a fixed-point sum that the next GEMVs add) was correct and slower
// (session 32, H100, branch s32-fused-mlp-dropped: B = 1 0.251 -> 0.344 ms, B = 8 0.382 -> 0.776):
// 192 partials an output are ~147 k atomic adds a layer at B = 1, ~4 us at ~40 G a second.
// The LM head's blocks (several tiles each) no longer prefetch the tile after next to L2: without
// it the step is faster (session 36, H100, call A, three rounds: B = 1 0.246 -> 0.242 ms, B = 2
// 0.260 -> 0.255, B = 4 0.289 -> 0.285, B = 8 level at 0.340; prefetching farther ahead was slower
// still, session 35). Also dropped (session 36, branch s36-ln-warp-rows-dropped): the layernorm
// prologue a warp a row with the row in registers and one barrier after the wait instead of three;
// ln_w and ln_b then load after the wait, and the step went from 0.242 to 0.266 ms at B = 1 (fc
// 39.4 -> 56.8 us of critical path a step, qkv 45.2 -> 51.6).
#include "core/cuda_check.h"
#include "core/error.h"
#include "kernels/common.cuh"
#include "kernels/flash_attention_common.cuh"
#include "kernels/gemv.h"
#include "kernels/grid_argmax.cuh"
#include "kernels/tiles/hardware.cuh"
#include "kernels/tiles/pdl.cuh"

#include <algorithm>
#include <cmath>

namespace attn::kern {

namespace {

using bf16 = __nv_bfloat16;
using u64 = unsigned long long;

constexpr int kGemvWarps = 4;                                 // split K of one tile
constexpr int kGemvThreads = kGemvWarps * tiles::kWarpSize;
constexpr int kGemvBlocksPerSm = 5;  // 96 registers a thread: no spills
constexpr int kTileCols = 8;                                  // output columns (weight rows) of a tile: mma's n
constexpr int kPackElems = 8;                                 // bf16 per 16-byte load
constexpr int kChunk = 4 * kPackElems;                        // k of one chunk: 4 lanes x 8 elements
constexpr int kChunksInFlight = 8;                            // 16-byte weight loads a lane has in flight
constexpr int kDeepInFlight = 24;    // ... in the kernel for blocks of one tile of K <= 3072 (fc_proj): the whole tile
constexpr int kDeepBlocksPerSm = 2;  // its registers (the 96 weight registers a lane): such calls have <= 1 block per SM
constexpr int kLineElems = tiles::kCacheLineBytes / static_cast<int>(sizeof(bf16));  // bf16 of one cache line
constexpr int kRowPad = 8;  // shared rows K + 8 elements apart: the 8 rows of a load hit different banks
// after a' (M rows of K + kRowPad): mean and rstd per row, the warps' partial tiles (2 buffers),
// the block's argmax keys per row and its last-block flag
constexpr int kSmemTail = 2 * kGemvMaxRows * sizeof(float) + 2 * (kGemvWarps - 1) * tiles::kWarpSize * 2 * sizeof(float) +
                          (kGemvMaxRows + 1) * sizeof(u64);
constexpr int kSmemLimit = 100 * 1024;  // K up to ~6000 at M = 8
constexpr float kLnEps = 1e-5f;         // as kernels/layernorm.cu
constexpr float kSqrt2OverPi = 0.7978845608028654f;

// Weights are read once per step: no L1 allocation.
__device__ __forceinline__ uint4 load_weights(const bf16* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }


__device__ __forceinline__ float gelu_tanh(float x) {
  const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + tanhf(u));
}

// a' (M rows, ld apart) into shared memory: a copy, then in place bf16(layernorm(a)) with the
// row statistics in one pass over the row: fp32 sum and sum of squares, var = E[x^2] - mean^2.
// Its rounding error, about 6e-8 (var + mean^2), stays below the bf16 rounding of a' (2^-9
// relative) while |mean| < ~100 standard deviations, far beyond a residual stream's rows. One pass
// and one pair of shuffle reductions after the wait instead of two (kernels/layernorm.cu keeps the
// centred two-pass form): the decode step went from 0.241 to 0.235 ms at B = 1 and from 0.339 to
// 0.325 at B = 8 (session 36, H100, call C; B = 2 0.254 -> 0.248, B = 4 0.284 -> 0.277, call D).
// ln_w0, ln_b0: this thread's first packs of ln_w, ln_b (k = 8 threadIdx.x), loaded before the wait.
__device__ void stage_rows(const GemvArgs& p, bf16* as, int ld, float* stats, const uint4& ln_w0, const uint4& ln_b0) {
  const int K = p.K, M = p.M, lane = threadIdx.x % tiles::kWarpSize, warp = threadIdx.x / tiles::kWarpSize;
  for (int i = threadIdx.x * kPackElems; i < M * K; i += kGemvThreads * kPackElems)
    *reinterpret_cast<uint4*>(as + (i / K) * ld + i % K) = *reinterpret_cast<const uint4*>(p.a + i);
  __syncthreads();
  if (!p.ln_w) return;
  for (int m = warp; m < M; m += kGemvWarps) {
    const bf16* x = as + m * ld;
    float s = 0.0f, sq = 0.0f;
    for (int k = lane * kPackElems; k < K; k += tiles::kWarpSize * kPackElems) {
      float f[kPackElems];
      unpack_bf16x8(*reinterpret_cast<const uint4*>(x + k), f);
#pragma unroll
      for (int j = 0; j < kPackElems; ++j) s += f[j], sq = fmaf(f[j], f[j], sq);
    }
    const float mean = warp_sum(s) / K;
    const float var = fmaxf(warp_sum(sq) / K - mean * mean, 0.0f);
    const float rstd = rsqrtf(var + kLnEps);
    if (lane == 0) stats[m] = mean, stats[kGemvMaxRows + m] = rstd;
  }
  __syncthreads();
  for (int k = threadIdx.x * kPackElems; k < K; k += kGemvThreads * kPackElems) {
    const bool first = k == static_cast<int>(threadIdx.x) * kPackElems;
    float w[kPackElems], b[kPackElems];
    unpack_bf16x8(first ? ln_w0 : *reinterpret_cast<const uint4*>(p.ln_w + k), w);
    unpack_bf16x8(first ? ln_b0 : *reinterpret_cast<const uint4*>(p.ln_b + k), b);
    for (int m = 0; m < M; ++m) {
      uint4* row = reinterpret_cast<uint4*>(as + m * ld + k);
      float x[kPackElems];
      unpack_bf16x8(*row, x);
      Pack128<bf16> o;
#pragma unroll
      for (int j = 0; j < kPackElems; ++j) o.set(j, (x[j] - stats[m]) * stats[kGemvMaxRows + m] * w[j] + b[j]);
      memcpy(row, &o, sizeof(o));
    }
  }
  __syncthreads();
}

// The epilogue of output (m, n) = acc, given bias[n] and residual[m, n] (as floats, 0 when
// absent): returns float(out[m, n]) after storing what is asked.
__device__ __forceinline__ float epilogue(const GemvArgs& p, int m, int n, float acc, float bias, float residual, int position) {
  float v = acc + bias;
  if (p.gelu) v = gelu_tanh(v);
  bf16 y = __float2bfloat16_rn(v);
  const size_t i = static_cast<size_t>(m) * p.N + n;
  if (p.residual) y = __float2bfloat16_rn(residual + __bfloat162float(y));
  if (p.out) p.out[i] = y;
  const float yf = __bfloat162float(y);
  if (p.out_f32) p.out_f32[m * p.ld_f32 + n] = yf;
  if (p.k_cache) {
    const int j = n - p.cache_col0, span = p.Hkv * p.D;
    const int pos = j >= 0 && j < 2 * span ? position : p.max_len;
    if (pos < p.max_len) {
      const int kv = j / span, g = (j % span) / p.D, d = j % p.D;
      (kv ? p.v_cache : p.k_cache)[((static_cast<size_t>(m) * p.Hkv + g) * p.max_len + pos) * p.D + d] = y;
    }
  }
  return yf;
}

// Weight row n of tile `tile`'s row r (n = tile * 8 + r clamped to N - 1: a last tile's rows past
// N read row N - 1, whose columns are never stored).
__device__ __forceinline__ const bf16* weight_row(const GemvArgs& p, int tile, int r) {
  return p.w + static_cast<size_t>(min(tile * kTileCols + r, p.N - 1)) * p.K;
}

// The weights of lane (g, t) for chunks c0 + 4u (u < kInFlight) of tile `tile`: row
// n0 + g (clamped to N - 1; its columns are never stored), zero past K.
template <int kInFlight>
__device__ __forceinline__ void load_chunks(uint4 (&w)[kInFlight], const GemvArgs& p, int tile, int c0, int g, int t) {
  const bf16* row = weight_row(p, tile, g) + t * kPackElems;
#pragma unroll
  for (int u = 0; u < kInFlight; ++u) {
    const int k = (c0 + u * kGemvWarps) * kChunk;
    w[u] = k + t * kPackElems < p.K ? load_weights(row + k) : make_uint4(0, 0, 0, 0);
  }
}

// A tile is complete: warps 1.. hand their partial sums to warp 0 (through `part`), which adds
// them and runs the epilogue of its row g's two columns; bias and residual of the block's first
// tile (first_tile) were loaded before the wait. The fused argmax keeps this lane's best key.
__device__ __forceinline__ void finish_tile(const GemvArgs& p, int N, float (&acc)[4], float* part, int warp, int lane,
                                            int g, int t, int tile, int first_tile, bool row_live,
                                            const float (&bias0)[2], const float (&res0)[2], int position, u64& best) {
  if (warp > 0) {
    part[((warp - 1) * tiles::kWarpSize + lane) * 2] = acc[0];
    part[((warp - 1) * tiles::kWarpSize + lane) * 2 + 1] = acc[1];
  }
  __syncthreads();
  if (warp == 0) {
    for (int v = 0; v < kGemvWarps - 1; ++v) {
      acc[0] += part[(v * tiles::kWarpSize + lane) * 2];
      acc[1] += part[(v * tiles::kWarpSize + lane) * 2 + 1];
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int n = tile * kTileCols + 2 * t + i;
      if (row_live && n < N) {
        const bool first = tile == first_tile;
        const float bias = first ? bias0[i] : p.bias ? __bfloat162float(p.bias[n]) : 0.0f;
        const float res =
            first ? res0[i] : p.residual ? __bfloat162float(p.residual[static_cast<size_t>(g) * N + n]) : 0.0f;
        const float y = epilogue(p, g, n, acc[i], bias, res, position);
        if (p.argmax && !isnan(y)) best = max(best, argmax_key(y, n));
      }
    }
  }
}

// The fused argmax's last part: this lane's best key for row g (warp 0) -> the row's over its 4
// lanes -> the block's (shared atomics) -> the grid's (grid_argmax.cuh).
__device__ __forceinline__ void argmax_over_grid(const GemvArgs& p, int M, u64* block_best, u64 best, int warp, int g,
                                                 int t, bool row_live) {
  if (warp == 0) {
    best = max(best, __shfl_xor_sync(0xffffffffu, best, 1));
    best = max(best, __shfl_xor_sync(0xffffffffu, best, 2));
    if (t == 0 && row_live && best) atomicMax(&block_best[g], best);
  }
  __syncthreads();
  grid_argmax_finish(block_best, 0, M, p.argmax_scratch, M, p.argmax,
                     reinterpret_cast<int*>(&block_best[kGemvMaxRows]));
}

// out = epilogue(a' W^T) for M <= 8 rows; see gemv.h and the top of this file.
template <int kInFlight>
__global__ void __launch_bounds__(kGemvThreads, kInFlight == kChunksInFlight ? kGemvBlocksPerSm : kDeepBlocksPerSm)
    gemv_kernel(GemvArgs p) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int K = p.K, N = p.N, M = p.M, ld = K + kRowPad;
  bf16* as = reinterpret_cast<bf16*>(smem);  // (M, ld)
  float* stats = reinterpret_cast<float*>(smem + static_cast<size_t>(M) * ld * sizeof(bf16));
  float* partials = stats + 2 * kGemvMaxRows;  // [2][kGemvWarps - 1][32 lanes][2]
  u64* block_best = reinterpret_cast<u64*>(partials + 2 * (kGemvWarps - 1) * tiles::kWarpSize * 2);
  const int lane = threadIdx.x % tiles::kWarpSize, warp = threadIdx.x / tiles::kWarpSize;
  const int g = lane / 4, t = lane % 4;
  const int tiles_n = ceil_div(N, kTileCols), chunks = ceil_div(K, kChunk);
  constexpr int kStep = kGemvWarps * kInFlight;  // chunks a warp advances per load group

  // Before the wait (nothing in the step writes weights): the first tile's first chunks into
  // registers, the rest of this warp's chunks of it into L2.
  int tile = blockIdx.x, c0 = warp;
  uint4 w[kInFlight];
  load_chunks<kInFlight>(w, p, tile, c0, g, t);
  {
    const bf16* row = weight_row(p, tile, g);
    for (int c = c0 + kStep; c < chunks; c += kGemvWarps)
      if ((c * kChunk + t * kPackElems) % kLineElems == 0) prefetch_l2(row + c * kChunk + t * kPackElems);
  }
  // warp 0's epilogue operands of the first tile: bias (and layernorm weights) before the wait,
  // the residual (written by earlier kernels) right after it, in flight while a' is staged
  const bool row_live = g < M;
  const int first_tile = blockIdx.x;
  float bias0[2] = {0.0f, 0.0f}, res0[2] = {0.0f, 0.0f};
  if (warp == 0 && row_live && p.bias)
    for (int i = 0; i < 2; ++i)
      if (first_tile * kTileCols + 2 * t + i < N) bias0[i] = __bfloat162float(p.bias[first_tile * kTileCols + 2 * t + i]);
  uint4 ln_w0 = make_uint4(0, 0, 0, 0), ln_b0 = make_uint4(0, 0, 0, 0);
  if (p.ln_w && static_cast<int>(threadIdx.x) * kPackElems < K) {
    ln_w0 = *reinterpret_cast<const uint4*>(p.ln_w + threadIdx.x * kPackElems);
    ln_b0 = *reinterpret_cast<const uint4*>(p.ln_b + threadIdx.x * kPackElems);
  }
  tiles::wait_for_predecessor();
  tiles::launch_dependents();
  // the cache append's position (the decode step's first kernel wrote it), in flight with a'
  const int position = warp == 0 && row_live && p.k_cache ? p.positions[g] : 0;
  if (warp == 0 && row_live && p.residual)
    for (int i = 0; i < 2; ++i)
      if (first_tile * kTileCols + 2 * t + i < N) res0[i] = __bfloat162float(p.residual[static_cast<size_t>(g) * N + first_tile * kTileCols + 2 * t + i]);
  stage_rows(p, as, ld, stats, ln_w0, ln_b0);
  if (threadIdx.x < M) block_best[threadIdx.x] = 0;

  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  u64 best = 0;  // argmax (warp 0): this lane's best key for row g
  for (int parity = 0; tile < tiles_n;) {
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int c = c0 + u * kGemvWarps, k = c * kChunk + t * kPackElems;
      if (c >= chunks) break;  // the same for the whole warp
      const uint4 a = row_live && k < K ? *reinterpret_cast<const uint4*>(as + g * ld + k) : make_uint4(0, 0, 0, 0);
      const uint32_t a0[4] = {a.x, 0u, a.y, 0u}, a1[4] = {a.z, 0u, a.w, 0u};
      flash::mma16816(acc, a0, w[u].x, w[u].y);
      flash::mma16816(acc, a1, w[u].z, w[u].w);
    }
    // the next load group: further along this tile, else the first of the next tile
    int next_tile = tile, next_c0 = c0 + kStep;
    if (next_c0 >= chunks) next_tile += gridDim.x, next_c0 = warp;
    if (next_tile < tiles_n) load_chunks<kInFlight>(w, p, next_tile, next_c0, g, t);
    if (next_tile != tile) {  // the tile is complete: warps 1.. hand their partials to warp 0
      float* part = partials + parity * (kGemvWarps - 1) * tiles::kWarpSize * 2;
      finish_tile(p, N, acc, part, warp, lane, g, t, tile, first_tile, row_live, bias0, res0, position, best);
      acc[0] = acc[1] = acc[2] = acc[3] = 0.0f;
      parity ^= 1;
    }
    tile = next_tile, c0 = next_c0;
  }
  if (p.argmax) argmax_over_grid(p, M, block_best, best, warp, g, t, row_live);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <int kInFlight>
void launch_gemv(const GemvArgs& p, int blocks, size_t smem, cudaStream_t stream, int carveout_percent) {
  tiles::set_smem_limit_once<gemv_kernel<kInFlight>>(kSmemLimit);
  tiles::launch_pdl_carveout(gemv_kernel<kInFlight>, dim3(blocks), dim3(kGemvThreads), smem, stream, carveout_percent, p);
}

}  // namespace

void gemv(const GemvArgs& p, cudaStream_t stream, int carveout_percent) {
  ATTN_CHECK(p.M >= 1 && p.M <= kGemvMaxRows, "gemv: M = {} rows must be in [1, {}]", p.M, kGemvMaxRows);
  ATTN_CHECK(p.N >= 1 && p.K >= kPackElems && p.K % kPackElems == 0, "gemv: N = {} must be >= 1 and K = {} a positive multiple of {}",
             p.N, p.K, kPackElems);
  ATTN_CHECK(p.a && p.w && aligned16(p.a) && aligned16(p.w), "gemv: a and w must be non-null and 16-byte aligned");
  ATTN_CHECK(!p.ln_w || (p.ln_b && aligned16(p.ln_w) && aligned16(p.ln_b)), "gemv: layernorm weight and bias must both be given, 16-byte aligned");
  ATTN_CHECK(p.out || p.out_f32, "gemv: nothing to write (out and out_f32 are both null)");
  ATTN_CHECK(!p.out_f32 || p.ld_f32 >= p.N, "gemv: ld_f32 = {} must be >= N = {}", p.ld_f32, p.N);
  ATTN_CHECK(!p.argmax || p.argmax_scratch, "gemv: argmax needs argmax_scratch");
  ATTN_CHECK(!p.k_cache || (p.v_cache && p.positions && p.Hkv > 0 && p.D > 0 && p.max_len > 0 && p.cache_col0 >= 0 &&
                            p.cache_col0 + 2 * p.Hkv * p.D <= p.N),
             "gemv: the cache append needs both caches, positions and columns [col0, col0 + 2 Hkv D) inside N");
  const size_t smem = static_cast<size_t>(p.M) * (p.K + kRowPad) * sizeof(bf16) + kSmemTail;
  ATTN_CHECK(smem <= static_cast<size_t>(kSmemLimit), "gemv: K = {} needs {} bytes of shared memory at M = {} (limit {})",
             p.K, smem, p.M, kSmemLimit);
  const int tiles_n = ceil_div(p.N, kTileCols), chunks = ceil_div(p.K, kChunk);
  const int blocks = std::min(tiles_n, tiles::sm_count() * kGemvBlocksPerSm);
  // one tile a block of up to kDeepInFlight load-group chunks a lane (fc_proj): all of it before the wait
  if (blocks == tiles_n && chunks > kGemvWarps * kChunksInFlight && chunks <= kGemvWarps * kDeepInFlight)
    launch_gemv<kDeepInFlight>(p, blocks, smem, stream, carveout_percent);
  else
    launch_gemv<kChunksInFlight>(p, blocks, smem, stream, carveout_percent);
}

}  // namespace attn::kern
