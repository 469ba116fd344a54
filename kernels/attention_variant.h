// Attention variants as small pieces (FlexAttention's design), and the list of them.
//
// A variant is one struct (kernels/variants/*.h). It states, once, for the host and the device:
//   - its config: `Options` (fields joined into AttentionOptions, so `[attention]` keys bind to
//     them) and the static host functions `on`, `value` (as shown in messages), `invalid` ("" or
//     the problem, with the key), `set_args` (options -> kernel arguments);
//   - its kernel arguments: `Args` (joined into VariantArgs, so into FlashAttentionParams);
//   - what an implementation must support to run it: `kNeeds` (kNeedsMask: an interval mask;
//     kNeedsScoreMod: a score modification); `kDecode`: cached generation runs it too (every
//     query of a decode step is past whatever the variant opens, so it sees every cached key);
//     `kReplacesCausal`: it states the causal rule itself (the Causal piece is then off);
//   - its mask, built per batch row (Args, b, T), all __host__ __device__:
//       key_lo(i), key_hi(i):     row i (< T) sees exactly the keys j with key_lo <= j <= key_hi
//       query_lo(j), query_hi(j): key j (< T) is seen by exactly the queries in that range
//       all_visible(qf, ql, kf, kl): every (i, j) of the rectangle is visible (uniform)
//     Both bounds must be non-decreasing in i (and j), so a block of rows [qf, ql] sees keys in
//     [key_lo(qf), key_hi(ql)] and the kernels skip every tile outside (the tile-range rule).
//     Score-only pieces derive from NoMask. Score modifications are functions of the piece
//     (variants/alibi.h, variants/softcap.h), used by the CPU reference and the kernels alike.
// The element mask visible(b, h, i, j) = key_lo(i) <= j <= key_hi(i) of the intersection of all
// pieces (VariantMask below): every mask is an interval per row and per column, which is what
// lets the bf16 kernels mask a tile with two compares per element.
//
// Adding a variant: its struct in kernels/variants/, one line in `AttentionVariants` below,
// and its config keys in src/config/config.cpp (docs/ARCHITECTURE.md, "How to add a variant").
// src/attention/registry.cpp derives validation and per-implementation support from the list.
#pragma once
#include <vector>

#include "kernels/variants/variant_base.h"

#include "kernels/variants/alibi.h"
#include "kernels/variants/causal.h"
#include "kernels/variants/document_mask.h"
#include "kernels/variants/prefix_lm.h"
#include "kernels/variants/sliding_window.h"
#include "kernels/variants/softcap.h"

namespace attn {

template <class... V>
struct VariantList {};

// ---- The variant registry: every variant, once. -------------------------------------------
using AttentionVariants = VariantList<Causal, SlidingWindow, DocumentMask, Alibi, Softcap, PrefixLM>;
// ---------------------------------------------------------------------------------------------

template <class L>
struct JoinedOptions;
template <class... V>
struct JoinedOptions<VariantList<V...>> : V::Options... {};
template <class L>
struct JoinedArgs;
template <class... V>
struct JoinedArgs<VariantList<V...>> : V::Args... {};

// Every variant's config fields (a base of AttentionOptions) and kernel arguments (a base of
// FlashAttentionParams).
using VariantOptions = JoinedOptions<AttentionVariants>;
using VariantArgs = JoinedArgs<AttentionVariants>;

// Calls f.template operator()<V>() for each variant V, in list order (host code).
template <class F, class... V>
void for_each_variant_in(VariantList<V...>, F&& f) {
  (f.template operator()<V>(), ...);
}
template <class F>
void for_each_variant(F&& f) {
  for_each_variant_in(AttentionVariants{}, f);
}

// The kernel arguments of a set of options: each variant's set_args, then the Causal piece off
// when a variant that is on states the causal rule itself.
template <class O>
VariantArgs variant_args(const O& opts) {
  VariantArgs a;
  bool replaced = false;
  for_each_variant([&]<class V>() {
    V::set_args(opts, a);
    replaced |= V::kReplacesCausal && V::on(opts);
  });
  if (replaced) a.causal = false;
  return a;
}

// The tokens whose per-row counts (TokenCounts) the variants that are on read, in list order;
// set_token_counts hands each its (B, T) counts array, counts[k] for counted_tokens(o)[k].
template <class O>
std::vector<int> counted_tokens(const O& o) {
  std::vector<int> tokens;
  for_each_variant([&]<class V>() {
    if constexpr (requires { V::counted_token(o); })
      if (V::counted_token(o) >= 0) tokens.push_back(V::counted_token(o));
  });
  return tokens;
}
template <class O>
void set_token_counts(VariantArgs& a, const O& o, const int32_t* const* counts) {
  size_t k = 0;
  for_each_variant([&]<class V>() {
    if constexpr (requires { V::counted_token(o); })
      if (V::counted_token(o) >= 0) V::set_counts(a, counts[k++]);
  });
}

// Whether any variant needs the general kernels (plain causal / full attention does not).
inline bool any_variant_active(const VariantArgs& a) {
  bool on = false;
  for_each_variant([&]<class V>() { on |= V::active(a); });
  return on;
}

// The intersection of every piece's mask for batch row b, clipped to [0, T).
template <class L>
struct MaskOf;
template <>
struct MaskOf<VariantList<>> : NoMask {
  ATTN_HD MaskOf(const VariantArgs&, int, int) {}
};
template <class V, class... R>
struct MaskOf<VariantList<V, R...>> {
  V head;
  MaskOf<VariantList<R...>> tail;
  ATTN_HD MaskOf(const VariantArgs& a, int b, int T) : head(a, b, T), tail(a, b, T) {}
  ATTN_HD int key_lo(int i) const { return vmax(head.key_lo(i), tail.key_lo(i)); }
  ATTN_HD int key_hi(int i) const { return vmin(head.key_hi(i), tail.key_hi(i)); }
  ATTN_HD int query_lo(int j) const { return vmax(head.query_lo(j), tail.query_lo(j)); }
  ATTN_HD int query_hi(int j) const { return vmin(head.query_hi(j), tail.query_hi(j)); }
  ATTN_HD bool all_visible(int qf, int ql, int kf, int kl) const {
    return head.all_visible(qf, ql, kf, kl) && tail.all_visible(qf, ql, kf, kl);
  }
};

struct VariantMask {
  MaskOf<AttentionVariants> m;
  int T;
  ATTN_HD VariantMask(const VariantArgs& a, int b, int T_) : m(a, b, T_), T(T_) {}
  // Row i (< T) sees exactly the keys [key_lo(i), key_hi(i)]; key j (< T) is seen by exactly the
  // queries [query_lo(j), query_hi(j)]; both non-decreasing (the tile-range rule).
  ATTN_HD int key_lo(int i) const { return vmax(0, m.key_lo(i)); }
  ATTN_HD int key_hi(int i) const { return vmin(T - 1, m.key_hi(i)); }
  ATTN_HD int query_lo(int j) const { return vmax(0, m.query_lo(j)); }
  ATTN_HD int query_hi(int j) const { return vmin(T - 1, m.query_hi(j)); }
  // Every (i, j) of [qf, ql] x [kf, kl] visible, ignoring T (callers test i, j < T).
  ATTN_HD bool all_visible(int qf, int ql, int kf, int kl) const { return m.all_visible(qf, ql, kf, kl); }
  ATTN_HD bool visible(int i, int j) const { return j >= key_lo(i) && j <= key_hi(i); }
};

}  // namespace attn
