// The tensor-core decode split kernel (bf16 activations; bf16, e4m3 or int8 cache). Included by
// kernels/decode_attention.cu, which owns the contract (decode_attention.h), the plan and the
// combine pass.
//
// Block (head group j, split s) x kv head g x sequence b, kWarps warps (4 or 8): the up to 16 query heads
// g*G + 16j .. that share kv head g form the M = 16 rows of mma.sync m16n8k16 tiles (rows past
// the group's heads are zero and never written; MHA uses one row). The block streams cache rows
// [t_begin, t_end) of kv head g through a ring of kStages shared-memory stages of 16 kWarps tokens
// (K, V and, for 8-bit, their scales), filled by 16-byte cp.async (rows past t_end zero-filled,
// never read), kStages - 1 tiles in flight while one is computed (kStages = 3 or 4). Warp w
// owns tokens 16w .. 16w + 15 of each stage and keeps its own online softmax over them (exp2 domain):
//   S = Q K^T (fp32),  s_t = S_t * scale * log2(e) * ks_t   (-inf past t_end)
//   m' = max(m, max_t s_t),  p_t = 2^(s_t - m'),  l' = 2^(m - m') l + sum_t p_t,
//   O' = 2^(m - m') O + P V
// with P rounded to the mma input type. 8-bit caches: K and V are converted to fp16 (exact:
// e4m3 and int8 are fp16 values) right after the shared-memory read, QK^T and PV run in fp16;
// the V scales fold into P relative to their maximum r over the warp's 16 tokens,
//   P_t = p_t vs_t / r,  O' = (2^(m - m') R / r) O + P V  (O is kept in units of R = the last r)
// so P stays in [0, 1]. At the end the warps' states merge in shared memory
// (write_block_state). Blocks whose chunk starts past lengths[b] exit at once.
// Why 8 warps as well as 4: Nsight Compute found the 4-warp kernel latency-bound in its warps
// (one block per SM in the split plan, so one warp per scheduler, 0.29 instructions issued per
// cycle); 8 warps give each scheduler two independent slices to interleave.
//
// Why tensor cores for MHA too: decode is bandwidth-bound; per cache element this path costs
// a shared-memory read and a share of one mma (plus one conversion for 8-bit), where the
// CUDA-core path costs an unpack and an FMA per element and query head, so the tensor path
// keeps up with HBM with fewer instructions even at M = 1, and the cp.async ring keeps
// 2-3 stages of loads in flight per block.
#pragma once
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cfloat>
#include <cstdint>

#include "kernels/decode_attention_common.cuh"
#include "kernels/flash_attention_common.cuh"
#include "kernels/tiles/hardware.cuh"
#include "kernels/tiles/pdl.cuh"

namespace attn::kern {
namespace {

using flash::cp_async16;
using flash::cp_async4;
using flash::cp_async_commit;
using flash::cp_async_wait;
using flash::smem_u32;

constexpr int kMmaHeads = 16;  // M of the mma tile: query heads per block

// Shared-memory geometry of one (cache dtype, D). A cache row (D elements, kRowBytes) is kChunks
// 16-byte chunks; rows are padded to kStride = kRowBytes + 16 bytes, which puts the 8 lanes of a
// 16-byte shared-memory read phase on 8 different bank groups for both fragment reads below
// (K: row g or g + 8, chunk 2t + x; V: row 2t + x, chunk g + 8u).
template <KVCacheDType C, int D, int kWarps>
struct MmaDecodeGeometry {
  static constexpr int kThreads = 32 * kWarps;
  static constexpr bool k8bit = is_8bit(C);
  static constexpr int kElemBytes = element_bytes(C);
  static constexpr int kTileTokens = 16 * kWarps;  // tokens per stage
  static constexpr int kRowBytes = D * kElemBytes;
  static constexpr int kChunks = kRowBytes / 16;
  static constexpr int kStride = kRowBytes + 16;
  static constexpr int kE = 16 / kElemBytes;                 // elements per chunk (8 or 16)
  static constexpr int kStepsPerChunk = kE / 4;              // k-steps one lane's chunk feeds
  static constexpr int kChunksPerLane = kChunks / 4;         // K chunks a lane reads per row
  static constexpr int kSteps = D / 16;                      // k-steps of QK^T
  static constexpr int kVPerLane = D / 8;                    // V elements a lane reads per row
  static constexpr int kU = kVPerLane < kE ? kVPerLane : kE;  // V elements per read unit
  static constexpr int kUnits = kVPerLane / kU;
  static constexpr int kUnitBytes = kU * kElemBytes;         // 8 or 16
  static constexpr int kKvBytes = kTileTokens * kStride;     // K (or V) of one stage
  static constexpr int kScaleBytes = k8bit ? kTileTokens * 4 : 0;
  static constexpr int kStageBytes = 2 * kKvBytes + 2 * kScaleBytes;
  // 4 warps: 4 stages (3 tiles in flight per block), 3 for bf16 D = 128 (34 KiB a stage), so
  // that at least 2 blocks (8 warps) fit an SM's 228 KiB. 8 warps: 3 stages of 21-70 KiB, one
  // block per SM at most (bf16 D = 128: 204 KiB). Tried on the H200 with 4 warps and dropped: a
  // ~100 KiB ring at 2 blocks per SM (no faster), and unpadded rows with an XOR swizzle (1-8%
  // slower; ncu counts ~50% more L2 sectors than used either way: cp.async's 16-byte requests).
  static constexpr int kStages = kStageBytes > 24 * 1024 ? 3 : 4;
  static constexpr int kMergeBytes = kWarps * kMmaHeads * (D + 2) * 4;
  static constexpr int kSmemBytes = kStages * kStageBytes > kMergeBytes ? kStages * kStageBytes : kMergeBytes;
  static_assert(kChunksPerLane >= 1 && kChunksPerLane <= 4, "K row of 4..16 chunks");
  static_assert((kTileTokens * kChunks) % kThreads == 0, "whole chunks per thread");
  static_assert(kTileTokens * 2 <= kThreads, "one scale per thread");
  static_assert(kStages * kStageBytes + (int)sizeof(MergeScratch<kThreads>) <= tiles::kMaxSmemPerBlockSm90, "fits one SM");
};

// ---- the fragment layout, once -----------------------------------------------------------
// mma.sync m16n8k16 (row.col), lane = 4 g + t (g = lane / 4, t = lane % 4); element pairs in a
// 32-bit register, the lower k (or column) in the lower half:
//   A (16 x 16): a0 = (row g, k 2t..2t+1), a1 = (row g+8, k 2t..), a2 = (row g, k 2t+8..2t+9), a3 = (row g+8, k 2t+8..)
//   B (16 x 8):  b0 = (k 2t..2t+1, col g),  b1 = (k 2t+8..2t+9, col g)
//   C (16 x 8):  c0, c1 = (row g, col 2t, 2t+1),  c2, c3 = (row g+8, col 2t, 2t+1)
// The k index of QK^T is the head dim d, in an order of our choosing (Q and K agree on it):
// lane t reads whole 16-byte chunks of a K row, chunk kchunk(t, i) for i < kChunksPerLane, and
// k-step (i, s) of the chunk (s < kStepsPerChunk) takes its elements 4s .. 4s + 3:
//   k 2t, 2t+1  <->  d = kchunk(t, i) * kE + 4s + {0, 1};   k 2t+8, 2t+9  <->  d = ... + {2, 3}.
// S's column n of n-tile j is token 8j + n of the warp's 16, so the S accumulators are P's A
// fragment as they stand (P's k = token) and lane (g, t) reads V rows 2t, 2t+1, 2t+8, 2t+9.
// The n index of PV is d, again in our order: n-tile jn, column g <-> d = (g + 8 (jn / kU)) kU
// + jn % kU, chosen so that lane g's kVPerLane columns come in kUnits contiguous units (unit u at
// element (g + 8u) kU).
template <int kChunksPerLane>
__device__ __forceinline__ int kchunk(int t, int i) {
  return kChunksPerLane == 1 ? t : 2 * t + (i & 1) + 8 * (i >> 1);
}

// Two 8-bit values (bytes `sel` picks: 0x4140 bytes 0, 1; 0x4342 bytes 2, 3) -> fp16x2, exactly.
// int8 x: the fp16 with bits 0x64 (x + 128) is 1024 + x + 128; minus 1152 (0x6480) leaves x.
template <KVCacheDType C>
__device__ __forceinline__ uint32_t to_half2(uint32_t w, uint32_t sel) {
  if constexpr (C == KVCacheDType::INT8) {
    const uint32_t h = __byte_perm(w ^ 0x80808080u, 0x64646464u, sel);
    uint32_t r;
    asm("sub.f16x2 %0, %1, %2;" : "=r"(r) : "r"(h), "r"(0x64806480u));
    return r;
  } else {
    const uint32_t pair = sel == 0x4140u ? (w & 0xffffu) : (w >> 16);
    const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)pair, __NV_E4M3);
    return (uint32_t)h.x | ((uint32_t)h.y << 16);
  }
}

// Bytes e, e + 1 (e even) of the same word of two 8-bit rows A and B, interleaved as
// {A_e, B_e, A_e+1, B_e+1}: to_half2(., 0x4140u) is then (A_e, B_e), to_half2(., 0x4342u) (A_e+1, B_e+1).
__device__ __forceinline__ uint32_t interleave_bytes(uint32_t a, uint32_t b, int e) {
  return __byte_perm(a, b, (e & 2) ? 0x7362u : 0x5140u);
}

// c += a b in the cache's mma type (bf16, or fp16 for 8-bit caches).
template <KVCacheDType C>
__device__ __forceinline__ void mma_tile(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  flash::mma16816<is_8bit(C)>(c, a, b0, b1);
}
template <KVCacheDType C>
__device__ __forceinline__ uint32_t pack_mma(float lo, float hi) {
  if constexpr (is_8bit(C)) return flash::pack_f16(lo, hi);
  else return flash::pack_bf16(lo, hi);
}

// One warp's online-softmax state over its 16-token slices (rows g and g + 8 of the tile).
template <KVCacheDType C, int D, int kWarps>
struct MmaWarpState {
  using Geo = MmaDecodeGeometry<C, D, kWarps>;
  uint32_t q[Geo::kSteps][4];   // Q's A fragments (unscaled)
  float acc[D / 8][4];          // O, n-tile jn (C layout)
  float m[2], l[2];             // rows g, g + 8; l is this lane's share (summed over t at the end)
  float r_scale;                // R: the units of acc (8-bit)

  // q of head h0 + row at column pair d, d + 1 (zero for rows past the group's heads).
  __device__ __forceinline__ uint32_t q_pair(const DecodeArgs& a, const DecodeBlock& blk, int row, int d) const {
    if (row >= blk.heads) return 0u;
    const bf16* p = static_cast<const bf16*>(a.q) + (int64_t)blk.b * a.q_batch_stride + (int64_t)(blk.h0 + row) * D + d;
    return pack_mma<C>(__bfloat162float(p[0]), __bfloat162float(p[1]));  // exact for bf16
  }

  __device__ __forceinline__ void init(const DecodeArgs& a, const DecodeBlock& blk, int g, int t) {
#pragma unroll
    for (int ks = 0; ks < Geo::kSteps; ++ks) {
      const int d = kchunk<Geo::kChunksPerLane>(t, ks / Geo::kStepsPerChunk) * Geo::kE + 4 * (ks % Geo::kStepsPerChunk);
      q[ks][0] = q_pair(a, blk, g, d);
      q[ks][1] = q_pair(a, blk, g + 8, d);
      q[ks][2] = q_pair(a, blk, g, d + 2);
      q[ks][3] = q_pair(a, blk, g + 8, d + 2);
    }
#pragma unroll
    for (int jn = 0; jn < D / 8; ++jn)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[jn][c] = 0.0f;
    m[0] = m[1] = -INFINITY;
    l[0] = l[1] = 0.0f;
    r_scale = 1.0f;
  }

  // S = Q K^T over the warp's 16 tokens (k_rows: its first K row in shared memory); the two
  // n-tiles (tokens 0-7, 8-15) alternate, two independent accumulator chains.
  __device__ __forceinline__ void scores(const uint8_t* k_rows, int g, int t, float (&s)[2][4]) const {
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) s[j][c] = 0.0f;
#pragma unroll
    for (int i = 0; i < Geo::kChunksPerLane; ++i) {
      uint32_t words[2][4];
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const uint4 w = *reinterpret_cast<const uint4*>(k_rows + (8 * j + g) * Geo::kStride +
                                                        kchunk<Geo::kChunksPerLane>(t, i) * 16);
        words[j][0] = w.x, words[j][1] = w.y, words[j][2] = w.z, words[j][3] = w.w;
      }
#pragma unroll
      for (int st = 0; st < Geo::kStepsPerChunk; ++st)
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          uint32_t b0, b1;
          if constexpr (Geo::k8bit) {
            b0 = to_half2<C>(words[j][st], 0x4140u);
            b1 = to_half2<C>(words[j][st], 0x4342u);
          } else {
            b0 = words[j][2 * st];
            b1 = words[j][2 * st + 1];
          }
          mma_tile<C>(s[j], q[i * Geo::kStepsPerChunk + st], b0, b1);
        }
    }
  }

  // O += P V over the warp's 16 tokens (v_rows: its first V row in shared memory).
  __device__ __forceinline__ void accumulate(const uint8_t* v_rows, int g, int t, const uint32_t (&p)[4]) {
    const uint8_t* rows[4] = {v_rows + (2 * t) * Geo::kStride, v_rows + (2 * t + 1) * Geo::kStride,
                              v_rows + (2 * t + 8) * Geo::kStride, v_rows + (2 * t + 9) * Geo::kStride};
#pragma unroll
    for (int u = 0; u < Geo::kUnits; ++u) {
      constexpr int kWords = Geo::kUnitBytes / 4;
      uint32_t w[4][kWords];  // rows 2t, 2t+1, 2t+8, 2t+9
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const uint8_t* src = rows[r] + (g + 8 * u) * Geo::kUnitBytes;
        if constexpr (kWords == 4) {
          const uint4 x = *reinterpret_cast<const uint4*>(src);
          w[r][0] = x.x, w[r][1] = x.y, w[r][2] = x.z, w[r][3] = x.w;
        } else {
          const uint2 x = *reinterpret_cast<const uint2*>(src);
          w[r][0] = x.x, w[r][1] = x.y;
        }
      }
      if constexpr (Geo::k8bit) {
        // element e of the unit is byte e % 4 of word e / 4; two n-tiles per byte permute
#pragma unroll
        for (int e = 0; e < Geo::kU; e += 2) {
          const uint32_t lo = interleave_bytes(w[0][e / 4], w[1][e / 4], e);
          const uint32_t hi = interleave_bytes(w[2][e / 4], w[3][e / 4], e);
          mma_tile<C>(acc[u * Geo::kU + e], p, to_half2<C>(lo, 0x4140u), to_half2<C>(hi, 0x4140u));
          mma_tile<C>(acc[u * Geo::kU + e + 1], p, to_half2<C>(lo, 0x4342u), to_half2<C>(hi, 0x4342u));
        }
      } else {
        // element e of the unit is half e % 2 of word e / 2
#pragma unroll
        for (int e = 0; e < Geo::kU; ++e) {
          const uint32_t sel = (e & 1) ? 0x7632u : 0x5410u;
          const uint32_t b0 = __byte_perm(w[0][e / 2], w[1][e / 2], sel);
          const uint32_t b1 = __byte_perm(w[2][e / 2], w[3][e / 2], sel);
          mma_tile<C>(acc[u * Geo::kU + e], p, b0, b1);
        }
      }
    }
  }

  // One 16-token slice starting at token t_first (< t_end) of the stage at `stage`, slice row
  // offset `row0` (16 w).
  __device__ __forceinline__ void consume(const DecodeArgs& a, const uint8_t* stage, int row0, int t_first, int t_end,
                                          int g, int t) {
    const uint8_t* k_rows = stage + row0 * Geo::kStride;
    const uint8_t* v_rows = stage + Geo::kKvBytes + row0 * Geo::kStride;
    const float* k_scales = reinterpret_cast<const float*>(stage + 2 * Geo::kKvBytes) + row0;
    const float* v_scales = k_scales + Geo::kTileTokens;
    float s[2][4];
    scores(k_rows, g, t, s);
    // scale, mask, row maxima (rows g: c < 2, g + 8: c >= 2; token of (j, c): 8j + 2t + c % 2)
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int tok = 8 * j + 2 * t + (c & 1);
        float sc = a.q_scale;
        if constexpr (Geo::k8bit) sc *= k_scales[tok];
        s[j][c] = t_first + tok < t_end ? s[j][c] * sc : -INFINITY;
        mx[c >> 1] = fmaxf(mx[c >> 1], s[j][c]);
      }
    float alpha[2], shift[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = tiles::quad_max(mx[r]);
      shift[r] = finite_or_zero(mx[r]);
      alpha[r] = exp2f(m[r] - shift[r]);
      m[r] = mx[r];
    }
    // probabilities; 8-bit: times vs_t / r, and the accumulator rescaled into units of r
    float vs[2][2] = {{1.0f, 1.0f}, {1.0f, 1.0f}}, factor[2] = {alpha[0], alpha[1]};
    if constexpr (Geo::k8bit) {
      float r = 0.0f;  // tokens past t_end have vs = 0 (zero-filled)
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) r = fmaxf(r, vs[j][e] = v_scales[8 * j + 2 * t + e]);
      r = fmaxf(tiles::quad_max(r), FLT_MIN);
      const float inv = 1.0f / r;
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) vs[j][e] *= inv;
      factor[0] *= r_scale * inv;
      factor[1] *= r_scale * inv;
      r_scale = r;
    }
    l[0] *= alpha[0];
    l[1] *= alpha[1];
    uint32_t p[4];  // P's A fragment: a0 = S[0] c0,c1; a1 = S[0] c2,c3; a2 = S[1] c0,c1; a3 = S[1] c2,c3
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float p0 = exp2f(s[j][2 * r] - shift[r]), p1 = exp2f(s[j][2 * r + 1] - shift[r]);
        l[r] += p0 + p1;
        p[2 * j + r] = pack_mma<C>(p0 * vs[j][0], p1 * vs[j][1]);
      }
#pragma unroll
    for (int jn = 0; jn < D / 8; ++jn) {
      acc[jn][0] *= factor[0];
      acc[jn][1] *= factor[0];
      acc[jn][2] *= factor[1];
      acc[jn][3] *= factor[1];
    }
    accumulate(v_rows, g, t, p);
  }
};

// The warps' O rows in shared memory at the end of the kernel (row w * 16 + head, D floats),
// each row's 16-byte chunks permuted within groups of 8 (the 8 bank groups):
//   chunk c of row r is stored at chunk c ^ (2 ((c / 8) % 4) + r % 2)
// Lane (g, t) stores runs of chunks of rows g, g + 8 from chunk (2t + 8u) kU / 4 on (see the
// kernel's end), so the 8 lanes of a store phase (rows 2p, 2p + 1, t = 0..3) would share 2 bank
// groups unpermuted (columns 16t or 32t apart: 16 wavefronts a float4 store instead of 4; as
// scalar stores, Nsight Compute counted 65% of MQA's shared wavefronts excess); permuted they
// hit 8. The reads (write_block_state: consecutive d) stay conflict-free, since the permutation
// stays within aligned groups of 8 chunks.
template <int D>
struct SwizzledStateRows {
  const float* o;
  static constexpr int kFloatsPerChunk = tiles::kChunkBytes / 4;
  __device__ __forceinline__ static int index(int r, int d) {
    // the 3 bits of a chunk's place in its group of tiles::kChunksPerRow (= 8 bank groups): 2 from the
    // group's index (which lane t, or unit u, stores it), 1 from the row's parity
    const int c = d / kFloatsPerChunk, group = (int)((unsigned)c / tiles::kChunksPerRow % 4u);
    return r * D + kFloatsPerChunk * (c ^ (2 * group + (r & 1))) + d % kFloatsPerChunk;
  }
  __device__ __forceinline__ float operator()(int r, int d) const { return o[index(r, d)]; }
};

// The ring of stages: tile `tile` (tokens t_begin + kTileTokens tile ..) into stage tile % kStages.
template <KVCacheDType C, int D, int kWarps>
__device__ __forceinline__ void load_stage(uint8_t* smem, const DecodeArgs& a, const DecodeBlock& blk, int tile) {
  using Geo = MmaDecodeGeometry<C, D, kWarps>;
  uint8_t* stage = smem + (tile % Geo::kStages) * Geo::kStageBytes;
  const int t0 = blk.t_begin + tile * Geo::kTileTokens;
  const uint8_t* k = a.k + blk.row0 * Geo::kRowBytes;
  const uint8_t* v = a.v + blk.row0 * Geo::kRowBytes;
#pragma unroll
  for (int n = 0; n < Geo::kTileTokens * Geo::kChunks / Geo::kThreads; ++n) {
    const int idx = threadIdx.x + n * Geo::kThreads;
    const int r = idx / Geo::kChunks, c = idx % Geo::kChunks, tok = t0 + r;
    const bool ok = tok < blk.t_end;  // else zero-filled, not read
    const size_t src = (size_t)(ok ? tok : t0) * Geo::kRowBytes + c * 16;
    cp_async16(smem_u32(stage + r * Geo::kStride + c * 16), k + src, ok);
    cp_async16(smem_u32(stage + Geo::kKvBytes + r * Geo::kStride + c * 16), v + src, ok);
  }
  if constexpr (Geo::k8bit) {
    if (threadIdx.x < 2 * Geo::kTileTokens) {  // one scale each: K's, then V's (4-byte copies: rows of
      const int which = threadIdx.x / Geo::kTileTokens, r = threadIdx.x % Geo::kTileTokens, tok = t0 + r;  // any max_len)
      const bool ok = tok < blk.t_end;
      const float* src = (which ? a.v_scale : a.k_scale) + blk.row0 + (ok ? tok : t0);
      cp_async4(smem_u32(stage + 2 * Geo::kKvBytes + (which * Geo::kTileTokens + r) * 4), src, ok);
    }
  }
}

template <KVCacheDType C, int D, int kWarps>
__global__ void __launch_bounds__(32 * kWarps) decode_mma_kernel(DecodeArgs a) {
  using Geo = MmaDecodeGeometry<C, D, kWarps>;
  extern __shared__ __align__(16) uint8_t smem[];
  tiles::wait_for_predecessor();  // launched dependent on the kernel that wrote q and the cache
  tiles::launch_dependents();     // the combine pass may start (it waits for this grid)
  const DecodeBlock blk(a, kMmaHeads);
  if (blk.t_begin >= blk.t_end) return;  // this chunk lies beyond the sequence (the whole block agrees)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int tiles = ceil_div(blk.t_end - blk.t_begin, Geo::kTileTokens);
#pragma unroll
  for (int i = 0; i < Geo::kStages - 1; ++i) {
    if (i < tiles) load_stage<C, D, kWarps>(smem, a, blk, i);
    cp_async_commit();  // one group per tile, empty past the end: the wait count stays uniform
  }
  MmaWarpState<C, D, kWarps> st;
  st.init(a, blk, g, t);  // q's loads after the cache's first tiles are on their way
  for (int tile = 0; tile < tiles; ++tile) {
    cp_async_wait<Geo::kStages - 2>();  // this thread's copies of `tile` have landed
    __syncthreads();                    // everyone's have; and stage (tile - 1) % kStages is consumed
    if (tile + Geo::kStages - 1 < tiles) load_stage<C, D, kWarps>(smem, a, blk, tile + Geo::kStages - 1);
    cp_async_commit();
    const int t_first = blk.t_begin + tile * Geo::kTileTokens + 16 * warp;
    if (t_first < blk.t_end)
      st.consume(a, smem + (tile % Geo::kStages) * Geo::kStageBytes, 16 * warp, t_first, blk.t_end, g, t);
  }
  cp_async_wait<0>();
  __syncthreads();  // the ring is free: the warps' states merge in it

  float* red_m = reinterpret_cast<float*>(smem);
  float* red_l = red_m + kWarps * kMmaHeads;
  float* red_o = red_l + kWarps * kMmaHeads;
#pragma unroll
  for (int r = 0; r < 2; ++r) st.l[r] = tiles::quad_sum(st.l[r]);
  const int base = warp * kMmaHeads;
  // Lane (g, t) holds, of rows g and g + 8, PV's columns 2t and 2t + 1 of every n-tile jn, that is
  // (the fragment layout above) per unit u the 2 kU contiguous d from (2t + 8u) kU, stored as
  // float4 chunks
#pragma unroll
  for (int rr = 0; rr < 2; ++rr)
#pragma unroll
    for (int u = 0; u < Geo::kUnits; ++u)
#pragma unroll
      for (int k = 0; k < Geo::kU / 2; ++k) {  // chunk k: columns (2t + 8u) kU + 4k .. + 3
        const int half = 4 * k / Geo::kU, e = 4 * k % Geo::kU;  // of column 2t + half, elements e .. e + 3
        float4 x;
        x.x = st.acc[u * Geo::kU + e][2 * rr + half] * st.r_scale;
        x.y = st.acc[u * Geo::kU + e + 1][2 * rr + half] * st.r_scale;
        x.z = st.acc[u * Geo::kU + e + 2][2 * rr + half] * st.r_scale;
        x.w = st.acc[u * Geo::kU + e + 3][2 * rr + half] * st.r_scale;
        const int row = base + g + 8 * rr;
        *reinterpret_cast<float4*>(&red_o[SwizzledStateRows<D>::index(row, (2 * t + 8 * u) * Geo::kU + 4 * k)]) = x;
      }
  if (t == 0) {
    red_m[base + g] = st.m[0], red_m[base + g + 8] = st.m[1];
    red_l[base + g] = st.l[0], red_l[base + g + 8] = st.l[1];
  }
  __syncthreads();
  // (its own shared memory, not the ring: the split plan was measured at this occupancy,
  // kMmaWaves in decode_attention.cu)
  __shared__ MergeScratch<Geo::kThreads> scratch;
  write_block_state<D, kWarps>(a, blk, kMmaHeads, red_m, red_l, SwizzledStateRows<D>{red_o}, scratch);
}

}  // namespace
}  // namespace attn::kern
