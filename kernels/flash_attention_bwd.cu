// Flash attention backward: the shared passes, the dispatch, and the bf16 dQ pass of the
// deterministic mode (mma.sync + ldmatrix, cp.async double buffering). The bf16 main pass of every
// mask kind, variant, dropout and mode is the FlashAttention-3-style kernel of
// flash_attention_bwd_sm90.cu; the fp32 kernels are in flash_attention_f32.cu (same passes). See
// flash_attention.h for the interface.
//
//   pre-pass : Dsum_i = rowsum(dO_i * O_i)                                  (fp32, B x H x T)
//   main     : one block per (key block, kv head, batch); loops over the query heads of the
//              kv head's group (GQA: dK, dV summed in registers, no extra workspace) and over
//              query blocks, recomputes P = exp(scale*QK^T - lse), accumulates dV += P^T dO and
//              dK += dS^T Q in registers (dS = P * (dP - Dsum), dP = dO V^T), and
//              (non-deterministic mode) adds dQ += dS K into an fp32 workspace (bulk reductions
//              in bf16, atomics in fp32), converted by a last small kernel.
//   dQ pass  : (deterministic mode) one block per query block: dQ = sum over key blocks of
//              dS K, accumulated in registers in a fixed order; no atomics anywhere, so two
//              runs are bitwise identical.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/flash_attention_common.cuh"
#include "kernels/flash_attention_dropout.cuh"
#include "kernels/flash_attention_mask.cuh"
#include "kernels/tiles/copy_out.cuh"

namespace attn::flash {

// ============================================================================================
// Dsum = rowsum(dO * O), fp32 or bf16 inputs; and, when dq_acc is given, that row of the fp32 dQ
// accumulator set to zero (one pass over the rows instead of a separate memset).
// ============================================================================================
template <typename E, int D>
__global__ void __launch_bounds__(256) flash_bwd_dsum_kernel(const __grid_constant__ FlashAttentionBackwardParams p,
                                                             float* dsum, float* dq_acc) {
  constexpr int EPV = 16 / sizeof(E);  // elements per 16-byte vector
  constexpr int TPR = D / EPV;         // threads per row (8..32)
  constexpr int RPB = 256 / TPR;
  const int T = p.fwd.T, H = p.fwd.H;
  const int64_t rows = (int64_t)p.fwd.B * H * T;
  const int64_t row = (int64_t)blockIdx.x * RPB + threadIdx.x / TPR;
  const int sub = threadIdx.x % TPR;
  float acc = 0.f;
  if (row < rows) {
    const int t = (int)(row % T);
    const int64_t bh = row / T;
    const int h = (int)(bh % H), b = (int)(bh / H);
    const E* o = static_cast<const E*>(p.fwd.o) + b * p.fwd.o_batch_stride + t * p.fwd.o_token_stride + h * D + sub * EPV;
    const E* d = static_cast<const E*>(p.dO) + b * p.do_batch_stride + t * p.do_token_stride + h * D + sub * EPV;
    const uint4 ov = *reinterpret_cast<const uint4*>(o);
    const uint4 dv = *reinterpret_cast<const uint4*>(d);
    const E* oe = reinterpret_cast<const E*>(&ov);
    const E* de = reinterpret_cast<const E*>(&dv);
#pragma unroll
    for (int i = 0; i < EPV; ++i) acc = fmaf(static_cast<float>(oe[i]), static_cast<float>(de[i]), acc);
    if (dq_acc) {  // this thread's EPV floats of the row (D = TPR * EPV)
      float4* z = reinterpret_cast<float4*>(dq_acc + row * D + sub * EPV);
#pragma unroll
      for (int i = 0; i < EPV / 4; ++i) z[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
  }
#pragma unroll
  for (int off = TPR / 2; off; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (row < rows && sub == 0) dsum[row] = acc;
}

// dq (E = bf16 or fp32, strided) = scale * dq_accum (fp32, B x H x T x D).
template <typename E>
__global__ void __launch_bounds__(256) flash_bwd_dq_convert_kernel(const __grid_constant__ FlashAttentionBackwardParams p,
                                                                   const float* acc) {
  const int T = p.fwd.T, H = p.fwd.H, D = p.fwd.D, CH = D / 8;
  const int64_t n = (int64_t)p.fwd.B * H * T * CH;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = idx / CH;
    const int c = (int)(idx % CH);
    const int t = (int)(row % T);
    const int64_t bh = row / T;
    const int h = (int)(bh % H), b = (int)(bh / H);
    const float4 x0 = *reinterpret_cast<const float4*>(acc + row * D + c * 8);
    const float4 x1 = *reinterpret_cast<const float4*>(acc + row * D + c * 8 + 4);
    const float s = p.fwd.scale;
    E* dst = static_cast<E*>(p.dq) + b * p.dq_batch_stride + t * p.dq_token_stride + h * D + c * 8;
    if constexpr (std::is_same_v<E, float>) {
      reinterpret_cast<float4*>(dst)[0] = make_float4(x0.x * s, x0.y * s, x0.z * s, x0.w * s);
      reinterpret_cast<float4*>(dst)[1] = make_float4(x1.x * s, x1.y * s, x1.z * s, x1.w * s);
    } else {
      uint4 v;
      v.x = pack_bf16(x0.x * s, x0.y * s);
      v.y = pack_bf16(x0.z * s, x0.w * s);
      v.z = pack_bf16(x1.x * s, x1.y * s);
      v.w = pack_bf16(x1.z * s, x1.w * s);
      *reinterpret_cast<uint4*>(dst) = v;
    }
  }
}

// ============================================================================================
// bf16 dQ pass (deterministic mode): block = 64 query rows of (b, h), 4 warps x 16 rows;
// K/V blocks of 64 keys double-buffered; dQ accumulated in registers in key order.
// ============================================================================================
template <int D>
struct DqCfg {
  static constexpr int BR = 64, BC = 64, NT = 128;
  static constexpr int SMEM = (2 * BR + 4 * BC) * D * 2;
};

// The dQ pass's products for one key block (mma.sync m16n8k16, this warp's 16 query rows):
// S = Q K^T and dP = dO V^T (NS 8-key column tiles each), from the swizzled tiles by ldmatrix.
template <int D, int NS>
__device__ __forceinline__ void dq_pass_scores(float (&s)[NS][4], float (&dp)[NS][4], uint32_t sQ, uint32_t sdO,
                                               uint32_t sK, uint32_t sV, int a_row, int a_chk, int b_row, int b_chk) {
#pragma unroll
  for (int n = 0; n < NS; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) s[n][e] = 0.f, dp[n][e] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t aq[4], ao[4];
    ldsm_x4(aq, sQ + swz<D>(a_row, 2 * kk + a_chk));
    ldsm_x4(ao, sdO + swz<D>(a_row, 2 * kk + a_chk));
#pragma unroll
    for (int np = 0; np < NS / 2; ++np) {
      uint32_t bk[4], bv[4];
      ldsm_x4(bk, sK + swz<D>(np * 16 + b_row, 2 * kk + b_chk));
      ldsm_x4(bv, sV + swz<D>(np * 16 + b_row, 2 * kk + b_chk));
      mma16816(s[2 * np], aq, bk[0], bk[1]);
      mma16816(s[2 * np + 1], aq, bk[2], bk[3]);
      mma16816(dp[2 * np], ao, bv[0], bv[1]);
      mma16816(dp[2 * np + 1], ao, bv[2], bv[3]);
    }
  }
}

// dQ += dS K for one key block: dS (this warp's 16 rows x 8 NS keys, fp32 in ds) as bf16 A
// fragments, K^T's fragments by ldmatrix .trans.
template <int D, int NS>
__device__ __forceinline__ void dq_pass_accumulate(float (&dq)[D / 8][4], const float (&ds)[NS][4], uint32_t sK,
                                                   int t_row, int t_chk) {
#pragma unroll
  for (int kk = 0; kk < NS / 2; ++kk) {
    uint32_t a[4];
    a[0] = pack_bf16(ds[2 * kk][0], ds[2 * kk][1]);
    a[1] = pack_bf16(ds[2 * kk][2], ds[2 * kk][3]);
    a[2] = pack_bf16(ds[2 * kk + 1][0], ds[2 * kk + 1][1]);
    a[3] = pack_bf16(ds[2 * kk + 1][2], ds[2 * kk + 1][3]);
#pragma unroll
    for (int dd = 0; dd < D / 16; ++dd) {
      uint32_t bk[4];
      ldsm_x4_t(bk, sK + swz<D>(kk * 16 + t_row, 2 * dd + t_chk));
      mma16816(dq[2 * dd], a, bk[0], bk[1]);
      mma16816(dq[2 * dd + 1], a, bk[2], bk[3]);
    }
  }
}

// The dQ pass's epilogue: this warp's 16 rows of dQ * scale (mma.sync accumulators: row
// lane / 4 (+ 8), columns 8n + 2 (lane % 4) (+ 1)) to bf16 in its own rows of the swizzled tile at
// sQ, then 16-byte stores of the rows < T.
template <int D>
__device__ __forceinline__ void store_dq_rows(uint32_t sQ, const float (&dq)[D / 8][4],
                                              const FlashAttentionBackwardParams& p, int b, int h, int q0, int T,
                                              int warp, int lane) {
  const int row0 = warp * tiles::kWarpRows;  // this warp's first row of the tile
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row0 + (lane >> 2) + r * 8;
      asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sQ + swz<D>(row, n) + (lane & 3) * 4),
                   "r"(pack_bf16(dq[n][2 * r] * p.fwd.scale, dq[n][2 * r + 1] * p.fwd.scale)));
    }
  __syncwarp();
  __nv_bfloat16* dQg = static_cast<__nv_bfloat16*>(p.dq) + b * p.dq_batch_stride + h * D;
  tiles::store_warp_rows<D / 8>([sQ](int r, int c) { return sQ + swz<D>(r, c); }, row0,
                                dQg + (int64_t)(q0 + row0) * p.dq_token_stride, p.dq_token_stride, T - (q0 + row0),
                                lane);
}

template <int D, bool DROPOUT>
__global__ void __launch_bounds__(128)
    flash_bwd_dq_bf16_kernel(const __grid_constant__ FlashAttentionBackwardParams p, const float* __restrict__ dsum) {
  using Cfg = DqCfg<D>;
  constexpr int BR = Cfg::BR, BC = Cfg::BC, NT = Cfg::NT;
  constexpr int NS = BC / 8;
  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t sQ = smem_u32(smem);
  const uint32_t sdO = sQ + BR * D * 2;
  const uint32_t sK0 = sdO + BR * D * 2;       // 2 stages
  const uint32_t sV0 = sK0 + 2 * BC * D * 2;   // 2 stages

  const auto& f = p.fwd;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int T = f.T, H = f.H;
  const bool heaviest_first = f.causal;
  const int qb = heaviest_first ? (int)gridDim.x - 1 - (int)blockIdx.x : (int)blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z, kvh = h / (f.H / f.Hkv);
  const int q0 = qb * BR;
  const ScoreMod mod = mod_enabled(f) ? ScoreMod(f, h) : ScoreMod{};  // once per block, not per key block
  [[maybe_unused]] const FlashDropout drop(f, b, h);                   // likewise (its key is a load)

  const __nv_bfloat16* Qg = static_cast<const __nv_bfloat16*>(f.q) + b * f.q_batch_stride + h * D;
  const __nv_bfloat16* dOg = static_cast<const __nv_bfloat16*>(p.dO) + b * p.do_batch_stride + h * D;
  const __nv_bfloat16* Kg = static_cast<const __nv_bfloat16*>(f.k) + b * f.k_batch_stride + kvh * D;
  const __nv_bfloat16* Vg = static_cast<const __nv_bfloat16*>(f.v) + b * f.v_batch_stride + kvh * D;
  load_tile<BR, D, NT>(sQ, Qg, f.q_token_stride, q0, T, tid);
  load_tile<BR, D, NT>(sdO, dOg, p.do_token_stride, q0, T, tid);
  const FlashMask mask(f, b);
  const int kb_begin = mask.key_lo(q0) / BC;
  const int kb_end = mask.key_hi(min(T, q0 + BR) - 1) / BC + 1;
  load_tile<BC, D, NT>(sK0, Kg, f.k_token_stride, kb_begin * BC, T, tid);
  load_tile<BC, D, NT>(sV0, Vg, f.v_token_stride, kb_begin * BC, T, tid);
  cp_async_commit();

  const int64_t rbase = ((int64_t)b * H + h) * T;
  float L2[2], Dr[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int q = q0 + warp * 16 + (lane >> 2) + r * 8;
    L2[r] = q < T ? f.lse[rbase + q] * kLog2e : 0.f;
    Dr[r] = q < T ? dsum[rbase + q] : 0.f;
  }
  const float sl2 = f.scale * kLog2e;

  float dq[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) dq[n][e] = 0.f;

  const int a_row = warp * 16 + (lane & 15), a_chk = lane >> 4;
  const int b_row = (lane & 7) + ((lane >> 4) << 3), b_chk = (lane >> 3) & 1;
  const int t_row = (lane & 7) + (((lane >> 3) & 1) << 3), t_chk = lane >> 4;

  // General kind: row i (< T) sees exactly the keys [key_lo(i), key_hi(i)] (flash_attention_mask.cuh),
  // so a masked tile costs two compares per element; rows >= T (never written) keep [0, T-1].
  // Scalars, not arrays: no local-memory frame.
  const int row0 = q0 + warp * 16 + (lane >> 2);
  const int klo0 = row0 < T ? mask.key_lo(row0) : 0;
  const int khi0 = row0 < T ? mask.key_hi(row0) : T - 1;
  const int klo1 = row0 + 8 < T ? mask.key_lo(row0 + 8) : 0;
  const int khi1 = row0 + 8 < T ? mask.key_hi(row0 + 8) : T - 1;

  for (int j = kb_begin; j < kb_end; ++j) {
    const int st = (j - kb_begin) & 1;  // stage 0 holds the first block
    const uint32_t sK = sK0 + st * BC * D * 2, sV = sV0 + st * BC * D * 2;
    cp_async_wait<0>();
    __syncthreads();
    if (j + 1 < kb_end) {
      load_tile<BC, D, NT>(sK0 + (st ^ 1) * BC * D * 2, Kg, f.k_token_stride, (j + 1) * BC, T, tid);
      load_tile<BC, D, NT>(sV0 + (st ^ 1) * BC * D * 2, Vg, f.v_token_stride, (j + 1) * BC, T, tid);
    }
    cp_async_commit();

    float s[NS][4], dp[NS][4];
    dq_pass_scores<D, NS>(s, dp, sQ, sdO, sK, sV, a_row, a_chk, b_row, b_chk);
    const int key0 = j * BC;
    {
      if constexpr (DROPOUT) {  // dP = keep * dPd / (1 - p) before dS is formed
#pragma unroll
        for (int n = 0; n < NS; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            dp[n][e] *= drop.mult(q0 + warp * 16 + (lane >> 2) + (e >> 1) * 8, key0 + n * 8 + 2 * (lane & 3) + (e & 1));
      }
      const bool need_mask =
          key0 + BC > T || !mask.all_visible(q0 + warp * 16, q0 + warp * 16 + 15, key0, key0 + BC - 1);
      // dS = P (dP - Dsum) (* soft-capping derivative); one of eight loops per tile (MODK, MASK
      // uniform), so each carries only its own work (no predicated per-element code).
      auto probs = [&](auto modk_c, auto mask_on) {
        constexpr int MODK = decltype(modk_c)::value;
        constexpr bool MASK = decltype(mask_on)::value;
        // key - q = kq0 + 8 n + (e & 1) - 8 r: a constant per register beside a per-tile base
        [[maybe_unused]] const float kq0 = (float)(key0 + 2 * (lane & 3) - q0 - warp * 16 - (lane >> 2));
        const ScoreMod::Affine aff = mod.affine<MODK>(kq0);  // exp2(raw sl2 - L) = exp2(v ea + shift[r])
        const float ea = aff.exp_scale<MODK>(sl2);
        const float shift[2] = {aff.exp_shift<MODK>(sl2, L2[0]), aff.exp_shift<MODK>(sl2, L2[1])};
#pragma unroll
        for (int n = 0; n < NS; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int r = e >> 1;
            [[maybe_unused]] const int key = key0 + n * 8 + 2 * (lane & 3) + (e & 1);
            float v = s[n][e];
            if constexpr (MODK != kModNone) v = mod.value<MODK>(v, float(8 * n + (e & 1) - 8 * r), aff);
            const float arg = fmaf(v, ea, shift[r]);
            float pv = fast_exp2(arg);
            if constexpr (MASK) {
              if (key < (r ? klo1 : klo0) || key > (r ? khi1 : khi0)) pv = 0.f;
            }
            float ds = pv * (dp[n][e] - Dr[r]);
            if constexpr ((MODK & kModSoftcap) != 0) ds *= ScoreMod::deriv<MODK>(v);
            dp[n][e] = ds;
          }
      };
      with_mod_kind(mod_kind(f), [&](auto modk_c) {
        need_mask ? probs(modk_c, std::true_type{}) : probs(modk_c, std::false_type{});
      });
    }
    dq_pass_accumulate<D, NS>(dq, dp, sK, t_row, t_chk);
  }

  // dQ * scale out through this warp's own rows of sQ.
  cp_async_wait<0>();
  __syncwarp();  // every lane's ldmatrix reads of sQ done before any lane overwrites it
  store_dq_rows<D>(sQ, dq, p, b, h, q0, T, warp, lane);
}

// ============================================================================================
// host
// ============================================================================================
static size_t align256(size_t x) { return (x + 255) & ~size_t(255); }

static void check_backward_params(const FlashAttentionBackwardParams& p) {
  const auto& f = p.fwd;
  check_forward_params(f);
  ATTN_CHECK(p.dO && p.dq && p.dk && p.dv, "flash attention backward: null dO/dq/dk/dv pointer");
  const int64_t align = f.bf16 ? 8 : 4;
  const char* names[4] = {"dO", "dq", "dk", "dv"};
  const void* ptrs[4] = {p.dO, p.dq, p.dk, p.dv};
  const int64_t bs[4] = {p.do_batch_stride, p.dq_batch_stride, p.dk_batch_stride, p.dv_batch_stride};
  const int64_t ts[4] = {p.do_token_stride, p.dq_token_stride, p.dk_token_stride, p.dv_token_stride};
  for (int i = 0; i < 4; ++i) {
    ATTN_CHECK(reinterpret_cast<uintptr_t>(ptrs[i]) % 16 == 0,
               "flash attention backward: {} pointer not 16-byte aligned", names[i]);
    ATTN_CHECK(bs[i] % align == 0 && ts[i] % align == 0 && bs[i] >= 0 && ts[i] > 0,
               "flash attention backward: {} strides (batch {}, token {}) must be positive multiples "
               "of {} elements (16 bytes)",
               names[i], bs[i], ts[i], align);
  }
}

size_t backward_workspace_bytes(const FlashAttentionBackwardParams& p) {
  const auto& f = p.fwd;
  const size_t rows = (size_t)f.B * f.H * f.T;
  size_t bytes = align256(rows * sizeof(float));  // Dsum
  if (!p.deterministic) bytes += align256(rows * f.D * sizeof(float));  // dQ accumulator
  return bytes;
}

// The deterministic mode's dQ pass (after the main pass, which then adds nothing to dQ).
template <int D, bool DROPOUT>
static void launch_dq_bf16(const FlashAttentionBackwardParams& p, const float* dsum, cudaStream_t stream) {
  using Cfg = DqCfg<D>;
  set_smem_limit_once<flash_bwd_dq_bf16_kernel<D, DROPOUT>>(Cfg::SMEM);
  const dim3 grid((p.fwd.T + Cfg::BR - 1) / Cfg::BR, p.fwd.H, p.fwd.B);
  flash_bwd_dq_bf16_kernel<D, DROPOUT><<<grid, Cfg::NT, Cfg::SMEM, stream>>>(p, dsum);
  CUDA_CHECK(cudaGetLastError());
}

void backward_dispatch(const FlashAttentionBackwardParams& p, void* workspace, cudaStream_t stream) {
  check_backward_params(p);
  const auto& f = p.fwd;
  ATTN_CHECK(workspace != nullptr && reinterpret_cast<uintptr_t>(workspace) % 256 == 0,
             "flash attention backward: workspace must be non-null and 256-byte aligned");
  const size_t rows = (size_t)f.B * f.H * f.T;
  float* dsum = static_cast<float*>(workspace);
  float* dq_acc = !p.deterministic
                      ? reinterpret_cast<float*>(static_cast<char*>(workspace) + align256(rows * sizeof(float)))
                      : nullptr;
  {
    const int tpr = f.D / (f.bf16 ? 8 : 4);
    const int rpb = 256 / tpr;
    const unsigned blocks = (unsigned)((rows + rpb - 1) / rpb);
    if (f.bf16 && f.D == 64)
      flash_bwd_dsum_kernel<__nv_bfloat16, 64><<<blocks, 256, 0, stream>>>(p, dsum, dq_acc);
    else if (f.bf16)
      flash_bwd_dsum_kernel<__nv_bfloat16, 128><<<blocks, 256, 0, stream>>>(p, dsum, dq_acc);
    else if (f.D == 64)
      flash_bwd_dsum_kernel<float, 64><<<blocks, 256, 0, stream>>>(p, dsum, dq_acc);
    else
      flash_bwd_dsum_kernel<float, 128><<<blocks, 256, 0, stream>>>(p, dsum, dq_acc);
    CUDA_CHECK(cudaGetLastError());
  }
  if (backward_sm90_applies(p)) {  // every bf16 backward: the sm90 main pass
    backward_sm90(p, dsum, dq_acc, stream);
    if (dq_acc == nullptr) {  // deterministic: dQ by its own pass. 2 head dims x dropout off / on.
      if (f.dropout_p > 0.f)
        f.D == 64 ? launch_dq_bf16<64, true>(p, dsum, stream) : launch_dq_bf16<128, true>(p, dsum, stream);
      else
        f.D == 64 ? launch_dq_bf16<64, false>(p, dsum, stream) : launch_dq_bf16<128, false>(p, dsum, stream);
    }
  } else {
    backward_f32(p, dsum, dq_acc, stream);
  }
  if (dq_acc) {
    const int64_t n = (int64_t)rows * (f.D / 8);
    const unsigned blocks = (unsigned)std::min<int64_t>((n + 255) / 256, (int64_t)tiles::sm_count() * 16);
    if (f.bf16)
      flash_bwd_dq_convert_kernel<__nv_bfloat16><<<blocks, 256, 0, stream>>>(p, dq_acc);
    else
      flash_bwd_dq_convert_kernel<float><<<blocks, 256, 0, stream>>>(p, dq_acc);
    CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace attn::flash

namespace attn {
size_t flash_attention_backward_workspace_bytes(const FlashAttentionBackwardParams& p) {
  return flash::backward_workspace_bytes(p);
}
void flash_attention_backward(const FlashAttentionBackwardParams& p, void* workspace, cudaStream_t stream) {
  flash::backward_dispatch(p, workspace, stream);
}
}  // namespace attn
