// Flash attention forward: bf16 tensor-core kernel (Hopper wgmma; K / V streamed with cp.async,
// each load overlapped with a product); the fp32 one is in flash_attention_f32.cu.
// See flash_attention.h.
#include <cmath>
#include <type_traits>

#include "kernels/flash_attention_common.cuh"
#include "kernels/flash_attention_mask.cuh"
#include "kernels/flash_attention_wgmma.cuh"

namespace attn::flash {

// ============================================================================================
// bf16 forward, Hopper wgmma. A block owns BR = 128 query rows of one (b, h): 2 warpgroups of
// 64 rows (warp w of a warpgroup: 16 rows). S = Q K^T with both operands in shared memory,
// O += P V with P in registers (the S accumulators converted in place) and V in shared memory.
// K/V blocks of BC keys stream through one K and one V buffer: V_j loads (cp.async) while
// S_j = Q K_j^T is computed, K_{j+1} loads while O += P_j V_j is computed. Online softmax in
// fp32 (log2 domain), O normalized at the end, lse written. Masks (flash_attention_mask.cuh):
// only the key blocks in [key_lo, key_hi] of the query block are visited (causal: none past the
// last query row; window; documents), only blocks not entirely visible to a warp evaluate the
// per-element mask (and keys >= T); ALiBi / soft-capping rewrite S before the softmax when on.
// Causal query blocks are launched heaviest first.
// ============================================================================================
template <int D>
struct FwdWgCfg {
  static constexpr int BR = 128;
  static constexpr int BC = D == 64 ? 64 : 128;
  static constexpr int NT = 256;
  static constexpr int MINB = D == 64 ? 2 : 1;
  static constexpr int SMEM = (BR + 2 * BC) * D * 2 + 1024;
};

template <int D, MaskKind MK>
__global__ void __launch_bounds__(256, FwdWgCfg<D>::MINB)
    flash_fwd_wg_kernel(const __grid_constant__ FlashAttentionParams p) {
  // Plain kinds: compile-time causal/full and no mask state (FlashMask below is then unused and
  // compiled away). General: tile ranges and per-element masks from FlashMask, causal at runtime.
  constexpr bool GENERAL = MK == MaskKind::kGeneral;
  constexpr bool CAUSAL = MK == MaskKind::kCausal;
  using Cfg = FwdWgCfg<D>;
  constexpr int BR = Cfg::BR, BC = Cfg::BC, NT = Cfg::NT;
  constexpr int KD = D / 16, NS = BC / 8, NO = D / 8;
  extern __shared__ uint8_t smem_raw[];
  const uint32_t sQ = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t sK = sQ + BR * D * 2;
  const uint32_t sV = sK + BC * D * 2;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wg = warp >> 2, wl = warp & 3;
  const int T = p.T;
  const bool heaviest_first = CAUSAL || (GENERAL && p.causal);
  const int qb = heaviest_first ? (int)gridDim.x - 1 - (int)blockIdx.x : (int)blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (p.H / p.Hkv);
  const int q0 = qb * BR;

  const __nv_bfloat16* Qg = static_cast<const __nv_bfloat16*>(p.q) + b * p.q_batch_stride + h * D;
  const __nv_bfloat16* Kg = static_cast<const __nv_bfloat16*>(p.k) + b * p.k_batch_stride + kvh * D;
  const __nv_bfloat16* Vg = static_cast<const __nv_bfloat16*>(p.v) + b * p.v_batch_stride + kvh * D;

  const FlashMask mask = flash_mask<GENERAL>(p, b);
  const int kb_begin = GENERAL ? mask.key_lo(q0) / BC : 0;
  const int kb_end = GENERAL ? mask.key_hi(min(T, q0 + BR) - 1) / BC + 1
                             : ((CAUSAL ? min(T, q0 + BR) : T) + BC - 1) / BC;

  load_tile_b<BR, D, NT>(sQ, Qg, p.q_token_stride, q0, T, tid);
  load_tile_b<BC, D, NT>(sK, Kg, p.k_token_stride, kb_begin * BC, T, tid);
  cp_async_commit();

  const float sl2 = p.scale * kLog2e;
  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};
  const int warp_row0 = q0 + wg * 64 + wl * 16;  // first query row of this warp
  const int row_lo = warp_row0 + (lane >> 2);    // + 8r
  // General kind: row i (< T) sees exactly the keys [key_lo(i), key_hi(i)] (flash_attention_mask.cuh),
  // so a masked tile costs two compares per element. Rows >= T (never written) keep [0, T-1].
  // Scalars, not arrays: no local-memory frame.
  const int klo0 = GENERAL && row_lo < T ? mask.key_lo(row_lo) : 0;
  const int khi0 = GENERAL && row_lo < T ? mask.key_hi(row_lo) : T - 1;
  const int klo1 = GENERAL && row_lo + 8 < T ? mask.key_lo(row_lo + 8) : 0;
  const int khi1 = GENERAL && row_lo + 8 < T ? mask.key_hi(row_lo + 8) : T - 1;

  for (int j = kb_begin; j < kb_end; ++j) {
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();  // K_j (and Q) visible; every warp done with V_{j-1}
    load_tile_b<BC, D, NT>(sV, Vg, p.v_token_stride, j * BC, T, tid);
    cp_async_commit();

    float s[BC / 2];
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) {
      const uint64_t da = wg_desc(sQ + (kk >> 2) * (BR * 128) + wg * (64 * 128) + (kk & 3) * 32, 16, 1024);
      const uint64_t db = wg_desc(sK + (kk >> 2) * (BC * 128) + (kk & 3) * 32, 16, 1024);
      wgmma_ss<BC, 0, 0>(s, da, db, kk > 0 ? 1 : 0);
    }
    wg_commit();
    wg_wait<0>();
    wg_fence_regs(s);

    const int key0 = j * BC;
    if constexpr (GENERAL) {
      const int modk = mod_kind(p);
      if (modk != kModNone) {  // uniform branches around the whole tile, never per element
        const ScoreMod mod(p, h);
        auto modify = [&](auto cap_on) {
#pragma unroll
          for (int n = 0; n < NS; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              float unused;
              s[4 * n + e] = mod.apply_k<decltype(cap_on)::value>(s[4 * n + e], row_lo + ((e >> 1) << 3),
                                                                  key0 + n * 8 + 2 * (lane & 3) + (e & 1), &unused);
            }
        };
        if (modk == kModSoftcap)
          modify(std::true_type{});
        else
          modify(std::false_type{});
      }
      const bool need_mask = key0 + BC > T || !mask.all_visible(warp_row0, warp_row0 + 15, key0, key0 + BC - 1);
      if (need_mask) {
#pragma unroll
        for (int n = 0; n < NS; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int col = key0 + n * 8 + 2 * (lane & 3) + (e & 1);
            if (col < ((e >> 1) ? klo1 : klo0) || col > ((e >> 1) ? khi1 : khi0)) s[4 * n + e] = -INFINITY;
          }
      }
    } else {
      const bool need_mask = key0 + BC > T || (CAUSAL && key0 + BC - 1 > warp_row0);
      if (need_mask) {
#pragma unroll
        for (int n = 0; n < NS; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int row = row_lo + ((e >> 1) << 3);
            const int col = key0 + n * 8 + 2 * (lane & 3) + (e & 1);
            if (col >= T || (CAUSAL && col > row)) s[4 * n + e] = -INFINITY;
          }
      }
    }

    online_softmax_step<NS, NO>(s, o, m_run, l_run, sl2);
    uint32_t pa[BC / 16][4];
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) {
      pa[kk][0] = pack_bf16(s[8 * kk + 0], s[8 * kk + 1]);
      pa[kk][1] = pack_bf16(s[8 * kk + 2], s[8 * kk + 3]);
      pa[kk][2] = pack_bf16(s[8 * kk + 4], s[8 * kk + 5]);
      pa[kk][3] = pack_bf16(s[8 * kk + 6], s[8 * kk + 7]);
    }

    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();  // V_j visible; every warp done with K_j
    if (j + 1 < kb_end) {
      load_tile_b<BC, D, NT>(sK, Kg, p.k_token_stride, (j + 1) * BC, T, tid);
      cp_async_commit();
    }

    wg_fence();
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) {
      const uint64_t db = wg_desc(sV + kk * 2048, BC * 128, 1024);
      wgmma_rs<D, 1>(o, pa[kk], db, 1);
    }
    wg_commit();
    wg_wait<0>();
    wg_fence_regs(o);
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) wg_fence_regs(pa[kk]);
  }

  // Finalize: row sums, normalize, lse; stage O through this warp's rows of sQ.
  __syncthreads();
  __nv_bfloat16* Og = static_cast<__nv_bfloat16*>(p.o) + b * p.o_batch_stride + h * D;
  float* lse = p.lse + ((int64_t)b * p.H + h) * T;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = l_run[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const int lrow = wg * 64 + wl * 16 + (lane >> 2) + r * 8;
    if ((lane & 3) == 0 && q0 + lrow < T) lse[q0 + lrow] = l > 0.f ? m_run[r] * p.scale + logf(l) : -INFINITY;
#pragma unroll
    for (int n = 0; n < NO; ++n) {
      const uint32_t v = pack_bf16(o[4 * n + 2 * r] * inv, o[4 * n + 2 * r + 1] * inv);
      asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sQ + swb<BR>(lrow, n) + (lane & 3) * 4), "r"(v));
    }
  }
  __syncwarp();
  constexpr int CH = D / 8;
#pragma unroll
  for (int i = 0; i < 16 * CH / 32; ++i) {
    const int idx = lane + i * 32;
    const int lrow = wg * 64 + wl * 16 + idx / CH, c = idx % CH;
    if (q0 + lrow < T) {
      uint4 v;
      asm volatile("ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];\n"
                   : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                   : "r"(sQ + swb<BR>(lrow, c)));
      *reinterpret_cast<uint4*>(Og + (int64_t)(q0 + lrow) * p.o_token_stride + c * 8) = v;
    }
  }
}

// ============================================================================================
// host
// ============================================================================================
void check_forward_params(const FlashAttentionParams& p) {
  ATTN_CHECK(p.D == 64 || p.D == 128, "flash attention: head_dim {} not supported (64 or 128)", p.D);
  ATTN_CHECK(p.B >= 1 && p.T >= 1 && p.H >= 1 && p.Hkv >= 1,
             "flash attention: bad shape B={} T={} H={} Hkv={}", p.B, p.T, p.H, p.Hkv);
  ATTN_CHECK(p.H % p.Hkv == 0, "flash attention: n_head {} not a multiple of n_kv_head {}", p.H,
             p.Hkv);
  ATTN_CHECK(p.H <= 65535 && p.B <= 65535, "flash attention: B={} or H={} over 65535", p.B, p.H);
  ATTN_CHECK(p.q && p.k && p.v && p.o && p.lse, "flash attention: null q/k/v/o/lse pointer");
  ATTN_CHECK(std::isfinite(p.scale) && p.scale > 0.f, "flash attention: bad scale {}", p.scale);
  ATTN_CHECK(!(p.bf16 && p.tf32), "flash attention: tf32 products need fp32 inputs (bf16 set)");
  ATTN_CHECK(reinterpret_cast<uintptr_t>(p.doc_ids) % 4 == 0, "flash attention: doc_ids pointer not 4-byte aligned");
  const int64_t align = p.bf16 ? 8 : 4;  // elements per 16 bytes
  const char* names[4] = {"q", "k", "v", "o"};
  const void* ptrs[4] = {p.q, p.k, p.v, p.o};
  const int64_t bs[4] = {p.q_batch_stride, p.k_batch_stride, p.v_batch_stride, p.o_batch_stride};
  const int64_t ts[4] = {p.q_token_stride, p.k_token_stride, p.v_token_stride, p.o_token_stride};
  for (int i = 0; i < 4; ++i) {
    ATTN_CHECK(reinterpret_cast<uintptr_t>(ptrs[i]) % 16 == 0,
               "flash attention: {} pointer not 16-byte aligned", names[i]);
    ATTN_CHECK(bs[i] % align == 0 && ts[i] % align == 0 && bs[i] >= 0 && ts[i] > 0,
               "flash attention: {} strides (batch {}, token {}) must be positive multiples of {} "
               "elements (16 bytes)",
               names[i], bs[i], ts[i], align);
  }
  const int heads_q = p.H, heads_kv = p.Hkv;
  ATTN_CHECK(p.q_token_stride >= (int64_t)heads_q * p.D && p.o_token_stride >= (int64_t)heads_q * p.D &&
                 p.k_token_stride >= (int64_t)heads_kv * p.D && p.v_token_stride >= (int64_t)heads_kv * p.D,
             "flash attention: token stride smaller than heads * head_dim");
}

template <int D, MaskKind MK>
static void launch_fwd_bf16(const FlashAttentionParams& p, cudaStream_t stream) {
  using Cfg = FwdWgCfg<D>;
  auto kern = flash_fwd_wg_kernel<D, MK>;
  set_smem_limit_once<flash_fwd_wg_kernel<D, MK>>(Cfg::SMEM);
  dim3 grid((p.T + Cfg::BR - 1) / Cfg::BR, p.H, p.B);
  kern<<<grid, Cfg::NT, Cfg::SMEM, stream>>>(p);
  CUDA_CHECK(cudaGetLastError());
}

void forward_dispatch(const FlashAttentionParams& p, cudaStream_t stream) {
  check_forward_params(p);
  if (p.bf16) {
    // 2 head dims x 3 mask kinds = 6 instantiations.
    switch (mask_kind(p)) {
      case MaskKind::kFull:
        p.D == 64 ? launch_fwd_bf16<64, MaskKind::kFull>(p, stream) : launch_fwd_bf16<128, MaskKind::kFull>(p, stream);
        break;
      case MaskKind::kCausal:
        p.D == 64 ? launch_fwd_bf16<64, MaskKind::kCausal>(p, stream)
                  : launch_fwd_bf16<128, MaskKind::kCausal>(p, stream);
        break;
      case MaskKind::kGeneral:
        p.D == 64 ? launch_fwd_bf16<64, MaskKind::kGeneral>(p, stream)
                  : launch_fwd_bf16<128, MaskKind::kGeneral>(p, stream);
        break;
    }
  } else {
    forward_f32(p, stream);
  }
}

}  // namespace attn::flash

namespace attn {
void flash_attention_forward(const FlashAttentionParams& p, cudaStream_t stream) {
  flash::forward_dispatch(p, stream);
}
}  // namespace attn
