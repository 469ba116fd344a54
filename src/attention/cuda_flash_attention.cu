// attention.impl = "flash": our FlashAttention kernels (kernels/flash_attention*.cu) behind
// the CudaAttention interface. They read q, k, v straight out of the packed qkv buffer and
// write dq, dk, dv straight into dqkv through strides, so nothing is permuted or copied.
// Saved between forward and backward: the row logsumexp, (B, H, T) fp32 — O(T), not O(T^2).
// fp32 activations run the 3xTF32 kernels, device.precision = "tf32" the 1xTF32 ones.
// The variants' arguments (variant_args; token counts from set_token_counts) go straight to the
// kernels, and so does attention dropout (its key, or the device address a captured graph reads it from).
#include <cmath>

#include <fmt/format.h>

#include "attention/cuda_attention.h"
#include "core/error.h"
#include "kernels/flash_attention.h"

namespace attn {

namespace {

class CudaFlashAttention final : public CudaAttention {
 public:
  // The options were checked by the registry (make_cuda_attention).
  // tf32 (device.precision = "tf32", act F32): the fp32 kernels with 1xTF32 products.
  CudaFlashAttention(const AttentionOptions& opts, DType act, bool tf32) : opts_(opts), act_(act), tf32_(tf32) {}

  void set_token_counts(const std::vector<const int32_t*>& counts) override { counts_ = counts; }

  std::string name() const override { return "flash"; }

  size_t saved_bytes(const AttentionShape& s) const override {
    return sizeof(float) * static_cast<size_t>(s.B) * s.n_head * s.T;
  }

  size_t scratch_bytes(const AttentionShape& s) const override {
    return flash_attention_backward_workspace_bytes(backward_params(nullptr, nullptr, nullptr, nullptr, nullptr, s));
  }

  void forward(const void* qkv, void* y, void* saved, void*, const AttentionShape& s, const DropoutState& dropout,
               cudaStream_t stream) override {
    check_document_ids();
    FlashAttentionParams p = forward_params(qkv, y, saved, s);
    set_dropout(p, dropout);
    flash_attention_forward(p, stream);
  }

  void backward(const void* qkv, const void* y, const void* dy, const void* saved, void* dqkv, void* scratch,
                const AttentionShape& s, const DropoutState& dropout, cudaStream_t stream) override {
    check_document_ids();
    FlashAttentionBackwardParams p = backward_params(qkv, y, dy, saved, dqkv, s);
    set_dropout(p.fwd, dropout);
    flash_attention_backward(p, scratch, stream);
  }

 private:
  static void set_dropout(FlashAttentionParams& p, const DropoutState& d) {
    p.dropout_p = d.p;
    p.dropout_key = d.device_key();
  }

  void check_document_ids() const {
    if (counts_.size() != counted_tokens(opts_).size())
      fail("attention: the variants need {} token count arrays but the caller set {} (CudaAttention::set_token_counts)",
           counted_tokens(opts_).size(), counts_.size());
  }

  // qkv (B, T, (H + 2 Hkv) D): q heads at column 0, k heads at H D, v heads at (H + Hkv) D.
  FlashAttentionParams forward_params(const void* qkv, const void* y, const void* lse, const AttentionShape& s) const {
    const size_t es = dtype_size(act_);
    const int64_t QKV = s.qkv_dim(), C = static_cast<int64_t>(s.n_head) * s.head_dim;
    const char* base = static_cast<const char*>(qkv);
    FlashAttentionParams p;
    p.q = base;
    p.k = base ? base + es * static_cast<size_t>(s.n_head) * s.head_dim : nullptr;
    p.v = base ? base + es * static_cast<size_t>(s.n_head + s.n_kv_head) * s.head_dim : nullptr;
    p.o = const_cast<void*>(y);
    p.lse = static_cast<float*>(const_cast<void*>(lse));
    p.B = s.B, p.T = s.T, p.H = s.n_head, p.Hkv = s.n_kv_head, p.D = s.head_dim;
    p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = s.T * QKV;
    p.q_token_stride = p.k_token_stride = p.v_token_stride = QKV;
    p.o_batch_stride = s.T * C;
    p.o_token_stride = C;
    static_cast<VariantArgs&>(p) = variant_args(opts_);  // causal, window, alibi, softcap, ...
    if (!counts_.empty()) attn::set_token_counts(p, opts_, counts_.data());  // doc ids, ...
    p.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    p.bf16 = act_ == DType::BF16;
    p.tf32 = tf32_;
    return p;
  }

  FlashAttentionBackwardParams backward_params(const void* qkv, const void* y, const void* dy, const void* lse,
                                               void* dqkv, const AttentionShape& s) const {
    FlashAttentionBackwardParams b;
    b.fwd = forward_params(qkv, y, lse, s);
    const FlashAttentionParams grads = forward_params(dqkv, dy, nullptr, s);
    b.dO = grads.o;
    b.do_batch_stride = grads.o_batch_stride, b.do_token_stride = grads.o_token_stride;
    b.dq = const_cast<void*>(grads.q), b.dk = const_cast<void*>(grads.k), b.dv = const_cast<void*>(grads.v);
    b.dq_batch_stride = b.dk_batch_stride = b.dv_batch_stride = grads.q_batch_stride;
    b.dq_token_stride = b.dk_token_stride = b.dv_token_stride = grads.q_token_stride;
    b.deterministic = opts_.deterministic;
    return b;
  }

  AttentionOptions opts_;
  DType act_;
  bool tf32_;
  std::vector<const int32_t*> counts_;  // set_token_counts: the current batch's (B, T) token counts
};

}  // namespace

std::unique_ptr<CudaAttention> make_cuda_flash_attention(const AttentionOptions& opts, DType act, bool tf32) {
  ATTN_CHECK(!tf32 || act == DType::F32, "TF32 flash attention needs fp32 activations (got {})", dtype_name(act));
  return std::make_unique<CudaFlashAttention>(opts, act, tf32);
}

}  // namespace attn
