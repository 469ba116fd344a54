// Flash attention in fp32 (fp32 in / out): forward, backward main pass (dK, dV; dQ by atomics)
// and the deterministic dQ pass, on tensor cores with split TF32 products (see flash_attention.h).
//
// Products (mma.sync m16n8k8, tf32 inputs, fp32 accumulation). Each fp32 operand x is split as
//   x = hi + lo,  hi = x rounded to a 10-bit mantissa (|x - hi| <= 2^-11 |x|),
//                 lo = x - hi (exact), as the tensor core reads it (10-bit mantissa):
//                 |x - hi - lo| <= 2^-21 |x|
// and a b = hi_a hi_b + hi_a lo_b + lo_a hi_b + lo_a lo_b; PASSES = 3 keeps the first three
// (3xTF32: the dropped lo_a lo_b and the roundings are <= ~2^-21 |a b|, near fp32's 2^-24, so this
// is the fp32 path and the parity reference); PASSES = 1 keeps hi_a hi_b only (1xTF32, error
// <= ~2^-10 |a b|: device.precision = "tf32"). Softmax, scaling and accumulation stay fp32.
//
// Tiles (shared memory, fp32, row stride LD = D + 4 floats): a row stride = 4 (mod 32) makes every
// fragment load below hit 32 different banks. Fragment layout of m16n8k8 (g = lane / 4,
// t = lane % 4): A (16 x 8) a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4];
// B (8 x 8) b0 = B[t][g], b1 = B[t+4][g]; C (16 x 8) c0,c1 = C[g][2t, 2t+1], c2,c3 = C[g+8][..].
// A product P X with P in C-layout registers (softmax probabilities, dS) needs no shuffle: the
// k index of an 8-wide step is relabelled (k' = t <-> k = 2t, k' = t+4 <-> k = 2t+1), which a
// sum over k does not see: a = (c0, c2, c1, c3), b0 = X[2t][g], b1 = X[2t+1][g]. Products of two
// k-contiguous shared tiles (Q K^T) use the same relabelling, so (a0, a2), (a1, a3) and (b0, b1)
// are each one 8-byte load (conflict-free per half warp).
//
// Kernels (4 warps, a warp owns 16 rows):
//   forward : a block owns 64 query rows of one (b, h) and streams 64-key K / V tiles (cp.async;
//             V_j loads while S_j = Q K_j^T is computed, K_{j+1} while O += P_j V_j is); online
//             softmax in fp32 (log2 domain), lse written. Causal query blocks heaviest first.
//   backward: a block owns 64 keys of one (b, kv head) and loops over the query heads of the group
//             and their query blocks: S^T = K Q^T, dP^T = V dO^T, P^T = exp(S^T - lse),
//             dS^T = P^T (dP^T - Dsum) (* soft-capping derivative), dV += P^T dO, dK += dS^T Q;
//             non-deterministic: dS^T through shared memory, dQ += dS K into the fp32 workspace
//             with atomics (the next Q / dO load overlaps it).
//   dQ pass : (deterministic) a block owns 64 query rows: dQ = sum over key tiles of dS K in a
//             fixed order, no atomics.
// Masks and score modifications: the variants (flash_attention_mask.cuh) at runtime. Only the
// tiles in the [key_lo, key_hi] / [query_lo, query_hi] range of a block are visited; tiles not
// entirely visible to a warp (and rows / keys >= T) are masked per element. 2 head dims x 2
// PASSES = 4 instantiations per kernel. Attention dropout (flash_attention_dropout.cuh): P is
// masked after the softmax's row sums (forward); dP before dS is formed and P for dV (backward).
#include <cmath>

#include "kernels/flash_attention_common.cuh"
#include "kernels/flash_attention_dropout.cuh"
#include "kernels/flash_attention_mask.cuh"

namespace attn::flash {

namespace {

// ---- split-TF32 products -------------------------------------------------------------------
// x rounded to a TF32 value (10-bit mantissa, ties away from zero): add half a TF32 ulp to the
// bit pattern and clear the 13 low bits (a carry into the exponent rounds up to the next power of
// two; +-inf stay). Two integer operations, no conversion instruction.
__device__ __forceinline__ uint32_t to_tf32(float x) { return (__float_as_uint(x) + 0x1000u) & 0xffffe000u; }
// The low part x - hi: exact in fp32 (|x - hi| <= 2^-11 |x|); the tensor core reads its top 10
// mantissa bits.
__device__ __forceinline__ uint32_t tf32_lo(float x, uint32_t hi) { return __float_as_uint(x - __uint_as_float(hi)); }

// c += a * b, m16n8k8, tf32 inputs, fp32 accumulators.
__device__ __forceinline__ void mma_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// An A fragment as hi (and, PASSES = 3, lo) parts.
template <int PASSES>
struct FragA {
  uint32_t hi[4], lo[4];
  __device__ __forceinline__ explicit FragA(const float (&x)[4]) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      hi[i] = to_tf32(x[i]);
      if constexpr (PASSES == 3) lo[i] = tf32_lo(x[i], hi[i]);
    }
  }
};

// c += a * (b0, b1) with the split products of PASSES (small terms first).
template <int PASSES>
__device__ __forceinline__ void mma_split(float (&c)[4], const FragA<PASSES>& a, float b0, float b1) {
  const uint32_t h0 = to_tf32(b0), h1 = to_tf32(b1);
  if constexpr (PASSES == 3) {
    mma_tf32(c, a.lo, h0, h1);
    mma_tf32(c, a.hi, tf32_lo(b0, h0), tf32_lo(b1, h1));
  }
  mma_tf32(c, a.hi, h0, h1);
}

// acc (16 x 8 NT) += A (16 x K) B (8 NT x K)^T: A = this warp's 16 rows at sA (stride LDA),
// B = 8 NT rows at sB (stride LDB), both k-contiguous fp32 in shared memory.
template <int PASSES, int NT, int K, int LDA, int LDB>
__device__ __forceinline__ void warp_mma_abt(float (&acc)[NT][4], const float* sA, const float* sB, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int kk = 0; kk < K / 8; ++kk) {
    // k' = t <-> k = 2t, k' = t + 4 <-> k = 2t + 1 (see the top of this file)
    const float2 a_lo = *reinterpret_cast<const float2*>(sA + g * LDA + kk * 8 + 2 * t);
    const float2 a_hi = *reinterpret_cast<const float2*>(sA + (g + 8) * LDA + kk * 8 + 2 * t);
    const float x[4] = {a_lo.x, a_hi.x, a_lo.y, a_hi.y};
    const FragA<PASSES> fa(x);
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      const float2 bv = *reinterpret_cast<const float2*>(sB + (n * 8 + g) * LDB + kk * 8 + 2 * t);
      mma_split<PASSES>(acc[n], fa, bv.x, bv.y);
    }
  }
}

// acc (16 x 8 NN) += P (16 x 8 KS) X (8 KS x 8 NN): P in C-layout registers (p[kk] = columns
// [8kk, 8kk + 8)), X row-major at sX (row = k, stride LDX), columns from 0.
template <int PASSES, int KS, int NN, int LDX>
__device__ __forceinline__ void warp_mma_px(float (&acc)[NN][4], const float (&p)[KS][4], const float* sX, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    const float x[4] = {p[kk][0], p[kk][2], p[kk][1], p[kk][3]};
    const FragA<PASSES> fa(x);
#pragma unroll
    for (int n = 0; n < NN; ++n) {
      const float* bp = sX + (kk * 8 + 2 * t) * LDX + n * 8 + g;
      mma_split<PASSES>(acc[n], fa, bp[0], bp[LDX]);
    }
  }
}

// Rows [row0, row0 + R) of a (T x D) fp32 matrix (row stride `stride` elements) into shared
// memory at s (row stride D + 4); rows >= T are zero-filled.
template <int R, int D, int NT>
__device__ __forceinline__ void load_rows(float* s, const float* g, int64_t stride, int row0, int T, int tid) {
  constexpr int CH = D / 4, LD = D + 4;
  static_assert((R * CH) % NT == 0, "tile load must divide evenly");
#pragma unroll
  for (int i = 0; i < R * CH / NT; ++i) {
    const int idx = tid + i * NT;
    const int r = idx / CH, c = idx % CH;
    const bool ok = row0 + r < T;
    cp_async16(smem_u32(s + r * LD + c * 4), g + (ok ? (int64_t)(row0 + r) * stride + c * 4 : 0), ok);
  }
}

// Rows [row0, row0 + R) of a per-row fp32 vector (lse, Dsum) into s, row i by thread i (threads
// outside [0, R) do nothing); rows >= T read as 0.
template <int R>
__device__ __forceinline__ void load_vec(float* s, const float* g, int row0, int T, int i) {
  if (i >= 0 && i < R) {
    const bool ok = row0 + i < T;
    cp_async4(smem_u32(s + i), g + (ok ? row0 + i : 0), ok);
  }
}

constexpr int kThreads = 128;  // 4 warps of 16 rows
constexpr int kRows = 64;      // query rows of a forward / dQ block; keys of a backward block
constexpr int kKeys = 64;      // key tile of the forward / dQ pass

// Applies the score modification (it is on) to a warp's C-layout query-row scores s[n][e]: rows
// row_lo + 8 (e / 2), keys col0 + 8 n + 2 t + e % 2.
template <int N>
__device__ __forceinline__ void modify_scores(float (&s)[N][4], const ScoreMod& mod, int row_lo, int col0, int lane) {
#pragma unroll
  for (int n = 0; n < N; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float unused;
      s[n][e] = mod.apply(s[n][e], row_lo + ((e >> 1) << 3), col0 + n * 8 + 2 * (lane & 3) + (e & 1), &unused);
    }
}

// ============================================================================================
// forward
// ============================================================================================
template <int D>
struct FwdF32Cfg {
  static constexpr int LD = D + 4;
  static constexpr int SMEM = (kRows + 2 * kKeys) * LD * 4;
  static constexpr int MINB = D == 64 ? 3 : 2;
};

template <int D, int PASSES>
__global__ void __launch_bounds__(kThreads, FwdF32Cfg<D>::MINB)
    flash_fwd_f32_kernel(const __grid_constant__ FlashAttentionParams p) {
  constexpr int LD = FwdF32Cfg<D>::LD, NS = kKeys / 8, NO = D / 8;
  extern __shared__ float4 smem_f4[];
  float* sQ = reinterpret_cast<float*>(smem_f4);
  float* sK = sQ + kRows * LD;
  float* sV = sK + kKeys * LD;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int T = p.T;
  const int qb = p.causal ? (int)gridDim.x - 1 - (int)blockIdx.x : (int)blockIdx.x;  // heaviest first
  const int h = blockIdx.y, b = blockIdx.z, kvh = h / (p.H / p.Hkv);
  const int q0 = qb * kRows;
  const float* Qg = static_cast<const float*>(p.q) + b * p.q_batch_stride + h * D;
  const float* Kg = static_cast<const float*>(p.k) + b * p.k_batch_stride + kvh * D;
  const float* Vg = static_cast<const float*>(p.v) + b * p.v_batch_stride + kvh * D;

  const FlashMask mask(p, b);
  const ScoreMod mod(p, h);
  const FlashDropout drop(p, b, h);
  const int kb_begin = mask.key_lo(q0) / kKeys;
  const int kb_end = mask.key_hi(min(T, q0 + kRows) - 1) / kKeys + 1;
  load_rows<kRows, D, kThreads>(sQ, Qg, p.q_token_stride, q0, T, tid);
  load_rows<kKeys, D, kThreads>(sK, Kg, p.k_token_stride, kb_begin * kKeys, T, tid);
  cp_async_commit();

  float o[NO][4];
#pragma unroll
  for (int n = 0; n < NO; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};
  const float sl2 = p.scale * kLog2e;
  const int warp_row0 = q0 + warp * 16, row_lo = warp_row0 + (lane >> 2);  // + 8r
  // row i (< T) sees exactly [key_lo(i), key_hi(i)]; rows >= T (never written) keep [0, T-1]
  int klo[2], khi[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = row_lo + 8 * r;
    klo[r] = i < T ? mask.key_lo(i) : 0;
    khi[r] = i < T ? mask.key_hi(i) : T - 1;
  }

  for (int j = kb_begin; j < kb_end; ++j) {
    cp_async_wait<0>();
    __syncthreads();  // K_j (and Q) visible; every warp done with V_{j-1}
    load_rows<kKeys, D, kThreads>(sV, Vg, p.v_token_stride, j * kKeys, T, tid);
    cp_async_commit();

    float s[NS][4];
#pragma unroll
    for (int n = 0; n < NS; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
    warp_mma_abt<PASSES, NS, D, LD, LD>(s, sQ + warp * 16 * LD, sK, lane);

    const int key0 = j * kKeys;
    if (mod.active) modify_scores<NS>(s, mod, row_lo, key0, lane);
    if (key0 + kKeys > T || !mask.all_visible(warp_row0, warp_row0 + 15, key0, key0 + kKeys - 1)) {
#pragma unroll
      for (int n = 0; n < NS; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = key0 + n * 8 + 2 * (lane & 3) + (e & 1);
          if (col < klo[e >> 1] || col > khi[e >> 1]) s[n][e] = -INFINITY;
        }
    }

    // online softmax (log2 domain): the same step as the bf16 kernel's, on the flat views
    online_softmax_step<NS, NO>(reinterpret_cast<float(&)[4 * NS]>(s), reinterpret_cast<float(&)[4 * NO]>(o), m_run,
                                l_run, sl2);
    if (drop.on) {  // after the row sums went into l
#pragma unroll
      for (int n = 0; n < NS; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[n][e] *= drop.mult(row_lo + ((e >> 1) << 3), key0 + n * 8 + 2 * (lane & 3) + (e & 1));
    }

    cp_async_wait<0>();
    __syncthreads();  // V_j visible; every warp done with K_j
    if (j + 1 < kb_end) {
      load_rows<kKeys, D, kThreads>(sK, Kg, p.k_token_stride, (j + 1) * kKeys, T, tid);
      cp_async_commit();
    }
    warp_mma_px<PASSES, NS, NO, LD>(o, s, sV, lane);
  }
  cp_async_wait<0>();  // no copy outlives the block (a row block that sees no key)

  float* Og = static_cast<float*>(p.o) + b * p.o_batch_stride + h * D;
  float* lse = p.lse + ((int64_t)b * p.H + h) * T;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float l = tiles::quad_sum(l_run[r]);
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const int row = row_lo + 8 * r;
    if (row < T) {
      if ((lane & 3) == 0) lse[row] = l > 0.f ? m_run[r] * p.scale + logf(l) : -INFINITY;
#pragma unroll
      for (int n = 0; n < NO; ++n)
        *reinterpret_cast<float2*>(Og + (int64_t)row * p.o_token_stride + n * 8 + 2 * (lane & 3)) =
            make_float2(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    }
  }
}

// ============================================================================================
// backward main pass: dK, dV (and dQ by atomics)
// ============================================================================================
template <int D>
struct BwdF32Cfg {
  static constexpr int BR = D == 64 ? 64 : 32;  // query rows per step (registers: S^T, dP^T 16 x BR)
  static constexpr int LD = D + 4, LDS = BR + 4;
  static constexpr int SMEM = (2 * kRows * LD + 2 * BR * LD + kRows * LDS + 2 * BR) * 4;
};

template <int D, int PASSES>
__global__ void __launch_bounds__(kThreads, 2)
    flash_bwd_f32_kernel(const __grid_constant__ FlashAttentionBackwardParams p, const float* __restrict__ dsum,
                         float* __restrict__ dq_accum) {
  using Cfg = BwdF32Cfg<D>;
  constexpr int BR = Cfg::BR, LD = Cfg::LD, LDS = Cfg::LDS, NQ = BR / 8, NO = D / 8;
  constexpr int RG = BR / 16;       // dQ: query row groups of 16 ...
  constexpr int DW = D / (4 / RG);  // ... each split over 4 / RG warps by columns
  extern __shared__ float4 smem_f4[];
  float* sK = reinterpret_cast<float*>(smem_f4);
  float* sV = sK + kRows * LD;
  float* sQ = sV + kRows * LD;
  float* sdO = sQ + BR * LD;
  float* sdS = sdO + BR * LD;  // dS^T: kRows keys x BR queries
  float* sL = sdS + kRows * LDS;
  float* sDs = sL + BR;

  const auto& f = p.fwd;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int T = f.T, H = f.H, G = f.H / f.Hkv;
  const int g = blockIdx.y, b = blockIdx.z, k0 = blockIdx.x * kRows;
  const float* Kg = static_cast<const float*>(f.k) + b * f.k_batch_stride + g * D;
  const float* Vg = static_cast<const float*>(f.v) + b * f.v_batch_stride + g * D;
  load_rows<kRows, D, kThreads>(sK, Kg, f.k_token_stride, k0, T, tid);
  load_rows<kRows, D, kThreads>(sV, Vg, f.v_token_stride, k0, T, tid);

  const FlashMask mask(f, b);
  const int q_begin = mask.query_lo(k0) / BR;
  const int nper = mask.query_hi(min(T, k0 + kRows) - 1) / BR + 1 - q_begin;
  const int total = G * max(nper, 0);
  auto issue = [&](int it) {
    const int h = g * G + it / nper, q0 = (q_begin + it % nper) * BR;
    const float* Qg = static_cast<const float*>(f.q) + b * f.q_batch_stride + h * D;
    const float* dOg = static_cast<const float*>(p.dO) + b * p.do_batch_stride + h * D;
    load_rows<BR, D, kThreads>(sQ, Qg, f.q_token_stride, q0, T, tid);
    load_rows<BR, D, kThreads>(sdO, dOg, p.do_token_stride, q0, T, tid);
    const int64_t rbase = ((int64_t)b * H + h) * T;
    load_vec<BR>(sL, f.lse + rbase, q0, T, tid);
    load_vec<BR>(sDs, dsum + rbase, q0, T, tid - BR);  // 2 BR <= kThreads
  };
  if (total > 0) issue(0);
  cp_async_commit();

  float dk[NO][4], dv[NO][4];
#pragma unroll
  for (int n = 0; n < NO; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.f;
  const float sl2 = f.scale * kLog2e;
  const int warp_key0 = k0 + warp * 16, key_lo = warp_key0 + (lane >> 2);  // + 8r
  // key j (< T) is seen by exactly the queries [query_lo(j), query_hi(j)]; keys >= T by none
  int qlo[2], qhi[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int j = key_lo + 8 * r;
    qlo[r] = j < T ? mask.query_lo(j) : T;
    qhi[r] = j < T ? mask.query_hi(j) : -1;
  }

  for (int it = 0; it < total; ++it) {
    const int h = g * G + it / nper, q0 = (q_begin + it % nper) * BR;
    cp_async_wait<0>();
    __syncthreads();  // Q, dO, lse, Dsum of this step (and K, V) visible
    float s[NQ][4], dp[NQ][4];
#pragma unroll
    for (int n = 0; n < NQ; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.f;
    warp_mma_abt<PASSES, NQ, D, LD, LD>(s, sK + warp * 16 * LD, sQ, lane);    // S^T
    warp_mma_abt<PASSES, NQ, D, LD, LD>(dp, sV + warp * 16 * LD, sdO, lane);  // dP^T

    // P^T = exp(scale S^T - lse), dS^T = P^T (dP^T - Dsum) (* d softcap); masked entries 0
    const ScoreMod mod(f, h);
    const FlashDropout drop(f, b, h);
    const bool need_mask =
        k0 + kRows > T || q0 + BR > T || !mask.all_visible(q0, q0 + BR - 1, warp_key0, warp_key0 + 15);
#pragma unroll
    for (int n = 0; n < NQ; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qc = n * 8 + 2 * (lane & 3) + (e & 1), q = q0 + qc;
        float sv = s[n][e], dfac = 1.f;
        if (mod.active) sv = mod.apply(sv, q, key_lo + ((e >> 1) << 3), &dfac);
        float pv = fast_exp2(fmaf(sv, sl2, -sL[qc] * kLog2e));
        if (need_mask && (q < qlo[e >> 1] || q > qhi[e >> 1])) pv = 0.f;
        const float keep = drop.on ? drop.mult(q, key_lo + ((e >> 1) << 3)) : 1.f;  // dropout: dP, and Pd for dV
        const float ds = pv * (dp[n][e] * keep - sDs[qc]) * dfac;
        s[n][e] = pv * keep;
        dp[n][e] = ds;
      }

    warp_mma_px<PASSES, NQ, NO, LD>(dv, s, sdO, lane);  // dV += P^T dO
    warp_mma_px<PASSES, NQ, NO, LD>(dk, dp, sQ, lane);  // dK += dS^T Q
    if (dq_accum != nullptr) {
#pragma unroll
      for (int n = 0; n < NQ; ++n)
#pragma unroll
        for (int r = 0; r < 2; ++r)
          *reinterpret_cast<float2*>(sdS + (warp * 16 + (lane >> 2) + 8 * r) * LDS + n * 8 + 2 * (lane & 3)) =
              make_float2(dp[n][2 * r], dp[n][2 * r + 1]);
    }
    __syncthreads();  // every warp done with Q, dO, lse, Dsum; dS^T complete
    if (it + 1 < total) issue(it + 1);
    cp_async_commit();

    if (dq_accum != nullptr) {  // dQ (BR x D) += dS (BR x 64 keys) K: warp -> rows qr.., columns c0..
      const int qr = (warp % RG) * 16, c0 = (warp / RG) * DW;
      const int gq = lane >> 2, t = lane & 3;
      float pa[kRows / 8][4];
#pragma unroll
      for (int kk = 0; kk < kRows / 8; ++kk) {
        const float* x = sdS + (kk * 8 + 2 * t) * LDS + qr + gq;
        pa[kk][0] = x[0], pa[kk][1] = x[LDS], pa[kk][2] = x[8], pa[kk][3] = x[LDS + 8];
      }
      float dq[DW / 8][4];
#pragma unroll
      for (int n = 0; n < DW / 8; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;
      warp_mma_px<PASSES, kRows / 8, DW / 8, LD>(dq, pa, sK + c0, lane);
      float* dqa = dq_accum + (((int64_t)b * H + h) * T) * D;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int q = q0 + qr + gq + 8 * r;
        if (q < T) {
#pragma unroll
          for (int n = 0; n < DW / 8; ++n)
            atomicAdd(reinterpret_cast<float2*>(dqa + (int64_t)q * D + c0 + n * 8 + 2 * t),
                      make_float2(dq[n][2 * r], dq[n][2 * r + 1]));
        }
      }
    }
  }

  cp_async_wait<0>();  // no copy outlives the block (a key block that no query sees)

  // dK = scale * dS^T Q, dV = P^T dO, straight from the accumulators (keys < T)
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = key_lo + 8 * r;
    if (key >= T) continue;
    float* dKg = static_cast<float*>(p.dk) + b * p.dk_batch_stride + g * D + (int64_t)key * p.dk_token_stride;
    float* dVg = static_cast<float*>(p.dv) + b * p.dv_batch_stride + g * D + (int64_t)key * p.dv_token_stride;
#pragma unroll
    for (int n = 0; n < NO; ++n) {
      const int c = n * 8 + 2 * (lane & 3);
      *reinterpret_cast<float2*>(dKg + c) = make_float2(dk[n][2 * r] * f.scale, dk[n][2 * r + 1] * f.scale);
      *reinterpret_cast<float2*>(dVg + c) = make_float2(dv[n][2 * r], dv[n][2 * r + 1]);
    }
  }
}

// ============================================================================================
// deterministic dQ pass: dQ = scale * sum_j dS_j K_j, key tiles in a fixed order
// ============================================================================================
template <int D>
struct DqF32Cfg {
  static constexpr int LD = D + 4;
  static constexpr int SMEM = (2 * kRows + 2 * kKeys) * LD * 4;
};

template <int D, int PASSES>
__global__ void __launch_bounds__(kThreads)
    flash_bwd_dq_f32_kernel(const __grid_constant__ FlashAttentionBackwardParams p, const float* __restrict__ dsum) {
  constexpr int LD = DqF32Cfg<D>::LD, NS = kKeys / 8, NO = D / 8;
  extern __shared__ float4 smem_f4[];
  float* sQ = reinterpret_cast<float*>(smem_f4);
  float* sdO = sQ + kRows * LD;
  float* sK = sdO + kRows * LD;
  float* sV = sK + kKeys * LD;
  const auto& f = p.fwd;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int T = f.T;
  const int qb = f.causal ? (int)gridDim.x - 1 - (int)blockIdx.x : (int)blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z, kvh = h / (f.H / f.Hkv);
  const int q0 = qb * kRows;
  const float* Kg = static_cast<const float*>(f.k) + b * f.k_batch_stride + kvh * D;
  const float* Vg = static_cast<const float*>(f.v) + b * f.v_batch_stride + kvh * D;
  load_rows<kRows, D, kThreads>(sQ, static_cast<const float*>(f.q) + b * f.q_batch_stride + h * D, f.q_token_stride, q0,
                                T, tid);
  load_rows<kRows, D, kThreads>(sdO, static_cast<const float*>(p.dO) + b * p.do_batch_stride + h * D, p.do_token_stride,
                                q0, T, tid);

  const FlashMask mask(f, b);
  const ScoreMod mod(f, h);
  const FlashDropout drop(f, b, h);
  const int kb_begin = mask.key_lo(q0) / kKeys;
  const int kb_end = mask.key_hi(min(T, q0 + kRows) - 1) / kKeys + 1;
  const int warp_row0 = q0 + warp * 16, row_lo = warp_row0 + (lane >> 2);
  const int64_t rbase = ((int64_t)b * f.H + h) * T;
  float L2[2], Dr[2];
  int klo[2], khi[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = row_lo + 8 * r;
    L2[r] = i < T ? f.lse[rbase + i] * kLog2e : 0.f;
    Dr[r] = i < T ? dsum[rbase + i] : 0.f;
    klo[r] = i < T ? mask.key_lo(i) : T;  // rows >= T see nothing
    khi[r] = i < T ? mask.key_hi(i) : -1;
  }
  const float sl2 = f.scale * kLog2e;
  float dq[NO][4];
#pragma unroll
  for (int n = 0; n < NO; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;

  for (int j = kb_begin; j < kb_end; ++j) {
    const int key0 = j * kKeys;
    __syncthreads();  // every warp done with the previous K, V
    load_rows<kKeys, D, kThreads>(sK, Kg, f.k_token_stride, key0, T, tid);
    load_rows<kKeys, D, kThreads>(sV, Vg, f.v_token_stride, key0, T, tid);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    float s[NS][4], dp[NS][4];
#pragma unroll
    for (int n = 0; n < NS; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.f;
    warp_mma_abt<PASSES, NS, D, LD, LD>(s, sQ + warp * 16 * LD, sK, lane);
    warp_mma_abt<PASSES, NS, D, LD, LD>(dp, sdO + warp * 16 * LD, sV, lane);
    const bool need_mask =
        key0 + kKeys > T || warp_row0 + 16 > T || !mask.all_visible(warp_row0, warp_row0 + 15, key0, key0 + kKeys - 1);
#pragma unroll
    for (int n = 0; n < NS; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1, col = key0 + n * 8 + 2 * (lane & 3) + (e & 1);
        float sv = s[n][e], dfac = 1.f;
        if (mod.active) sv = mod.apply(sv, row_lo + 8 * r, col, &dfac);
        float pv = fast_exp2(fmaf(sv, sl2, -L2[r]));
        if (need_mask && (col < klo[r] || col > khi[r])) pv = 0.f;
        const float keep = drop.on ? drop.mult(row_lo + 8 * r, col) : 1.f;  // dropout: dP = keep dPd / (1 - p)
        dp[n][e] = pv * (dp[n][e] * keep - Dr[r]) * dfac;
      }
    warp_mma_px<PASSES, NS, NO, LD>(dq, dp, sK, lane);
  }
  cp_async_commit();
  cp_async_wait<0>();  // no copy outlives the block (a row block that sees no key)

  float* dQg = static_cast<float*>(p.dq) + b * p.dq_batch_stride + h * D;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row_lo + 8 * r;
    if (row >= T) continue;
#pragma unroll
    for (int n = 0; n < NO; ++n)
      *reinterpret_cast<float2*>(dQg + (int64_t)row * p.dq_token_stride + n * 8 + 2 * (lane & 3)) =
          make_float2(dq[n][2 * r] * f.scale, dq[n][2 * r + 1] * f.scale);
  }
}

// ---- host ------------------------------------------------------------------------------------
template <int D, int PASSES>
void launch_fwd(const FlashAttentionParams& p, cudaStream_t stream) {
  constexpr int smem = FwdF32Cfg<D>::SMEM;
  set_smem_limit_once<flash_fwd_f32_kernel<D, PASSES>>(smem);
  const dim3 grid((p.T + kRows - 1) / kRows, p.H, p.B);
  flash_fwd_f32_kernel<D, PASSES><<<grid, kThreads, smem, stream>>>(p);
  CUDA_CHECK(cudaGetLastError());
}

template <int D, int PASSES>
void launch_bwd(const FlashAttentionBackwardParams& p, const float* dsum, float* dq_acc, cudaStream_t stream) {
  const auto& f = p.fwd;
  {
    constexpr int smem = BwdF32Cfg<D>::SMEM;
    set_smem_limit_once<flash_bwd_f32_kernel<D, PASSES>>(smem);
    const dim3 grid((f.T + kRows - 1) / kRows, f.Hkv, f.B);
    flash_bwd_f32_kernel<D, PASSES><<<grid, kThreads, smem, stream>>>(p, dsum, dq_acc);
    CUDA_CHECK(cudaGetLastError());
  }
  if (dq_acc == nullptr) {
    constexpr int smem = DqF32Cfg<D>::SMEM;
    set_smem_limit_once<flash_bwd_dq_f32_kernel<D, PASSES>>(smem);
    const dim3 grid((f.T + kRows - 1) / kRows, f.H, f.B);
    flash_bwd_dq_f32_kernel<D, PASSES><<<grid, kThreads, smem, stream>>>(p, dsum);
    CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace

void forward_f32(const FlashAttentionParams& p, cudaStream_t stream) {
  if (p.D == 64)
    p.tf32 ? launch_fwd<64, 1>(p, stream) : launch_fwd<64, 3>(p, stream);
  else
    p.tf32 ? launch_fwd<128, 1>(p, stream) : launch_fwd<128, 3>(p, stream);
}

void backward_f32(const FlashAttentionBackwardParams& p, const float* dsum, float* dq_acc, cudaStream_t stream) {
  const auto& f = p.fwd;
  if (f.D == 64)
    f.tf32 ? launch_bwd<64, 1>(p, dsum, dq_acc, stream) : launch_bwd<64, 3>(p, dsum, dq_acc, stream);
  else
    f.tf32 ? launch_bwd<128, 1>(p, dsum, dq_acc, stream) : launch_bwd<128, 3>(p, dsum, dq_acc, stream);
}

}  // namespace attn::flash
