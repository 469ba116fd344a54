// Flash attention forward: the bf16 Hopper kernel (FlashAttention-3 style: a TMA producer warp,
// a K/V ring guarded by mbarriers, two consumer warpgroups with reallocated registers, the next
// QK^T overlapped with the softmax, tiles scheduled by length); the fp32 one is in flash_attention_f32.cu.
// Written on the tile layer of kernels/tiles/. See flash_attention.h.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/flash_attention_common.cuh"
#include "kernels/flash_attention_dropout.cuh"
#include "kernels/flash_attention_mask.cuh"
#include "kernels/flash_attention_wgmma.cuh"
#include "kernels/tiles/fragment.cuh"
#include "kernels/tiles/hardware.cuh"
#include "kernels/tiles/mbarrier.cuh"
#include "kernels/tiles/smem_tile.cuh"
#include "kernels/tiles/tma.cuh"
#include "kernels/tiles/warpgroup.cuh"

namespace attn::flash {

// ============================================================================================
// bf16 forward, Hopper. Math per tile of BR = 128 query rows of one (b, h), over the visible key
// blocks j of BC keys (online softmax, log2 domain, fp32):
//   S_j = Q K_j^T;  m' = max(m, rowmax S_j);  P_j = exp2((S_j - m') scale log2e);
//   l = l exp2((m - m') scale log2e) + rowsum P_j;  O = O exp2(...) + P_j V_j;
//   finally O /= l and lse = m scale + ln l.
// Roles (384 threads, one block per SM; one tile per block, or persistent over the tiles: see
// launch_fwd_bf16):
//   warpgroup 0, producer: 24 registers; one thread issues TMA loads: Q of each tile once
//     (after the consumers released the previous Q), then K_j, V_j into a ring of kStages
//     buffers each (full barrier: the load landed; empty barrier: all 8 consumer warps are done).
//   warpgroups 1, 2, consumers: 240 registers; each owns 64 query rows (16 per warp). Per block:
//     issue S_{j+1} = Q K_{j+1}^T, rescale O (to m_j), issue O += P_j V_j, wait for S_{j+1}
//     (release K), mask and exponentiate it while P_j V_j still runs, wait (release V),
//     P_{j+1} = bf16(S).
//     Ping-pong: the warpgroups issue their GEMMs in turns (named barrier per
//     warpgroup: wait for my turn, issue, hand the turn over), one's softmax under the other's GEMMs.
//   O is normalized in registers and leaves through a swizzled smem tile, 16-byte stores.
// Masks (flash_attention_mask.cuh): only key blocks in [key_lo, key_hi] of the tile are loaded;
// blocks not entirely visible to a warp (or reaching past T) get the per-element mask; ALiBi and
// soft-capping rewrite S before the softmax. Causal tiles are scheduled heaviest first.
// Attention dropout (general kind): P_j is multiplied by the keep mask / (1 - p) after its row
// sums went into l, so O = Pd V / l (flash_attention_dropout.cuh).
// ============================================================================================
template <int D>
struct FwdCfg {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kConsumerWarps = kConsumerWarpgroups * tiles::kWarpsPerWarpgroup;
  static constexpr int BR = kConsumerWarpgroups * tiles::kWgmmaM;  // 128 query rows per tile
  static constexpr int BC = 128;                                   // keys per K/V block
  static constexpr int kStages = D == 64 ? 3 : 2;                  // K/V ring depth
  static constexpr int kThreads = (1 + kConsumerWarpgroups) * tiles::kWarpgroupThreads;
  // Register split: launched at kRegistersPerSm / kThreads (168) each; the producer gives back,
  // the consumers take (setmaxnreg), the total unchanged.
  static constexpr int kLaunchRegs = tiles::kRegistersPerSm / kThreads / tiles::kRegisterGranule * tiles::kRegisterGranule;
  static constexpr int kProducerRegs = 24, kConsumerRegs = 240;
  // Ping-pong: the two consumer warpgroups take turns issuing their GEMMs (named barriers), so
  // that one's softmax runs while the other's GEMMs occupy the tensor cores.
  static constexpr bool kPingPong = true;
  static_assert(kProducerRegs * tiles::kWarpgroupThreads +
                        kConsumerRegs * kConsumerWarpgroups * tiles::kWarpgroupThreads <=
                    kLaunchRegs * kThreads,
                "register split exceeds the block's registers");
  using QTile = tiles::SwizzledTile<BR, D>;   // also the O staging tile
  using KVTile = tiles::SwizzledTile<BC, D>;
  static constexpr int kQOffset = 0;
  static constexpr int kOOffset = kQOffset + QTile::kBytes;
  static constexpr int kKOffset = kOOffset + QTile::kBytes;
  static constexpr int kVOffset = kKOffset + kStages * KVTile::kBytes;
  static constexpr int SMEM = kVOffset + kStages * KVTile::kBytes + tiles::kSwizzleAtomBytes;  // + alignment slack
};

struct FwdArgs {
  tiles::TmaMap q, k, v;  // (d, t, head, b) views, boxes of BR (q) and BC (k, v) rows
  FlashAttentionParams p;
  int n_qblocks = 0, n_tiles = 0;
  int pairs_per_group = 1;  // (head, batch) pairs per group of tiles (GroupedOrder)
};

template <int Stages>
struct FwdBarriers {
  uint64_t q_full, q_empty;
  tiles::RingBarriers<Stages> k, v;
};

// Tile L: (query block, head, batch) in GroupedOrder, query blocks heaviest first when causal.
struct FwdTile {
  int qb, h, b;
  __device__ __forceinline__ FwdTile(const FwdArgs& a, int L, bool heaviest_first) {
    const GroupedOrder o(L, a.n_qblocks, a.p.H * a.p.B, a.pairs_per_group);
    qb = heaviest_first ? a.n_qblocks - 1 - o.rank : o.rank;
    h = o.pair % a.p.H;
    b = o.pair / a.p.H;
  }
};

// The key blocks [begin, end) the query rows [q0, q0 + BR) can see (same for both roles;
// end >= begin, so both count the same number of ring uses).
template <int BR, int BC, MaskKind MK>
__device__ __forceinline__ int2 key_block_range(const FlashMask& mask, int q0, int T) {
  const int q_last = min(T, q0 + BR) - 1;
  if constexpr (MK == MaskKind::kGeneral) {
    const int begin = mask.key_lo(q0) / BC;
    return make_int2(begin, max(begin, mask.key_hi(q_last) / BC + 1));
  } else if constexpr (MK == MaskKind::kCausal) return make_int2(0, q_last / BC + 1);
  else return make_int2(0, (T + BC - 1) / BC);
}

// Producer: one thread streams every tile's Q, K and V in the order the consumers use them.
template <int D, MaskKind MK>
__device__ __forceinline__ void fwd_produce(const FwdArgs& a, FwdBarriers<FwdCfg<D>::kStages>& bars, uint32_t smem) {
  using Cfg = FwdCfg<D>;
  using KVTile = typename Cfg::KVTile;
  const FlashAttentionParams& p = a.p;
  const bool heaviest_first = MK == MaskKind::kCausal || (MK == MaskKind::kGeneral && p.causal);
  tiles::tma_prefetch(&a.q.map);
  tiles::tma_prefetch(&a.k.map);
  tiles::tma_prefetch(&a.v.map);
  const typename Cfg::QTile sQ{smem + Cfg::kQOffset};
  const uint32_t q_full = tiles::smem_addr(&bars.q_full), q_empty = tiles::smem_addr(&bars.q_empty);
  uint32_t use = 0;  // K/V blocks issued so far (ring position)
  int iter = 0;      // tiles of this block so far (Q barrier phase)
  for (int L = blockIdx.x; L < a.n_tiles; L += gridDim.x, ++iter) {
    const FwdTile t(a, L, heaviest_first);
    const int q0 = t.qb * Cfg::BR, kvh = t.h / (p.H / p.Hkv);
    const FlashMask mask = flash_mask<MK == MaskKind::kGeneral>(p, t.b);
    const int2 kb = key_block_range<Cfg::BR, Cfg::BC, MK>(mask, q0, p.T);
    tiles::mbar_wait(q_empty, (iter & 1) ^ 1);
    tiles::mbar_arrive_expect_tx(q_full, Cfg::QTile::kBytes);
    sQ.load(a.q, q_full, q0, t.h, t.b);
    for (int j = kb.x; j < kb.y; ++j, ++use) {
      const int stage = tiles::RingBarriers<Cfg::kStages>::stage(use);
      const KVTile sK{smem + Cfg::kKOffset + stage * KVTile::kBytes};
      const KVTile sV{smem + Cfg::kVOffset + stage * KVTile::kBytes};
      sK.load(a.k, bars.k.acquire(use, KVTile::kBytes), j * Cfg::BC, kvh, t.b);
      sV.load(a.v, bars.v.acquire(use, KVTile::kBytes), j * Cfg::BC, kvh, t.b);
    }
  }
}

// One block's online-softmax step on this thread's two rows, in the log2 domain: s (the modified
// scores; raw = raw.a s + raw.b) becomes P = exp2(raw sl2 - m sl2), sum the thread's part of P's row
// sums, alpha the factor that rescales the previous O and l (1 when the maximum stayed), m_run the
// rows' maxima; o_rescale: alpha is not 1 somewhere in the warp.
// The running maximum moves only when a row's new maximum exceeds it by more than kStaleMaxLog2
// (in exp2 units) somewhere in the warp; otherwise every row keeps its maximum, alpha = 1 and the
// O rescale (2 NO FMULs per row and thread) is skipped. P then reaches at most 2^kStaleMaxLog2
// (bf16 and the fp32 sums hold that exactly as well), and lse, O = acc / l and the backward (which
// recomputes P from lse) do not depend on which maximum was used.
template <bool GENERAL, int BC>
__device__ __forceinline__ void online_softmax_step(tiles::AccFragment<BC>& s, float (&m_run)[2], bool& o_rescale,
                                                    float (&alpha)[2], float (&sum)[2], const ScoreMod::Affine& raw,
                                                    float sl2) {
  constexpr int NS = BC / 8;
  float m_cand[2];
  bool grows = false;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float mx = -INFINITY;
#pragma unroll
    for (int n = 0; n < NS; ++n) mx = fmaxf(mx, fmaxf(s.v[4 * n + 2 * r], s.v[4 * n + 2 * r + 1]));
    if constexpr (GENERAL) mx = fmaf(mx, raw.a, raw.b);  // a > 0: the raw maximum (-inf stays -inf)
    m_cand[r] = fmaxf(m_run[r], tiles::quad_max(mx));
    grows |= m_cand[r] != -INFINITY && !((m_cand[r] - m_run[r]) * sl2 <= kStaleMaxLog2);  // (-inf start: grows)
  }
  o_rescale = __any_sync(0xffffffffu, grows);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float m_new = o_rescale ? m_cand[r] : m_run[r];
    const float m_sc = m_new == -INFINITY ? 0.f : m_new * sl2;
    alpha[r] = o_rescale ? fast_exp2(m_run[r] * sl2 - m_sc) : 1.f;
    m_run[r] = m_new;
    // exp2(raw sl2 - m_sc) = exp2(s.v[e] ea + eb), all on the MUFU. With soft-capping its
    // tanh takes a MUFU op per score too, but moving every other exp2 to the FMA pipe (a
    // polynomial, ~10 instructions) was slower, forward and backward: the loop is issue-bound
    // (docs/RESULTS.md, session 14).
    constexpr int kExpKind = GENERAL ? kModRuntime : kModNone;
    const float ea = raw.exp_scale<kExpKind>(sl2), eb = raw.exp_shift<kExpKind>(sl2, m_sc);
    float acc = 0.f;
#pragma unroll
    for (int n = 0; n < NS; ++n)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        float& x = s.v[4 * n + 2 * r + c];
        x = fast_exp2(fmaf(x, ea, eb));
        acc += x;
      }
    sum[r] = acc;
  }
}

// General kind: the score modification (ALiBi, soft-capping: ScoreMod) of one block's scores, one
// uniform branch around the whole block, never per element. kq0: key - query of this thread's
// element 0. raw: how the raw score follows from the modified one (raw = a s + b).
template <int BC>
__device__ __forceinline__ void apply_score_mod(tiles::AccFragment<BC>& s, ScoreMod::Affine& raw, const ScoreMod& mod,
                                                int modk, float kq0) {
  with_mod_kind(modk, [&](auto modk_c) {
    constexpr int MODK = decltype(modk_c)::value;
    const ScoreMod::Affine aff = mod.affine<MODK>(kq0);
#pragma unroll
    for (int e = 0; e < BC / 2; ++e) s.v[e] = mod.value<MODK>(s.v[e], float(s.col_offset(e) - 8 * s.half(e)), aff);
    raw = aff;
  });
}

// Plain kinds: the scores of keys >= T (and, causal, of keys past this thread's rows row_lo and
// row_lo + 8) to -inf; col0: the key of this thread's element 0.
template <bool CAUSAL, int BC>
__device__ __forceinline__ void mask_scores_plain(tiles::AccFragment<BC>& s, int col0, int row_lo, int T) {
#pragma unroll
  for (int e = 0; e < BC / 2; ++e) {
    const int col = col0 + s.col_offset(e);
    if (col >= T || (CAUSAL && col > row_lo + 8 * s.half(e))) s.v[e] = -INFINITY;
  }
}

// General kind: the scores of keys outside this thread's rows' ranges [klo0, khi0] and
// [klo1, khi1] (rows row_lo, row_lo + 8) to -inf; col0: the key of this thread's element 0.
template <int BC>
__device__ __forceinline__ void mask_scores_general(tiles::AccFragment<BC>& s, int col0, int klo0, int khi0, int klo1,
                                                    int khi1) {
#pragma unroll
  for (int e = 0; e < BC / 2; ++e) {
    const int col = col0 + s.col_offset(e);
    if (col < (s.half(e) ? klo1 : klo0) || col > (s.half(e) ? khi1 : khi0)) s.v[e] = -INFINITY;
  }
}

// A tile's epilogue: l = the quad's row sums, O / l and lse = m scale + ln l (rows < T; -inf and
// O = 0 where no key was visible), O to bf16 through this warp's own rows of the swizzled sO,
// then 16-byte stores of the warp's rows < T.
template <int D>
__device__ __forceinline__ void fwd_store_tile(const typename FwdCfg<D>::QTile& sO, const tiles::AccFragment<D>& o,
                                               const float (&l_run)[2], const float (&m_run)[2],
                                               const FlashAttentionParams& p, const FwdTile& t, int T, int q0,
                                               int warp_tile_row0, int thr_row0, int lane) {
  __syncwarp();  // every lane's reads of sO for the previous tile are done
  __nv_bfloat16* Og = static_cast<__nv_bfloat16*>(p.o) + t.b * p.o_batch_stride + t.h * D;
  float* lse = p.lse + ((int64_t)t.b * p.H + t.h) * T;
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float l = tiles::quad_sum(l_run[r]);
    inv[r] = l > 0.f ? 1.f / l : 0.f;
    const int lrow = thr_row0 + 8 * r;
    if ((lane & 3) == 0 && q0 + lrow < T) lse[q0 + lrow] = l > 0.f ? m_run[r] * p.scale + logf(l) : -INFINITY;
  }
  sO.stage(o, thr_row0, inv, lane);
  __syncwarp();
  sO.store_warp_rows(warp_tile_row0, Og + (int64_t)(q0 + warp_tile_row0) * p.o_token_stride, p.o_token_stride,
                     T - (q0 + warp_tile_row0), lane);
}

template <int D, MaskKind MK, bool DROPOUT>
__global__ void __launch_bounds__(FwdCfg<D>::kThreads, 1)
    flash_fwd_wg_kernel(const __grid_constant__ FwdArgs a) {
  // Plain kinds: compile-time causal/full and no mask state (FlashMask is then unused and
  // compiled away). General: tile ranges and per-element masks from FlashMask, causal at runtime.
  // DROPOUT (general only): a kernel of its own, so that the other general kernels keep their
  // registers.
  static_assert(!DROPOUT || MK == MaskKind::kGeneral, "dropout runs in the general kind");
  constexpr bool GENERAL = MK == MaskKind::kGeneral;
  constexpr bool CAUSAL = MK == MaskKind::kCausal;
  using Cfg = FwdCfg<D>;
  constexpr int BR = Cfg::BR, BC = Cfg::BC, KD = D / tiles::kWgmmaK, NO = D / 8;
  using Ring = tiles::RingBarriers<Cfg::kStages>;
  using KVTile = typename Cfg::KVTile;
  extern __shared__ uint8_t smem_raw[];
  __shared__ FwdBarriers<Cfg::kStages> bars;
  const uint32_t smem = (tiles::smem_addr(smem_raw) + tiles::kSwizzleAtomBytes - 1) & ~(tiles::kSwizzleAtomBytes - 1u);
  const FlashAttentionParams& p = a.p;

  if (threadIdx.x == 0) {
    tiles::mbar_init(tiles::smem_addr(&bars.q_full), 1);
    tiles::mbar_init(tiles::smem_addr(&bars.q_empty), Cfg::kConsumerWarps);
    bars.k.init(Cfg::kConsumerWarps);
    bars.v.init(Cfg::kConsumerWarps);
    tiles::fence_barrier_init();
  }
  __syncthreads();  // the only block-wide barrier: the producer warps exit early

  if (tiles::warpgroup_index() == 0) {
    tiles::warpgroup_release_registers<Cfg::kProducerRegs>();
    if (threadIdx.x == 0) fwd_produce<D, MK>(a, bars, smem);
    return;
  }
  tiles::warpgroup_claim_registers<Cfg::kConsumerRegs>();

  const int cw = tiles::warpgroup_index() - 1;  // consumer warpgroup: tile rows [64 cw, 64 cw + 64)
  const int lane = tiles::lane_index();
  const bool leader = lane == 0;  // arrives for its warp on the empty barriers
  const int T = p.T;
  const bool heaviest_first = CAUSAL || (GENERAL && p.causal);
  const float sl2 = p.scale * kLog2e;
  const typename Cfg::QTile sQ{smem + Cfg::kQOffset}, sO{smem + Cfg::kOOffset};
  const uint32_t q_full = tiles::smem_addr(&bars.q_full), q_empty = tiles::smem_addr(&bars.q_empty);
  const int wg_row0 = cw * tiles::kWgmmaM;
  const int thr_row0 = wg_row0 + tiles::AccFragment<BC>::row0();  // tile row of this thread's element 0
  const int thr_col0 = tiles::AccFragment<BC>::col0();

  // Ping-pong turns: warpgroup cw waits on barrier kFirstNamedBarrier + cw, which the other
  // warpgroup arrives at after issuing. Both take the same number of turns per tile (one per GEMM
  // issue step), so the turns alternate across tiles too; consumer 0 goes first.
  constexpr int kTurnThreads = 2 * tiles::kWarpgroupThreads;
  auto my_turn = [&] {
    if constexpr (Cfg::kPingPong) tiles::named_barrier_sync(tiles::kFirstNamedBarrier + cw, kTurnThreads);
  };
  auto pass_turn = [&] {
    if constexpr (Cfg::kPingPong) tiles::named_barrier_arrive(tiles::kFirstNamedBarrier + (1 - cw), kTurnThreads);
  };
  if (cw == 1) pass_turn();

  tiles::AccFragment<BC> s;
  tiles::AccFragment<D> o;
  tiles::AFragment<BC> pa;
  uint32_t use = 0;  // K/V blocks consumed so far: the producer's counter, in the same order
  int iter = 0;
  for (int L = blockIdx.x; L < a.n_tiles; L += gridDim.x, ++iter) {
    const FwdTile t(a, L, heaviest_first);
    const int q0 = t.qb * BR;
    const FlashMask mask = flash_mask<GENERAL>(p, t.b);
    const int2 kb = key_block_range<BR, BC, MK>(mask, q0, T);
    const int warp_row0 = q0 + wg_row0 + tiles::warp_in_warpgroup() * tiles::kWarpRows;  // first row of this warp
    const int row_lo = q0 + thr_row0;                                                     // + 8 half
    // General kind: row i (< T) sees exactly the keys [key_lo(i), key_hi(i)], so a masked block
    // costs two compares per element. Rows >= T (never written) keep [0, T-1].
    const int klo0 = GENERAL && row_lo < T ? mask.key_lo(row_lo) : 0;
    const int khi0 = GENERAL && row_lo < T ? mask.key_hi(row_lo) : T - 1;
    const int klo1 = GENERAL && row_lo + 8 < T ? mask.key_lo(row_lo + 8) : 0;
    const int khi1 = GENERAL && row_lo + 8 < T ? mask.key_hi(row_lo + 8) : T - 1;
    // ... and the warp's rows < T all see the keys [full_lo, full_hi] (the ranges are
    // non-decreasing, so the last row's key_lo and the first row's key_hi bound them): a block
    // inside needs no per-element mask, decided by two compares instead of the mask's
    // all_visible per block (a warp without rows < T needs none: its rows are never written).
    const int warp_last = min(warp_row0 + tiles::kWarpRows - 1, T - 1);
    const int full_lo = GENERAL && warp_row0 < T ? mask.key_lo(warp_last) : 0;
    const int full_hi = GENERAL && warp_row0 < T ? mask.key_hi(warp_row0) : T - 1;

    // The score modification of this tile's head, built once per tile: its slope (exp2f, a
    // division, a loop over H) cost about 100 instructions per warp, which per block of keys was
    // 13% of ALiBi's forward (Nsight Compute, 1,12,12,16384,64).
    const ScoreMod mod = GENERAL && mod_enabled(p) ? ScoreMod(p, t.h) : ScoreMod{};
    const int modk = GENERAL ? mod_kind(p) : kModNone;
    // Likewise the dropout state (its key is a load from device memory).
    [[maybe_unused]] const FlashDropout drop(p, t.b, t.h);
    // s (block j, raw q.k) -> masked, modified, exponentiated; m_run updated, alpha the factor
    // that rescales the previous O and l, sum the thread's part of the row sums.
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};
    bool o_rescale = true;  // the last softmax_block's alpha is not 1 (it moved the warp's maxima)
    auto softmax_block = [&](int j, float (&alpha)[2], float (&sum)[2]) {
      const int key0 = j * BC;
      ScoreMod::Affine raw{1.f, 0.f, 0.f};  // the raw score of the thread's s.v[e]: raw.a * s.v[e] + raw.b
      if constexpr (GENERAL) {
        // j - i of element e: this thread's (key0 + col0) - row_lo, plus a constant per register.
        if (modk != kModNone) apply_score_mod(s, raw, mod, modk, (float)(key0 + thr_col0 - row_lo));
        if (key0 < full_lo || key0 + BC - 1 > full_hi) mask_scores_general(s, key0 + thr_col0, klo0, khi0, klo1, khi1);
      } else if (key0 + BC > T || (CAUSAL && key0 + BC - 1 > warp_row0)) {
        mask_scores_plain<CAUSAL>(s, key0 + thr_col0, row_lo, T);
      }
      online_softmax_step<GENERAL>(s, m_run, o_rescale, alpha, sum, raw, sl2);
      if constexpr (DROPOUT) {  // after the row sums: l normalizes by the undropped P
#pragma unroll
        for (int e = 0; e < BC / 2; ++e) s.v[e] *= drop.mult(row_lo + 8 * s.half(e), key0 + thr_col0 + s.col_offset(e));
      }
    };
    // l rescaled to the new maximum plus the block's row sums; P = bf16(s).
    auto update_l_and_pack = [&](const float (&alpha)[2], const float (&sum)[2]) {
#pragma unroll
      for (int r = 0; r < 2; ++r) l_run[r] = l_run[r] * alpha[r] + sum[r];
      pa.from(s);
    };
    // O rescaled to the maximum of the block whose P V comes next (under that block's QK^T
    // successor on the tensor cores).
    auto scale_o = [&](const float (&alpha)[2]) {
      if (!o_rescale) return;  // alpha = 1 (warp-uniform)
#pragma unroll
      for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int n = 0; n < NO; ++n) {
          o.v[4 * n + 2 * r] *= alpha[r];
          o.v[4 * n + 2 * r + 1] *= alpha[r];
        }
    };
    // S = Q K^T (stage of use u), O += P V (stage of use u): issued, not waited. Operand
    // registers pinned around the issue, wgmma.fence right before it (after any register write).
    auto issue_qk = [&](uint32_t u) {
      const KVTile sK{smem + Cfg::kKOffset + Ring::stage(u) * KVTile::kBytes};
      s.fence();
      wg_fence();
#pragma unroll
      for (int kk = 0; kk < KD; ++kk) wgmma_ss<BC, 0, 0>(s.v, sQ.k_major_desc(wg_row0, kk), sK.k_major_desc(0, kk), kk > 0);
      wg_commit();
      s.fence();
    };
    auto issue_pv = [&](uint32_t u) {
      const KVTile sV{smem + Cfg::kVOffset + Ring::stage(u) * KVTile::kBytes};
      o.fence();
      pa.fence();
      wg_fence();
#pragma unroll
      for (int kk = 0; kk < BC / tiles::kWgmmaK; ++kk) wgmma_rs<D, 1>(o.v, pa.v[kk], sV.mn_major_desc(kk), 1);
      wg_commit();
      o.fence();
    };

    o.fill(0.f);
    tiles::mbar_wait(q_full, iter & 1);
    const int nb = kb.y - kb.x;
    if (nb > 0) {
      float alpha[2], sum[2];
      bars.k.wait_full(use);
      my_turn();
      issue_qk(use);
      pass_turn();
      wg_wait<0>();
      s.fence();
      if (leader) bars.k.release(use);
      if (leader && nb == 1) tiles::mbar_arrive(q_empty);  // Q's last reader is done
      softmax_block(kb.x, alpha, sum);
      update_l_and_pack(alpha, sum);
      for (int n = 1; n < nb; ++n) {
        const uint32_t u = use + n;
        bars.k.wait_full(u);
        my_turn();
        issue_qk(u);
        scale_o(alpha);  // alpha of block n - 1, whose P V is next
        bars.v.wait_full(u - 1);
        issue_pv(u - 1);
        pass_turn();
        wg_wait<1>();  // S_{j+1} done; P_j V_j may still run
        s.fence();
        if (leader) bars.k.release(u);
        if (leader && n == nb - 1) tiles::mbar_arrive(q_empty);
        softmax_block(kb.x + n, alpha, sum);
        wg_wait<0>();
        o.fence();
        pa.fence();
        if (leader) bars.v.release(u - 1);
        update_l_and_pack(alpha, sum);
      }
      const uint32_t u_last = use + nb - 1;
      bars.v.wait_full(u_last);
      my_turn();
      scale_o(alpha);
      issue_pv(u_last);
      pass_turn();
      wg_wait<0>();
      o.fence();
      pa.fence();
      if (leader) bars.v.release(u_last);
    } else if (leader) {
      tiles::mbar_arrive(q_empty);
    }
    use += nb;

    // Epilogue: row sums, normalize, lse; O through this warp's own rows of sO.
    fwd_store_tile<D>(sO, o, l_run, m_run, p, t, T, q0, warp_row0 - q0, thr_row0, lane);
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

template <int D, MaskKind MK, bool DROPOUT = false>
static void launch_fwd_bf16(const FlashAttentionParams& p, cudaStream_t stream) {
  using Cfg = FwdCfg<D>;
  FwdArgs a;
  a.p = p;
  a.q = tiles::cached_bf16_head_map(p.q, D, p.T, p.H, p.B, p.q_token_stride, p.q_batch_stride, Cfg::BR);
  a.k = tiles::cached_bf16_head_map(p.k, D, p.T, p.Hkv, p.B, p.k_token_stride, p.k_batch_stride, Cfg::BC);
  a.v = tiles::cached_bf16_head_map(p.v, D, p.T, p.Hkv, p.B, p.v_token_stride, p.v_batch_stride, Cfg::BC);
  a.n_qblocks = (p.T + Cfg::BR - 1) / Cfg::BR;
  const int64_t n_tiles = (int64_t)a.n_qblocks * p.H * p.B;
  ATTN_CHECK(n_tiles < INT32_MAX, "flash attention: {} query tiles, over 2^31", n_tiles);
  a.n_tiles = (int)n_tiles;
  auto kern = flash_fwd_wg_kernel<D, MK, DROPOUT>;
  set_smem_limit_once<flash_fwd_wg_kernel<D, MK, DROPOUT>>(Cfg::SMEM);
  // The schedule, chosen by how long a tile is (measured on the H200, session 5 of 2026-12-04):
  // - long tiles (key blocks per tile x head dim >= kLongTile: 16 key blocks at D = 64, 8 at 128):
  //   one block per tile, in groups of about a wave of (head, batch) pairs, so that the blocks
  //   resident together read the same few heads' K and V from L2 and the hardware hands out the
  //   next tile as a block finishes (e.g. 2,16,8192,128 causal 1.020 -> 0.938 ms, 1,12,16384,64
  //   1.010 -> 0.953);
  // - short tiles: persistent blocks (one per SM) striding over the tiles, query-block rank
  //   slowest over all pairs, whose next tile's loads overlap the last one's epilogue (the grouped
  //   launch lost there: 16,12,1024,64 causal 0.098 -> 0.113, window 1024 0.181 -> 0.199).
  constexpr int kLongTile = 1024;
  const int n_kblocks = (p.T + Cfg::BC - 1) / Cfg::BC;
  int blocks_per_tile = p.causal ? (n_kblocks + 1) / 2 : n_kblocks;
  if (p.window > 0) blocks_per_tile = std::min(blocks_per_tile, (p.window + Cfg::BR) / Cfg::BC + 1);
  const bool grouped = blocks_per_tile * D >= kLongTile;
  const int64_t n_pairs = (int64_t)p.H * p.B;
  a.pairs_per_group = grouped ? pairs_per_wave(a.n_qblocks, n_pairs) : (int)n_pairs;
  const int grid = grouped ? (int)n_tiles : (int)std::min<int64_t>(n_tiles, tiles::sm_count());
  kern<<<grid, Cfg::kThreads, Cfg::SMEM, stream>>>(a);
  CUDA_CHECK(cudaGetLastError());
}

void forward_dispatch(const FlashAttentionParams& p, cudaStream_t stream) {
  check_forward_params(p);
  if (p.bf16) {
    // 2 head dims x (3 mask kinds + the general kind with dropout) = 8 instantiations.
    switch (mask_kind(p)) {
      case MaskKind::kFull:
        p.D == 64 ? launch_fwd_bf16<64, MaskKind::kFull>(p, stream) : launch_fwd_bf16<128, MaskKind::kFull>(p, stream);
        break;
      case MaskKind::kCausal:
        p.D == 64 ? launch_fwd_bf16<64, MaskKind::kCausal>(p, stream)
                  : launch_fwd_bf16<128, MaskKind::kCausal>(p, stream);
        break;
      case MaskKind::kGeneral:
        if (p.dropout_p > 0.f)
          p.D == 64 ? launch_fwd_bf16<64, MaskKind::kGeneral, true>(p, stream)
                    : launch_fwd_bf16<128, MaskKind::kGeneral, true>(p, stream);
        else
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
