// Prefix-LM (T5, PaLM, multimodal prefixes): row b has a prefix [0, P_b), attended
// bidirectionally; after it attention is causal:
//   visible(i, j) = j <= i || (i < P_b && j < P_b)  =  j <= max(i, P_b - 1)
// Keys: `attention.prefix_lm = true` (with attention.causal = true), and P_b either
//   - fixed: `attention.prefix_len = n` (>= 1): P_b = min(n, T); or
//   - from the data: `data.prefix_token = s` (a token id): the prefix of a row ends with its
//     first s, inclusive (P_b = 1 + the position of the first s); a row without s is all prefix
//     (P_b = T). That is the first t whose count of s among inputs[b, 0..t-1] is >= 1
//     (TokenCounts of s, the same counts as document ids).
// Cached generation runs it (kDecode): every decoded position is past the prefix when each
// prompt holds its whole prefix (prefix_len <= the prompt's length, or s inside the prompt);
// prefill computes the prompt with this mask. The training loss is unchanged: positions inside
// the prefix see their own targets (mask those targets if that matters to the experiment).
#pragma once
#include "kernels/variants/variant_base.h"

namespace attn {

struct PrefixLM : VariantDefaults {
  struct Options {
    bool prefix_lm = false;
    int prefix_len = 0;     // fixed prefix length (0: from data.prefix_token)
    int prefix_token = -1;  // data.prefix_token: the separator id (-1: fixed prefix_len)
  };
  struct Args {
    bool prefix_lm = false;
    int prefix_len = 0;
    const int32_t* prefix_counts = nullptr;  // (B, T) counts of prefix_token, or null
  };
  static constexpr const char* kKey = "attention.prefix_lm";
  static constexpr unsigned kNeeds = kNeedsMask;
  static constexpr bool kDecode = true;
  static constexpr bool kReplacesCausal = true;
  template <class O> static bool on(const O& o) { return o.prefix_lm; }
  template <class O> static std::string value(const O& o) { return o.prefix_lm ? "true" : "false"; }
  template <class O> static std::string invalid(const O& o) {
    if (o.prefix_len < 0) return "needs attention.prefix_len >= 0";
    if (!o.prefix_lm) return o.prefix_len > 0 || o.prefix_token >= 0 ? "= false, but attention.prefix_len or data.prefix_token is set" : "";
    if (!o.causal) return "needs attention.causal = true (causal after the prefix)";
    if ((o.prefix_len > 0) == (o.prefix_token >= 0))
      return "= true needs exactly one of attention.prefix_len > 0 (fixed) or data.prefix_token >= 0 (from the data)";
    return "";
  }
  template <class O> static void set_args(const O& o, Args& a) { a.prefix_lm = o.prefix_lm, a.prefix_len = o.prefix_len; }
  template <class O> static int counted_token(const O& o) { return o.prefix_lm ? o.prefix_token : -1; }
  static void set_counts(Args& a, const int32_t* counts) { a.prefix_counts = counts; }
  ATTN_HD static bool active(const Args& a) { return a.prefix_lm; }

  bool on_;
  int P;  // this row's prefix length
  ATTN_HD PrefixLM(const Args& a, int b, int T)
      : on_(a.prefix_lm),
        P(!a.prefix_lm ? 0
          : a.prefix_counts ? TokenCounts{a.prefix_counts + (int64_t)b * T, T}.first_at_least(1)
                            : vmin(a.prefix_len, T)) {}
  ATTN_HD int key_lo(int) const { return 0; }
  ATTN_HD int key_hi(int i) const { return on_ ? vmax(i, P - 1) : INT_MAX; }
  ATTN_HD int query_lo(int j) const { return on_ && j >= P ? j : 0; }
  ATTN_HD int query_hi(int) const { return INT_MAX; }
  ATTN_HD bool all_visible(int qf, int, int, int kl) const { return !on_ || kl <= vmax(qf, P - 1); }
};

}  // namespace attn
