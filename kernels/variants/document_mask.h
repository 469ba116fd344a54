// Document mask: no attention across end-of-text boundaries (`attention.document_mask`).
// doc(t) = number of eot tokens among inputs[b, 0..t-1] of the row (TokenCounts of eot_token,
// non-decreasing), and i sees j only if doc(i) == doc(j): a document is a contiguous run, so
// its keys are [first t with doc >= doc(i), first t with doc >= doc(i) + 1) - an interval.
#pragma once
#include "kernels/variants/variant_base.h"

namespace attn {

struct DocumentMask : VariantDefaults {
  struct Options {
    bool document_mask = false;
    int eot_token = -1;  // the end-of-text id (set from the tokenizer by the trainer)
  };
  struct Args {
    const int32_t* doc_ids = nullptr;  // (B, T) counts of eot_token on the device (or host), or null
  };
  static constexpr const char* kKey = "attention.document_mask";
  static constexpr unsigned kNeeds = kNeedsMask;
  template <class O> static bool on(const O& o) { return o.document_mask; }
  template <class O> static std::string value(const O& o) { return o.document_mask ? "true" : "false"; }
  template <class O> static void set_args(const O&, Args&) {}  // doc_ids: counted_token below
  // The token whose per-row counts this piece reads (-1: none), and where they go.
  template <class O> static int counted_token(const O& o) { return o.document_mask ? o.eot_token : -1; }
  static void set_counts(Args& a, const int32_t* counts) { a.doc_ids = counts; }
  ATTN_HD static bool active(const Args& a) { return a.doc_ids != nullptr; }

  TokenCounts doc;
  ATTN_HD DocumentMask(const Args& a, int b, int T) : doc{a.doc_ids ? a.doc_ids + (int64_t)b * T : nullptr, T} {}
  ATTN_HD int first(int i) const { return doc.count ? doc.first_at_least(doc.at(i)) : 0; }
  ATTN_HD int last(int i) const { return doc.count ? doc.first_at_least(doc.at(i) + 1) - 1 : INT_MAX; }
  ATTN_HD int key_lo(int i) const { return first(i); }
  ATTN_HD int key_hi(int i) const { return last(i); }
  ATTN_HD int query_lo(int j) const { return first(j); }
  ATTN_HD int query_hi(int j) const { return last(j); }
  ATTN_HD bool all_visible(int qf, int ql, int kf, int kl) const {
    if (!doc.count) return true;
    const int a = vmin(vmin(qf, kf), doc.T - 1), z = vmin(vmax(ql, kl), doc.T - 1);
    return doc.at(a) == doc.at(z);
  }
};

}  // namespace attn
