// Flash attention backward, bf16 main pass for Hopper in the FlashAttention-3 style: a TMA
// producer warp, a ring of Q / dO stages guarded by mbarriers, two consumer warpgroups with
// reallocated registers. Written on the tile layer of kernels/tiles/. The main pass of every bf16
// backward (flash_attention_bwd.cu's backward_dispatch): the plain mask kinds (full, causal), the
// general kind (variants, score modifications, attention dropout), in atomic mode (dQ added into
// the fp32 workspace) and in the deterministic mode (template flag DQ = false: dK, dV only, dQ by
// the dQ pass there); its pre-pass (Dsum), dQ convert kernel and dQ pass are there. See
// flash_attention.h.
//
// Math, one block per (key block of BC = 128 keys, kv head g, batch b), scores in log2 units:
//   for every query head h of g's group and every query block i of BR rows that sees the keys:
//     S^T  = K Q_i^T                          (BC x BR, from shared memory)
//     dP^T = V dO_i^T
//     P^T  = exp2(S^T scale log2e - lse_i log2e)            (masked entries 0)
//     dS^T = P^T o (dP^T - Dsum_i)                           (Dsum_i = rowsum(dO_i o O_i))
//     dV  += P^T dO_i,   dK += dS^T Q_i       (A operand from registers)
//     dQ_i += dS K                            (fp32, added into the workspace accumulator; BR = 80:
//                                              dQ_i^T = K^T dS^T, as 80 is no wgmma M)
//   finally dK *= scale (dQ's scale is applied by the convert kernel).
//
// Roles (384 threads, one block per SM at most; one block per (key block, kv head, batch), in
// groups of about one wave that share their heads' query-side rows in L2, heaviest key blocks
// first within a group: BwdBlock):
//   warpgroup 0, producer, 24 registers. Warp 0: lane 0 loads K and V once (TMA, one barrier),
//     then for each (h, i) in the consumers' order waits for a free stage, and issues the TMA
//     loads of Q_i and dO_i into it; the 32 lanes copy lse_i * log2e and Dsum_i into the stage
//     (rows >= T: lse = +inf so P = 0, Dsum = 0) and each arrives on the stage's full barrier
//     (32 arrivals + the TMA bytes complete a phase).
//   warpgroups 1, 2, consumers, 240 registers; consumer w owns keys [64 w, 64 w + 64) of the
//     block. Per (h, i): wait full; S^T, dP^T by wgmma; P^T, dS^T in registers; dS^T -> shared
//     memory; dV GEMM issued; named barrier (both consumers' dS^T stored); dQ_i = dS K by
//     wgmma (BR = 128: consumer w takes query rows [64 w, 64 w + 64); BR = 64: columns
//     [w D/2, (w+1) D/2); BR = 80: dQ_i^T = K^T dS, rows d [64 w, 64 w + 64), with dS stored
//     query-major: DqSplit), then the dK GEMM; wait for dV and dQ_i; dQ_i out (below) while dK
//     runs; wait; release the stage (256 thread arrivals on its empty barrier).
//   Deterministic mode (DQ = false): no dS^T store, no dQ GEMM, no reduction.
//   dQ accumulation: the fp32 dQ_i tile
//     goes through shared memory (row-major, the accumulator's own layout; stores rotated per
//     row against bank conflicts) and one thread adds it to global memory with one bulk
//     reduction (cp.reduce.async.bulk .add.f32: the TMA unit does the read-modify-write, one
//     instruction per tile instead of BR * D / 2 float2 atomics from the warps); the tile buffer
//     is reused after that thread saw the bulk read finish (wait_group.read) before the next
//     iteration's first barrier. (Measured against float2 atomics from registers, the former classic
//     kernel's way, on the H200: the bulk reduction was faster on all five of issue 14's shapes,
//     e.g. 0.660 vs 0.704 ms at (4,12,4096,64), 3.021 vs 3.341 at (2,16,8192,128).)
// Masks: causal blocks start at the diagonal query block; only tiles that cross the diagonal
// (per warp) or hold keys >= T carry the per-element mask. General kind (flash_attention_mask.cuh):
// a key block visits the query blocks [query_lo(k0) / BR, query_hi(min(T, k0 + BC) - 1) / BR];
// key j is seen by the queries [query_lo(j), query_hi(j)] (sRange, an int2 per key in shared
// memory; keys >= T by none), so a warp tile that is not all visible is masked by two compares
// per element; ALiBi / soft-capping recompute S^T as the forward does and scale dS^T by the
// soft-capping derivative; dropout (flash_attention_dropout.cuh, DROPOUT instantiation) masks and
// scales dP^T before dS^T is formed and P^T after (dV += Pd^T dO), keep bits drawn once per tile,
// kept in registers. The general kind computes P^T and dS^T in one loop after both GEMMs. Query rows >= T: TMA zero-fills Q and
// dO, lse = +inf makes P = 0, so they add nothing; their dQ rows are never written (the bulk
// reduction covers rows < T only).
// Epilogue: dK * scale and dV to bf16 through the (then free) K / V tiles, 16-byte stores.
// ============================================================================================
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

// How the consumers split dQ_i = dS K (BR x D) between them.
enum class DqSplit {
  kRows,        // BR = 128: consumer w takes query rows [64 w, 64 w + 64)
  kCols,        // BR = 64: consumer w takes columns [w D/2, (w+1) D/2)
  kTransposed,  // BR = 80 (not a wgmma M): dQ_i^T = K^T dS^T, consumer w takes rows d of [64 w, 64 w + 64);
                // dS is stored query-major (row = query), the K-major B operand of that GEMM
};

// Query rows per stage. D = 64: 128. D = 128: 80 for the full kind (FlashAttention-3's tile for
// head dim 128 without a mask: the larger N of the S^T, dP^T GEMMs and the larger K of the dV, dK
// GEMMs read less shared memory per FLOP; dQ then runs transposed), 64 for the others. Measured
// on the H100 (session 20, calls A and B, five rounds, backward ms): full 2,16,8192 5.39-5.45 ->
// 5.20-5.24; causal at 80 rows 2,16,8192 2.94-2.96 -> 2.86-2.88 but 8,16,2048 0.911-0.951 ->
// 0.947-0.955, so causal keeps 64; the general kind spills at 80 columns of S^T and dP^T.
template <int D, MaskKind MK>
constexpr int bwd_query_rows() {
  return D == 64 ? 2 * tiles::kWgmmaM : (MK == MaskKind::kFull ? 80 : tiles::kWgmmaM);
}

template <int D, int BR_>
struct BwdSm90Cfg {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kConsumerWarps = kConsumerWarpgroups * tiles::kWarpsPerWarpgroup;
  static constexpr int kConsumerThreads = kConsumerWarpgroups * tiles::kWarpgroupThreads;
  static constexpr int BC = kConsumerWarpgroups * tiles::kWgmmaM;  // 128 keys per block
  static constexpr int BR = BR_;                                     // query rows per stage
  static constexpr int kHeadDim = D;
  static constexpr int kStages = 2;                                  // Q / dO ring depth (3 measured no faster)
  static constexpr int kThreads = (1 + kConsumerWarpgroups) * tiles::kWarpgroupThreads;
  static constexpr int kProducerRegs = 24, kConsumerRegs = 240;
  static constexpr int kLaunchRegs = tiles::kRegistersPerSm / kThreads / tiles::kRegisterGranule * tiles::kRegisterGranule;
  static_assert(kProducerRegs * tiles::kWarpgroupThreads + kConsumerRegs * kConsumerThreads <= kLaunchRegs * kThreads,
                "register split exceeds the block's registers");
  static constexpr DqSplit kDqSplit = BR == 2 * tiles::kWgmmaM ? DqSplit::kRows
                                      : BR == tiles::kWgmmaM   ? DqSplit::kCols
                                                               : DqSplit::kTransposed;
  static_assert(kDqSplit != DqSplit::kTransposed || D == 2 * tiles::kWgmmaM, "dQ^T: 64 rows d per consumer");
  // N of each consumer's dQ GEMM: 64 query rows x D; 64 rows x D/2 columns; 64 rows d x BR queries.
  static constexpr int kDqN = kDqSplit == DqSplit::kRows ? D : kDqSplit == DqSplit::kCols ? D / 2 : BR;

  using KVTile = tiles::SwizzledTile<BC, D>;   // K, V (later the dK, dV staging tiles)
  using QTile = tiles::SwizzledTile<BR, D>;    // Q_i, dO_i
  // dS^T (row = key), or for the transposed dQ split dS (row = query)
  using DsTile = std::conditional_t<kDqSplit == DqSplit::kTransposed, tiles::SwizzledTile<BR, BC>, tiles::SwizzledTile<BC, BR>>;
  static constexpr int kRowVecBytes = BR * 4;  // lse_i or Dsum_i of one stage, fp32
  static constexpr int kKOffset = 0;
  static constexpr int kVOffset = kKOffset + KVTile::kBytes;
  static constexpr int kQOffset = kVOffset + KVTile::kBytes;
  static constexpr int kdOOffset = kQOffset + kStages * QTile::kBytes;
  static constexpr int kDsOffset = kdOOffset + kStages * QTile::kBytes;
  static constexpr int kDqOffset = kDsOffset + DsTile::kBytes;         // BR x D fp32, row-major
  static constexpr int kLseOffset = kDqOffset + BR * D * 4;            // kStages x BR fp32
  static constexpr int kDsumOffset = kLseOffset + kStages * kRowVecBytes;
  static constexpr int kRangeOffset = kDsumOffset + kStages * kRowVecBytes;  // general kind: BC x int2
  static constexpr int SMEM = kRangeOffset + BC * 8 + tiles::kSwizzleAtomBytes;   // + alignment slack
};


struct BwdSm90Args {
  tiles::TmaMap q, k, v, dO;  // (d, t, head, b) views; boxes of BR (q, dO) and BC (k, v) rows
  FlashAttentionBackwardParams p;
  const float* dsum = nullptr;  // (B, H, T)
  float* dq_accum = nullptr;    // (B, H, T, D) fp32, zeroed by the dispatcher
  int n_kblocks = 0;            // key blocks per (kv head, batch) pair
  int pairs_per_group = 1;      // (kv head, batch) pairs whose key blocks run together
};

// The work of block L: kv head g, batch b, key block kb, in GroupedOrder (key blocks slowest
// within a group of about one wave; causal: the first key blocks see the most query blocks, so
// each group starts heaviest first and the last group's lightest blocks fill the last wave). The
// blocks resident together then stream the same few heads' Q, dO, lse, Dsum and dQ accumulator
// rows from L2; with key blocks slowest over all pairs (the older order) every resident block
// read a head of its own from DRAM, again for each key block (at 8,16,2048,128: 75% of memory
// throughput, the tensor pipe at 38%).
struct BwdBlock {
  int g, b, kb;
  __device__ __forceinline__ BwdBlock(const BwdSm90Args& a, int L) {
    const GroupedOrder o(L, a.n_kblocks, a.p.fwd.Hkv * a.p.fwd.B, a.pairs_per_group);
    kb = o.rank;
    g = o.pair % a.p.fwd.Hkv;
    b = o.pair / a.p.fwd.Hkv;
  }
};

template <int Stages>
struct BwdSm90Barriers {
  uint64_t kv_full;          // K and V of the block landed
  uint64_t full[Stages];     // Q_i, dO_i (TMA bytes) and lse_i, Dsum_i (32 producer lanes) landed
  uint64_t empty[Stages];    // all consumer warps are done with the stage
};

// Named barriers among the 256 consumer threads (id 0 is __syncthreads').
enum BwdSm90NamedBarrier : int {
  kBarDsFree = tiles::kFirstNamedBarrier,  // previous dQ GEMMs done reading dS^T; dQ tile free
  kBarDsReady,                             // both consumers' dS^T stored
  kBarDqReady,                             // both consumers' dQ_i parts stored (bulk path)
};

__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.expect_tx.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// bytes of fp32 at shared src added element-wise into global dst (TMA unit; bulk async group).
__device__ __forceinline__ void bulk_reduce_add_f32(float* dst, uint32_t src, uint32_t bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(dst), "r"(src),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulk_commit_group() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
// Wait until the bulk operations of this thread have finished reading shared memory.
__device__ __forceinline__ void bulk_wait_group_read0() {
  asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}
__device__ __forceinline__ void bulk_wait_group0() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }

// The query blocks [begin, end) that see key block [k0, k0 + BC) (both roles count the same).
// General kind: FlashMask's tile range (query_lo / query_hi are non-decreasing); empty if no
// query sees the block.
template <int BR, int BC, MaskKind MK>
__device__ __forceinline__ int2 query_block_range(const FlashMask& mask, int k0, int T) {
  if constexpr (MK == MaskKind::kGeneral) {
    const int begin = mask.query_lo(k0) / BR;
    return make_int2(begin, max(begin, mask.query_hi(min(T, k0 + BC) - 1) / BR + 1));
  } else {
    return make_int2(MK == MaskKind::kCausal ? k0 / BR : 0, (T + BR - 1) / BR);
  }
}

// General kind: P^T and dS^T of one (64-key, BR-query) warpgroup tile, from S^T (s) and dP^T (dp)
// in fp32 accumulators to the bf16 A fragments of the dV and dK GEMMs (pa, da), packed pair by
// pair so that the fp32 registers free up as the loop runs (the soft-capping loop's tanh would
// spill otherwise). Per element (query q, key j):
//   s' = mod(s) (ALiBi, soft-capping: ScoreMod),  P = exp2(s' sl2 - lse log2e)  (0 if masked),
//   DROP: dP = keep ? dPd / (1 - p) : 0,  dS = P (dP - Dsum) (* soft-capping derivative),
//   DROP: P -> keep ? P / (1 - p) : 0 (for dV).
// MODK: the ModKind that is on; MASK: the tile is not entirely visible to this warp; DROP:
// attention dropout (keep: bit i of the thread's element i, drawn by the caller). All uniform
// per tile and chosen by the caller, so each loop carries only its own work (a runtime `if` per
// element compiles to predicated code that is issued for every element of every tile). The mask
// of a masked tile is two compares per element: key j is seen by exactly the queries
// [query_lo(j), query_hi(j)] (flash_attention_mask.cuh; empty for j >= T, and q >= T is past
// every range), computed once per block into shared memory (sRange, int2 per key of the block).
// Element 4n + e of the thread: key key_lo + 8 (e >> 1), query q0 + 8n + 2 (lane % 4) + (e & 1);
// sL: lse * log2e per query, sDs: Dsum per query.
template <int MODK, bool MASK, bool DROP, int NQ>
__device__ __forceinline__ void bwd_probs_general(const float (&s)[4 * NQ], const float (&dp)[4 * NQ],
                                                  uint32_t (&pa)[NQ / 2][4], uint32_t (&da)[NQ / 2][4],
                                                  const float* sL, const float* sDs, const int2* sRange, int key_row,
                                                  const ScoreMod& mod, int q0, int key_lo, float sl2, int lane,
                                                  const uint32_t* keep, float drop_scale) {
  int2 qr[2] = {make_int2(0, 0), make_int2(0, 0)};  // query range of this thread's keys key_lo + 8r
  if constexpr (MASK) qr[0] = sRange[key_row], qr[1] = sRange[key_row + 8];
  // key - q of element (n, r, c) = kq0 + 8 (r - n) - c: the per-register offsets of ScoreMod::value
  [[maybe_unused]] const float kq0 = (float)(key_lo - q0 - 2 * (lane & 3));
  const ScoreMod::Affine aff = mod.affine<MODK>(kq0);
  // exp2(raw sl2 - lse log2e) = exp2(v ea + shift), L = lse log2e
  const float ea = aff.exp_scale<MODK>(sl2);
#pragma unroll
  for (int n = 0; n < NQ; ++n) {
    const int qc = n * 8 + 2 * (lane & 3);
    const float2 L = *reinterpret_cast<const float2*>(sL + qc);
    const float2 Dd = *reinterpret_cast<const float2*>(sDs + qc);
    const float shift[2] = {aff.exp_shift<MODK>(sl2, L.x), aff.exp_shift<MODK>(sl2, L.y)};
#pragma unroll
    for (int r = 0; r < 2; ++r) {  // the pair e = 2r, 2r + 1: key key_lo + 8r, queries q0 + qc, + 1
      float pv[2], ds[2];
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int i = 4 * n + 2 * r + c;
        [[maybe_unused]] const int q = q0 + qc + c;
        float v = s[i];
        if constexpr (MODK != kModNone) v = mod.value<MODK>(v, float(8 * (r - n) - c), aff);
        const float arg = fmaf(v, ea, shift[c]);
        float p = fast_exp2(arg);
        if constexpr (MASK) {
          if (q < qr[r].x || q > qr[r].y) p = 0.f;
        }
        float dpv = dp[i];
        [[maybe_unused]] bool kept = true;
        if constexpr (DROP) {
          kept = (keep[i / 32] >> (i % 32)) & 1u;
          dpv = kept ? dpv * drop_scale : 0.f;
        }
        ds[c] = p * (dpv - (c ? Dd.y : Dd.x));
        if constexpr ((MODK & kModSoftcap) != 0) ds[c] *= ScoreMod::deriv<MODK>(v);
        if constexpr (DROP) p = kept ? p * drop_scale : 0.f;
        pv[c] = p;
      }
      pa[n / 2][2 * (n % 2) + r] = pack_bf16(pv[0], pv[1]);
      da[n / 2][2 * (n % 2) + r] = pack_bf16(ds[0], ds[1]);
    }
  }
}

// One block's steps: every query head h of kv head g's group against every query block of
// [qb0, qb0 + nper) (the blocks that see the key block), head-major. Both roles walk them in this
// order; step `it` uses ring stage it % kStages, whose barriers are then at phase parity.
template <int BR, int kStages>
struct BwdSteps {
  int g, G, qb0, nper, total;
  struct Step {
    int stage;
    uint32_t parity;
    int h, q0;
  };
  __device__ __forceinline__ Step operator[](int it) const {
    return {it % kStages, (uint32_t)(it / kStages) & 1u, g * G + it / nper, (qb0 + it % nper) * BR};
  }
};

// Producer, warp 0 of warpgroup 0. Lane 0 loads K and V once (one barrier), then for each step
// waits for a free stage and issues the TMA loads of Q_i and dO_i into it; the 32 lanes copy
// lse_i log2e and Dsum_i into the stage (rows >= T: lse = +inf so P = 0, Dsum = 0) and each
// arrives on the stage's full barrier (32 arrivals + the TMA bytes complete a phase).
template <class Cfg>
__device__ __forceinline__ void bwd_produce(const BwdSm90Args& a, BwdSm90Barriers<Cfg::kStages>& bars, uint32_t smem,
                                            float* sLse, float* sDsum, const BwdSteps<Cfg::BR, Cfg::kStages>& steps,
                                            int k0, int b, int T, int H) {
  using KVTile = typename Cfg::KVTile;
  using QTile = typename Cfg::QTile;
  constexpr int BR = Cfg::BR;
  const FlashAttentionParams& f = a.p.fwd;
  const int lane = tiles::lane_index();
  if (lane == 0) {
    const uint32_t kv_full = tiles::smem_addr(&bars.kv_full);
    tiles::tma_prefetch(&a.q.map);
    tiles::tma_prefetch(&a.dO.map);
    tiles::tma_prefetch(&a.k.map);
    tiles::tma_prefetch(&a.v.map);
    tiles::mbar_arrive_expect_tx(kv_full, 2 * KVTile::kBytes);
    const KVTile sK{smem + Cfg::kKOffset}, sV{smem + Cfg::kVOffset};
    sK.load(a.k, kv_full, k0, steps.g, b);
    sV.load(a.v, kv_full, k0, steps.g, b);
  }
  for (int it = 0; it < steps.total; ++it) {
    const auto step = steps[it];
    const uint32_t full = tiles::smem_addr(&bars.full[step.stage]);
    tiles::mbar_wait(tiles::smem_addr(&bars.empty[step.stage]), step.parity ^ 1u);
    if (lane == 0) {
      mbar_expect_tx(full, 2 * QTile::kBytes);
      const QTile sQ{smem + Cfg::kQOffset + step.stage * QTile::kBytes};
      const QTile sdO{smem + Cfg::kdOOffset + step.stage * QTile::kBytes};
      sQ.load(a.q, full, step.q0, step.h, b);
      sdO.load(a.dO, full, step.q0, step.h, b);
    }
    const int64_t rbase = ((int64_t)b * H + step.h) * T;
    for (int r = lane; r < BR; r += tiles::kWarpSize) {
      const int q = step.q0 + r;
      sLse[step.stage * BR + r] = q < T ? f.lse[rbase + q] * kLog2e : INFINITY;
      sDsum[step.stage * BR + r] = q < T ? a.dsum[rbase + q] : 0.f;
    }
    tiles::mbar_arrive(full);  // release: this lane's stores are seen after the phase completes
  }
}

// S^T = K_w Q_i^T, dP^T = V_w dO_i^T (64 keys x BR queries each, from shared memory), issued as
// two commit groups: P^T can be computed while dP^T still runs.
template <class Cfg>
__device__ __forceinline__ void issue_s_dp(tiles::AccFragment<Cfg::BR>& s, tiles::AccFragment<Cfg::BR>& dp,
                                           const typename Cfg::KVTile& sK, const typename Cfg::KVTile& sV,
                                           const typename Cfg::QTile& sQ, const typename Cfg::QTile& sdO, int wg_key0) {
  constexpr int BR = Cfg::BR, KD = Cfg::kHeadDim / tiles::kWgmmaK;
  s.fence();
  dp.fence();
  wg_fence();
#pragma unroll
  for (int kk = 0; kk < KD; ++kk) wgmma_ss<BR, 0, 0>(s.v, sK.k_major_desc(wg_key0, kk), sQ.k_major_desc(0, kk), kk > 0);
  wg_commit();
#pragma unroll
  for (int kk = 0; kk < KD; ++kk)
    wgmma_ss<BR, 0, 0>(dp.v, sV.k_major_desc(wg_key0, kk), sdO.k_major_desc(0, kk), kk > 0);
  wg_commit();
  s.fence();
  dp.fence();
}

// Where this consumer thread sits in its block: keys [64 cw, 64 cw + 64) of the block are its
// warpgroup's, 16 of them its warp's, key_lo and key_lo + 8 its own.
struct BwdThread {
  int cw, wl, lane;
  int k0, wg_key0, warp_key0, key_lo;
  __device__ __forceinline__ BwdThread(int k0_)
      : cw(tiles::warpgroup_index() - 1), wl(tiles::warp_in_warpgroup()), lane(tiles::lane_index()), k0(k0_),
        wg_key0(cw * tiles::kWgmmaM), warp_key0(k0_ + wg_key0 + wl * tiles::kWarpRows), key_lo(warp_key0 + lane / 4) {}
};

// Plain kinds (full, causal). P^T = exp2(S^T sl2 - lse log2e) once S^T is done (s becomes P^T,
// pa its bf16), then dS^T = P^T (dP^T - Dsum) once dP^T is (dp becomes dS^T, da its bf16). Per
// warp (16 keys) the tile needs a mask only where it reaches past the diagonal or past T.
template <class Cfg, bool CAUSAL>
__device__ __forceinline__ void bwd_probs_plain(tiles::AccFragment<Cfg::BR>& s, tiles::AccFragment<Cfg::BR>& dp,
                                                tiles::AFragment<Cfg::BR>& pa, tiles::AFragment<Cfg::BR>& da,
                                                const float* sL, const float* sDs, const BwdThread& th, int q0, int T,
                                                float sl2) {
  constexpr int NQ = Cfg::BR / 8;
  const int lane = th.lane, key_lo = th.key_lo;
  wg_wait<1>();
  s.fence();
  const bool need_mask = th.k0 + Cfg::BC > T || (CAUSAL && th.warp_key0 + tiles::kWarpRows - 1 > q0);
  // Masked element: key >= T, or key - q = causal_lim' + 8 (e >> 1) - 8 n - (e & 1) > 0.
  const bool key_lo_out = key_lo >= T, key_hi_out = key_lo + 8 >= T;
  const int causal_lim = q0 + 2 * (lane & 3) - key_lo;
  auto probs = [&](auto mask_on) {
    constexpr bool MASK = decltype(mask_on)::value;
#pragma unroll
    for (int n = 0; n < NQ; ++n) {
      const int qc = n * 8 + 2 * (lane & 3);
      const float2 L = *reinterpret_cast<const float2*>(sL + qc);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float pv = fast_exp2(fmaf(s.v[4 * n + e], sl2, -((e & 1) ? L.y : L.x)));
        if constexpr (MASK) {  // key = key_lo + 8 (e >> 1), q = q0 + qc + (e & 1)
          if (((e >> 1) ? key_hi_out : key_lo_out) || (CAUSAL && 8 * (e >> 1) - 8 * n - (e & 1) > causal_lim)) pv = 0.f;
        }
        s.v[4 * n + e] = pv;
      }
    }
  };
  if (need_mask)
    probs(std::true_type{});
  else
    probs(std::false_type{});
  pa.from(s);

  wg_wait<0>();
  dp.fence();
#pragma unroll
  for (int n = 0; n < NQ; ++n) {
    const float2 Dd = *reinterpret_cast<const float2*>(sDs + n * 8 + 2 * (lane & 3));
#pragma unroll
    for (int e = 0; e < 4; ++e) dp.v[4 * n + e] = s.v[4 * n + e] * (dp.v[4 * n + e] - ((e & 1) ? Dd.y : Dd.x));
  }
  da.from(dp);
}

// dS^T (bf16, da) -> shared memory: rows = keys; for the transposed dQ split dS, rows = queries.
template <class Cfg>
__device__ __forceinline__ void store_ds(const typename Cfg::DsTile& sdS, const tiles::AFragment<Cfg::BR>& da,
                                         const BwdThread& th) {
  constexpr int BR = Cfg::BR;
  const int lane = th.lane;
  if constexpr (Cfg::kDqSplit == DqSplit::kTransposed) {
    // dS (row = query): register j of k-step kk is the 8 x 8 piece keys warp_row + 8 (j & 1) + 0..7,
    // queries 16 kk + 8 (j >> 1) + 0..7 (the A fragment's layout); stmatrix .trans stores it as 8
    // query rows of one 16-byte key chunk. Lane 8j + i addresses query row i of piece j.
    const int j = lane / 8, i = lane % 8;
    const int key_chunk = (th.wg_key0 + th.wl * tiles::kWarpRows) / 8 + (j & 1);
#pragma unroll
    for (int kk = 0; kk < BR / tiles::kWgmmaK; ++kk)
      stsm_x4_t(sdS.chunk_addr(tiles::kWgmmaK * kk + 8 * (j >> 1) + i, key_chunk), da.v[kk]);
  } else {
    const int row = th.wg_key0 + th.wl * tiles::kWarpRows + lane / 4;
#pragma unroll
    for (int kk = 0; kk < BR / tiles::kWgmmaK; ++kk)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sdS.chunk_addr(row + 8 * r, 2 * kk) + (lane & 3) * 4),
                     "r"(da.v[kk][r])
                     : "memory");
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sdS.chunk_addr(row + 8 * r, 2 * kk + 1) + (lane & 3) * 4),
                     "r"(da.v[kk][2 + r])
                     : "memory");
      }
  }
}

// This consumer's part of dQ_i = dS K (transposed split: dQ_i^T = K^T dS), issued as one commit
// group: A MN-major (its contraction index, the key, runs down the tile's rows); B too, except dS.
template <class Cfg>
__device__ __forceinline__ void issue_dq_part(float (&acc)[Cfg::kDqN / 2], const typename Cfg::DsTile& sdS,
                                              const typename Cfg::KVTile& sK, int cw) {
  using KVTile = typename Cfg::KVTile;
  using DsTile = typename Cfg::DsTile;
  constexpr int D = Cfg::kHeadDim;
  constexpr DqSplit kSplit = Cfg::kDqSplit;
  wg_fence();
#pragma unroll
  for (int kk = 0; kk < Cfg::BC / tiles::kWgmmaK; ++kk) {
    uint64_t da_desc, db_desc;
    if constexpr (kSplit == DqSplit::kTransposed) {  // A = K^T (columns d of block cw), B = dS (K-major)
      da_desc = wg_desc(sK.base + cw * KVTile::kBlockBytes + kk * KVTile::kRowStepBytes, KVTile::kBlockBytes,
                        tiles::kSwizzleAtomBytes);
      db_desc = sdS.k_major_desc(0, kk);
    } else {  // A = dS (query-major view of dS^T), B = K
      const uint32_t ds_col = kSplit == DqSplit::kRows ? cw * DsTile::kBlockBytes : 0;  // queries [64 cw, ..)
      const uint32_t k_col = kSplit == DqSplit::kRows                   ? 0
                             : D == 2 * tiles::kSwizzleElems ? cw * KVTile::kBlockBytes
                                                             : cw * 64;
      da_desc = wg_desc(sdS.base + ds_col + kk * DsTile::kRowStepBytes, DsTile::kBlockBytes, tiles::kSwizzleAtomBytes);
      db_desc = wg_desc(sK.base + k_col + kk * KVTile::kRowStepBytes, KVTile::kBlockBytes, tiles::kSwizzleAtomBytes);
    }
    wgmma_ss<Cfg::kDqN, 1, kSplit == DqSplit::kTransposed ? 0 : 1>(acc, da_desc, db_desc, kk > 0 ? 1 : 0);
  }
  wg_commit();
  wg_fence_regs(acc);
}

// The transposed split's dQ_i^T part (rows d, columns queries) -> the row-major fp32 tile sDqf
// (BR x D). Accumulator element 4n + e: d = 64 cw + 16 wl + g + 8 half(e), query 8n + 2t + (e & 1)
// (g = lane / 4, t = lane % 4). A row of the tile is D * 4 bytes, so the bank is d's alone and a
// warp's 16 rows d reach 16 banks: 2-way at best. The threads of odd t store their second row d
// first so that a store reaches all 16 (the 4 threads of a quad would hit one bank).
template <class Cfg>
__device__ __forceinline__ void stage_dq_transposed(float* sDqf, const float (&acc)[Cfg::kDqN / 2],
                                                    const BwdThread& th) {
  constexpr int D = Cfg::kHeadDim, NQ = Cfg::BR / 8;
  const int t = th.lane & 3;
  const int dcol = th.cw * tiles::kWgmmaM + th.wl * tiles::kWarpRows + th.lane / 4;
#pragma unroll
  for (int n = 0; n < NQ; ++n)
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        // x = acc[4n + 2r + c], with compile-time indices (a select; a run-time index would put acc in local memory)
        const int r = j ^ (t & 1);
        const float x = (t & 1) ? acc[4 * n + 2 * (j ^ 1) + c] : acc[4 * n + 2 * j + c];
        sDqf[(8 * n + 2 * t + c) * D + dcol + 8 * r] = x;
      }
}

// The row (kRows) or column (kCols) split's dQ_i part -> the row-major fp32 tile sDqf (BR x D, one
// bulk copy), whose rows are D * 4 bytes apart: the same banks. Accumulator element (row, col) of
// this thread: rows qrow0 + 16 wl + g (+ 8), columns col0 + 8n + 2 (lane % 4) (+ 1), g = lane / 4.
// So that the 8 rows of a warp's store hit different banks, row g stores its column blocks
// rotated by g: store step j writes column block (j + g) mod 8, which the caller has rotated into
// register block j.
template <class Cfg>
__device__ __forceinline__ void stage_dq_rotated(float* sDqf, const float (&acc)[Cfg::kDqN / 2], const BwdThread& th) {
  constexpr int D = Cfg::kHeadDim, NB = Cfg::kDqN / 8;
  constexpr DqSplit kSplit = Cfg::kDqSplit;
  const int cw = th.cw, wl = th.wl, lane = th.lane, g8 = lane / 4;
  const int qrow0 = kSplit == DqSplit::kRows ? cw * tiles::kWgmmaM : 0;
  const int col0 = kSplit == DqSplit::kRows ? 0 : cw * (D / 2);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = qrow0 + wl * tiles::kWarpRows + g8 + 8 * r;
#pragma unroll
    for (int j = 0; j < NB; ++j) {
      const int col = col0 + ((j + g8) % NB) * 8 + 2 * (lane & 3);
      *reinterpret_cast<float2*>(sDqf + row * D + col) = make_float2(acc[4 * j + 2 * r], acc[4 * j + 2 * r + 1]);
    }
  }
}

// Epilogue, copy-out: the warp's rows < T of the staged dK, dV tiles (bf16 in sK, sV) as
// 16-byte stores.
template <class Cfg>
__device__ __forceinline__ void copy_out_dk_dv(const typename Cfg::KVTile& sK, const typename Cfg::KVTile& sV,
                                               const FlashAttentionBackwardParams& p, int g, int b, int k0,
                                               int warp_row0, int T, int lane) {
  constexpr int D = Cfg::kHeadDim;
  __nv_bfloat16* dKg = static_cast<__nv_bfloat16*>(p.dk) + b * p.dk_batch_stride + g * D;
  __nv_bfloat16* dVg = static_cast<__nv_bfloat16*>(p.dv) + b * p.dv_batch_stride + g * D;
  const int rows = T - (k0 + warp_row0);
  sK.store_warp_rows(warp_row0, dKg + (int64_t)(k0 + warp_row0) * p.dk_token_stride, p.dk_token_stride, rows, lane);
  sV.store_warp_rows(warp_row0, dVg + (int64_t)(k0 + warp_row0) * p.dv_token_stride, p.dv_token_stride, rows, lane);
}

// Epilogue, staging: dK * scale and dV to bf16 in the (then free) K / V tiles, this thread's rows
// of the accumulators' layout.
template <class Cfg>
__device__ __forceinline__ void stage_dk_dv(const tiles::AccFragment<Cfg::kHeadDim>& dk,
                                            const tiles::AccFragment<Cfg::kHeadDim>& dv, const typename Cfg::KVTile& sK,
                                            const typename Cfg::KVTile& sV, const FlashAttentionParams& f, int wg_key0,
                                            int lane) {
  const int row0 = wg_key0 + dk.row0();
  sK.stage(dk, row0, {f.scale, f.scale}, lane);
  sV.stage(dv, row0, {1.f, 1.f}, lane);
}

// Attention dropout in the backward: keep bit i of this thread's element i of the 64 x BR tile
// (element 4n + e: key key_lo + 8 (e >> 1), query q0 + 8n + 2 (lane % 4) + (e & 1), as in
// bwd_probs_general), drawn by rolled loops, one word each: the hash's temporaries, not 64 of
// them, beside the live accumulators.
template <int BR>
__device__ __forceinline__ void draw_keep_bits(uint32_t (&keep_bits)[(BR / 2 + 31) / 32], const FlashDropout& drop,
                                               int q0, int key_lo, int lane) {
  constexpr int kElems = BR / 2;
#pragma unroll
  for (int w = 0; w < (kElems + 31) / 32; ++w) {
    uint32_t bits = 0;
#pragma unroll 1
    for (int i = 32 * w; i < min(kElems, 32 * w + 32); ++i) {
      const int n = i / 4, e = i % 4;
      if (drop.mult(q0 + n * 8 + 2 * (lane & 3) + (e & 1), key_lo + ((e >> 1) << 3)) != 0.f) bits |= 1u << (i % 32);
    }
    keep_bits[w] = bits;
  }
}

// DROPOUT: attention dropout (general kind only, a kernel of its own: registers). DQ: dQ_i = dS K
// added into the fp32 workspace (atomic mode); false: the deterministic mode's main pass (dK, dV
// only; dQ by flash_bwd_dq_bf16_kernel afterwards).
// A consumer's step: wait full -> issue_s_dp -> P^T, dS^T (bwd_probs_plain, or the general kind's
// loops) -> store_ds -> dV GEMM -> issue_dq_part, dK GEMM -> stage the dQ part -> bulk reduction ->
// release the stage. The phases are functions only where that left the machine code byte for
// byte the same (scripts/device_code_diff.sh); the general kind's probabilities and the dQ part's
// register rotation stay inline, as extracted they came out in another register allocation.
template <int D, MaskKind MK, bool DROPOUT, bool DQ>
__global__ void __launch_bounds__(BwdSm90Cfg<D, bwd_query_rows<D, MK>()>::kThreads, 1)
    flash_bwd_sm90_kernel(const __grid_constant__ BwdSm90Args a) {
  static_assert(!DROPOUT || MK == MaskKind::kGeneral, "dropout runs in the general kind");
  constexpr bool CAUSAL = MK == MaskKind::kCausal;
  constexpr bool GENERAL = MK == MaskKind::kGeneral;
  using Cfg = BwdSm90Cfg<D, bwd_query_rows<D, MK>()>;
  constexpr int BR = Cfg::BR, BC = Cfg::BC, NQ = BR / 8;
  constexpr int kStages = Cfg::kStages;
  using KVTile = typename Cfg::KVTile;
  using QTile = typename Cfg::QTile;
  using DsTile = typename Cfg::DsTile;
  extern __shared__ uint8_t smem_raw[];
  __shared__ BwdSm90Barriers<kStages> bars;
  const uint32_t smem = (tiles::smem_addr(smem_raw) + tiles::kSwizzleAtomBytes - 1) & ~(tiles::kSwizzleAtomBytes - 1u);
  uint8_t* smem_gen = smem_raw + (smem - tiles::smem_addr(smem_raw));  // generic pointer to `smem`
  float* sLse = reinterpret_cast<float*>(smem_gen + Cfg::kLseOffset);
  float* sDsum = reinterpret_cast<float*>(smem_gen + Cfg::kDsumOffset);
  int2* sRange = reinterpret_cast<int2*>(smem_gen + Cfg::kRangeOffset);  // general kind only

  const FlashAttentionBackwardParams& p = a.p;
  const FlashAttentionParams& f = p.fwd;
  const int T = f.T, H = f.H, G = f.H / f.Hkv;
  const BwdBlock blk(a, blockIdx.x);
  const int g = blk.g, b = blk.b, kb = blk.kb;
  const int k0 = kb * BC;
  const FlashMask mask = flash_mask<GENERAL>(f, b);
  const int2 qr = query_block_range<BR, BC, MK>(mask, k0, T);
  const int nper = qr.y - qr.x;  // >= 1 for the plain kinds (k0 < T); general: may be 0
  const BwdSteps<BR, kStages> steps{g, G, qr.x, nper, G * nper};

  if (GENERAL && threadIdx.x < BC) {  // the queries that see each key of the block (keys >= T: none)
    const int j = k0 + threadIdx.x;
    sRange[threadIdx.x] = j < T ? make_int2(mask.query_lo(j), mask.query_hi(j)) : make_int2(T, -1);
  }
  if (threadIdx.x == 0) {
    tiles::mbar_init(tiles::smem_addr(&bars.kv_full), 1);
    for (int s = 0; s < kStages; ++s) {
      tiles::mbar_init(tiles::smem_addr(&bars.full[s]), tiles::kWarpSize);
      tiles::mbar_init(tiles::smem_addr(&bars.empty[s]), Cfg::kConsumerThreads);
    }
    tiles::fence_barrier_init();
  }
  __syncthreads();  // the only block-wide barrier (sRange visible): the producer warpgroup leaves early

  if (tiles::warpgroup_index() == 0) {
    tiles::warpgroup_release_registers<Cfg::kProducerRegs>();
    if (threadIdx.x < tiles::kWarpSize) bwd_produce<Cfg>(a, bars, smem, sLse, sDsum, steps, k0, b, T, H);
    return;
  }

  // ---------------------------------------------------------------------------- consumers
  tiles::warpgroup_claim_registers<Cfg::kConsumerRegs>();
  const BwdThread th(k0);
  const int cw = th.cw, wl = th.wl, lane = th.lane;
  const bool dq_issuer = threadIdx.x == tiles::kWarpgroupThreads;  // consumer thread 0 issues the bulk dQ reductions
  const float sl2 = f.scale * kLog2e;
  const KVTile sK{smem + Cfg::kKOffset}, sV{smem + Cfg::kVOffset};
  const DsTile sdS{smem + Cfg::kDsOffset};
  const uint32_t sDq = smem + Cfg::kDqOffset;
  float* sDqf = reinterpret_cast<float*>(smem_gen + Cfg::kDqOffset);

  tiles::AccFragment<D> dk, dv;
  dk.fill(0.f);
  dv.fill(0.f);
  tiles::mbar_wait(tiles::smem_addr(&bars.kv_full), 0);

  // General kind: the score modification of head mod_head (building one costs ~100 instructions
  // per warp: its slope's exp2f, division and loop over H).
  [[maybe_unused]] ScoreMod mod;
  [[maybe_unused]] int mod_head = -1;
  for (int it = 0; it < steps.total; ++it) {
    const auto step = steps[it];
    const int st = step.stage, h = step.h, q0 = step.q0;
    const QTile sQ{smem + Cfg::kQOffset + st * QTile::kBytes};
    const QTile sdO{smem + Cfg::kdOOffset + st * QTile::kBytes};
    const float* sL = sLse + st * BR;
    const float* sDs = sDsum + st * BR;
    tiles::mbar_wait(tiles::smem_addr(&bars.full[st]), step.parity);

    // S^T = K_w Q^T, dP^T = V_w dO^T (64 keys x BR queries each), two commit groups: P^T is
    // computed while dP^T still runs.
    tiles::AccFragment<BR> s, dp;
    issue_s_dp<Cfg>(s, dp, sK, sV, sQ, sdO, th.wg_key0);
    tiles::AFragment<BR> pa, da;
    if constexpr (GENERAL) {
      // Variants, ScoreMod, dropout: P^T and dS^T in one pass (the soft-capping derivative is
      // not kept), so dP^T is waited for first.
      wg_wait<0>();
      s.fence();
      dp.fence();
      // The warp's 16 keys need no per-element mask iff each one is seen by every query row < T of
      // the tile: the ranges are exact and non-decreasing, so the last key's query_lo and the
      // first key's query_hi decide (mask.all_visible of the rectangle, without the mask's state
      // in the consumers' registers; keys >= T have an empty range, so they are masked).
      const int key_lo = th.key_lo;
      const int key_row = key_lo - k0;  // this thread's first key as a row of the block
      const int warp_row = th.warp_key0 - k0;
      const bool need_mask = sRange[warp_row + tiles::kWarpRows - 1].x > q0 || sRange[warp_row].y < min(q0 + BR, T) - 1;
      [[maybe_unused]] const FlashDropout drop(f, b, h);  // DROPOUT only
      constexpr int kElems = BR / 2;                     // this thread's elements of the 64 x BR tile
      uint32_t keep_bits[(kElems + 31) / 32] = {};
      if constexpr (DROPOUT) draw_keep_bits<BR>(keep_bits, drop, q0, key_lo, lane);
      // uniform per tile: one of eight loops (4 ModKinds x masked or not)
      auto probs = [&](auto modk_c, const ScoreMod& score_mod) {
        constexpr int MODK = decltype(modk_c)::value;
        if (need_mask)
          bwd_probs_general<MODK, true, DROPOUT, NQ>(s.v, dp.v, pa.v, da.v, sL, sDs, sRange, key_row, score_mod, q0, key_lo,
                                                     sl2, lane, keep_bits, drop.scale);
        else
          bwd_probs_general<MODK, false, DROPOUT, NQ>(s.v, dp.v, pa.v, da.v, sL, sDs, sRange, key_row, score_mod, q0, key_lo,
                                                      sl2, lane, keep_bits, drop.scale);
      };
      with_mod_kind(mod_kind(f), [&](auto modk_c) {
        if constexpr (decltype(modk_c)::value == kModNone) {
          probs(modk_c, ScoreMod{});
        } else {
          if (h != mod_head) mod = ScoreMod(f, h), mod_head = h;  // once per head, not per query block
          probs(modk_c, mod);
        }
      });
    } else {
      bwd_probs_plain<Cfg, CAUSAL>(s, dp, pa, da, sL, sDs, th, q0, T, sl2);
    }

    // DQ: dS^T -> shared memory (rows = keys; transposed split: dS, rows = queries), once the previous step's dQ GEMMs are done with it
    // (and the dQ tile's bulk read is done: the issuer waits before arriving).
    if constexpr (DQ) {
      if (dq_issuer) bulk_wait_group_read0();
      tiles::named_barrier_sync(kBarDsFree, Cfg::kConsumerThreads);
      store_ds<Cfg>(sdS, da, th);
    }

    // Three commit groups (DQ; else dV and dK), run by the tensor cores in this order:
    //   dV += P^T dO      (A from registers, B = dO as an MN-major operand; under the barrier)
    //   dQ_i part = dS K  (A = dS, the query-major view of dS^T: MN-major; B = K, MN-major;
    //                      transposed split: dQ_i^T part = K^T dS, A = K^T MN-major, B = dS K-major)
    //   dK += dS^T Q      (A from registers; under the dQ part's way out)
    dv.fence();
    dk.fence();
    pa.fence();
    da.fence();
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < BR / tiles::kWgmmaK; ++kk) wgmma_rs<D, 1>(dv.v, pa.v[kk], sdO.mn_major_desc(kk), 1);
    wg_commit();
    dv.fence();
    auto issue_dk = [&] {
#pragma unroll
      for (int kk = 0; kk < BR / tiles::kWgmmaK; ++kk) wgmma_rs<D, 1>(dk.v, da.v[kk], sQ.mn_major_desc(kk), 1);
      wg_commit();
      dk.fence();
    };

    if constexpr (DQ) {
      fence_proxy_async();  // this thread's dS^T stores, visible to wgmma
      tiles::named_barrier_sync(kBarDsReady, Cfg::kConsumerThreads);
      float acc[Cfg::kDqN / 2];
      constexpr DqSplit kSplit = Cfg::kDqSplit;
      issue_dq_part<Cfg>(acc, sdS, sK, cw);
      issue_dk();
      wg_wait<1>();  // dV and the dQ part done; dK may still run
      wg_fence_regs(acc);
      dv.fence();
      pa.fence();

      // dQ_i += part, through the row-major fp32 tile sDqf (BR x D, one bulk reduction).
      float* dq_head = a.dq_accum + ((int64_t)b * H + h) * T * D;
      const int g8 = lane / 4;
      if constexpr (kSplit == DqSplit::kTransposed) {
        stage_dq_transposed<Cfg>(sDqf, acc, th);
      } else {
        // Rotated so that a warp's store reaches 8 banks (stage_dq_rotated): register block j then
        // holds column block (j + g8) mod 8. A barrel shift of the registers, 3 stages of selects (no
        // dynamic register indexing).
        constexpr int NB = Cfg::kDqN / 8;  // 8-column blocks of this consumer's part
        static_assert(NB == 8, "the rotation spreads 8 rows over 8 column blocks");
#pragma unroll
        for (int k = 0; k < 3; ++k) {
          const bool on = (g8 >> k) & 1;
          float rot[Cfg::kDqN / 2];
#pragma unroll
          for (int i = 0; i < NB; ++i)
#pragma unroll
            for (int e = 0; e < 4; ++e) rot[4 * i + e] = on ? acc[4 * ((i + (1 << k)) % NB) + e] : acc[4 * i + e];
#pragma unroll
          for (int i = 0; i < Cfg::kDqN / 2; ++i) acc[i] = rot[i];
        }
        stage_dq_rotated<Cfg>(sDqf, acc, th);
      }
      fence_proxy_async();  // this thread's dQ stores, visible to the bulk copy
      tiles::named_barrier_sync(kBarDqReady, Cfg::kConsumerThreads);
      if (dq_issuer) {
        const int rows = min(BR, T - q0);
        bulk_reduce_add_f32(dq_head + (int64_t)q0 * D, sDq, (uint32_t)(rows * D * 4));
        bulk_commit_group();
      }
    } else {
      issue_dk();
    }
    wg_wait<0>();  // dK done: Q, dO, lse and Dsum of the stage are read
    dk.fence();
    da.fence();
    // Every consumer thread releases the stage after its own reads (lse, Dsum included): an arrive
    // per thread, so the release orders each thread's reads by itself (one lane arriving for its
    // warp after __syncwarp is ordered too, but compute-sanitizer's racecheck does not follow it).
    tiles::mbar_arrive(tiles::smem_addr(&bars.empty[st]));
  }

  // Epilogue: dK * scale, dV -> bf16 through the K / V tiles (rows of this consumer), once both
  // consumers' last dQ GEMMs (which read all of K) are done.
  if (DQ && dq_issuer) bulk_wait_group0();
  tiles::named_barrier_sync(kBarDsFree, Cfg::kConsumerThreads);
  stage_dk_dv<Cfg>(dk, dv, sK, sV, f, th.wg_key0, lane);
  __syncwarp();
  copy_out_dk_dv<Cfg>(sK, sV, p, g, b, k0, th.wg_key0 + wl * tiles::kWarpRows, T, lane);
}

// ============================================================================================
// host
// ============================================================================================
template <int D, MaskKind MK, bool DROPOUT, bool DQ>
static void launch_bwd_sm90(const FlashAttentionBackwardParams& p, const float* dsum, float* dq_acc,
                            cudaStream_t stream) {
  using Cfg = BwdSm90Cfg<D, bwd_query_rows<D, MK>()>;
  const auto& f = p.fwd;
  BwdSm90Args a;
  a.p = p;
  a.dsum = dsum;
  a.dq_accum = DQ ? dq_acc : nullptr;
  a.q = tiles::cached_bf16_head_map(f.q, D, f.T, f.H, f.B, f.q_token_stride, f.q_batch_stride, Cfg::BR);
  a.dO = tiles::cached_bf16_head_map(p.dO, D, f.T, f.H, f.B, p.do_token_stride, p.do_batch_stride, Cfg::BR);
  a.k = tiles::cached_bf16_head_map(f.k, D, f.T, f.Hkv, f.B, f.k_token_stride, f.k_batch_stride, Cfg::BC);
  a.v = tiles::cached_bf16_head_map(f.v, D, f.T, f.Hkv, f.B, f.v_token_stride, f.v_batch_stride, Cfg::BC);
  set_smem_limit_once<flash_bwd_sm90_kernel<D, MK, DROPOUT, DQ>>(Cfg::SMEM);
  // One block per (kv head, batch, key block), in groups of about one wave (BwdBlock).
  a.n_kblocks = (f.T + Cfg::BC - 1) / Cfg::BC;
  const int64_t n_pairs = (int64_t)f.Hkv * f.B, n_blocks = n_pairs * a.n_kblocks;
  ATTN_CHECK(n_blocks < INT32_MAX, "flash attention backward: {} blocks, over 2^31", n_blocks);
  a.pairs_per_group = pairs_per_wave(a.n_kblocks, n_pairs);
  flash_bwd_sm90_kernel<D, MK, DROPOUT, DQ><<<(unsigned)n_blocks, Cfg::kThreads, Cfg::SMEM, stream>>>(a);
  CUDA_CHECK(cudaGetLastError());
}

// The kernel for p (dq_acc null: deterministic, no dQ). Instantiations per head dim: the plain
// kinds in atomic mode (full, causal), the general kind in atomic and deterministic mode, each
// without and with dropout; the deterministic mode of the plain kinds is the general kind with
// every variant off (its dQ pass dominates). 6 per head dim, 12 in all.
template <int D>
static void backward_sm90_d(const FlashAttentionBackwardParams& p, const float* dsum, float* dq_acc,
                            cudaStream_t stream) {
  constexpr MaskKind kG = MaskKind::kGeneral;
  const bool dropout = p.fwd.dropout_p > 0.f;
  if (dq_acc == nullptr)
    dropout ? launch_bwd_sm90<D, kG, true, false>(p, dsum, nullptr, stream)
            : launch_bwd_sm90<D, kG, false, false>(p, dsum, nullptr, stream);
  else if (mask_kind(p.fwd) == MaskKind::kCausal)
    launch_bwd_sm90<D, MaskKind::kCausal, false, true>(p, dsum, dq_acc, stream);
  else if (mask_kind(p.fwd) == MaskKind::kFull)
    launch_bwd_sm90<D, MaskKind::kFull, false, true>(p, dsum, dq_acc, stream);
  else
    dropout ? launch_bwd_sm90<D, kG, true, true>(p, dsum, dq_acc, stream)
            : launch_bwd_sm90<D, kG, false, true>(p, dsum, dq_acc, stream);
}

bool backward_sm90_applies(const FlashAttentionBackwardParams& p) {
  return p.fwd.bf16 && (p.fwd.D == 64 || p.fwd.D == 128);
}

void backward_sm90(const FlashAttentionBackwardParams& p, const float* dsum, float* dq_acc, cudaStream_t stream) {
  ATTN_CHECK(backward_sm90_applies(p) && (dq_acc == nullptr) == p.deterministic,
             "flash attention backward: sm90 kernel does not apply");
  if (p.fwd.D == 64)
    backward_sm90_d<64>(p, dsum, dq_acc, stream);
  else
    backward_sm90_d<128>(p, dsum, dq_acc, stream);
}

}  // namespace attn::flash
