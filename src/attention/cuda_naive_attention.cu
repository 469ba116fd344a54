// Naive attention on the GPU: the O(T^2) baseline, like PyTorch's "math" backend.
//
// Forward, per (b, h) as strided batched GEMMs over B*H (k, v repeated over GQA groups):
//   q, k, v = permute(qkv) to (B, H, T, D)
//   S = Q K^T / sqrt(D)                          (scratch, in T: bf16 as PyTorch's math backend
//                                                 under autocast, and half the bytes of fp32)
//   P = softmax(causal_mask(S))                  (kept for backward: `saved`, B H T T)
//   Pd = drop(P)                                 (scratch, only with dropout)
//   Y = Pd V,  y = unpermute(Y)
// Backward (Pd recomputed from P and the counter-based mask):
//   dV = Pd^T dY,  dPd = dY V^T,  dP = drop'(dPd),  dS = P * (dP - rowsum(dP * P))
//   dQ = dS K / sqrt(D),  dK = dS^T Q / sqrt(D);  dqkv = permute^-1 (dK, dV summed per group)
#include <cmath>

#include "attention/cuda_attention.h"
#include "backend/cuda_check.h"
#include "backend/cuda_memory.h"
#include "core/error.h"
#include "kernels/kernels.h"

namespace attn {

namespace {

// Row-major, batched: C_i = alpha op(A_i) op(B_i) + beta C_i with op(A) (M, K), op(B) (K, N);
// lda/ldb/ldc are row-major leading dimensions (elements between rows of the stored matrix).
// cuBLAS is column-major, so this is C^T = op(B)^T op(A)^T there.
void gemm_rm(cublasHandle_t h, bool tA, bool tB, int M, int N, int K, float alpha, const void* A, int lda,
             long long sA, const void* B, int ldb, long long sB, cudaDataType_t ab_type, float beta, void* C, int ldc,
             long long sC, cudaDataType_t c_type, int batch) {
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                          &alpha, B, ab_type, ldb, sB, A, ab_type, lda, sA, &beta, C, c_type, ldc, sC,
                                          batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

template <typename T>
class NaiveAttention final : public CudaAttention {
 public:
  static constexpr size_t kCublasWorkspace = 4u << 20;

  explicit NaiveAttention(const AttentionOptions& opts) : opts_(opts) {
    CUBLAS_CHECK(cublasCreate(&handle_));
    CUBLAS_CHECK(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));  // fp32: no TF32
  }
  ~NaiveAttention() override { cublasDestroy(handle_); }

  std::string name() const override { return "naive"; }

  size_t saved_bytes(const AttentionShape& s) const override { return scores(s) * sizeof(T); }
  size_t scratch_bytes(const AttentionShape& s) const override { return layout(s).bytes; }

  void forward(const void* qkv_, void* y_, void* saved, void* scratch, const AttentionShape& s,
               const DropoutState& drop, cudaStream_t stream) override {
    const Scratch w = carve(scratch, s);
    const int B = s.B, T_ = s.T, H = s.n_head, D = s.head_dim, BH = B * H;
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const long long sTD = static_cast<long long>(T_) * D, sTT = static_cast<long long>(T_) * T_;
    T* P = static_cast<T*>(saved);
    bind(w, stream);
    kern::attention_permute(w.q, w.k, w.v, static_cast<const T*>(qkv_), B, T_, H, s.n_kv_head, D, stream);
    // S = Q K^T / sqrt(D)
    gemm_rm(handle_, false, true, T_, T_, D, scale, w.q, D, sTD, w.k, D, sTD, kType, 0.0f, w.S, T_, sTT, kType, BH);
    // P = softmax(S), Pd = drop(P)
    const bool dropout = drop.p > 0.0f;
    kern::attention_softmax_forward(P, dropout ? w.Pd : static_cast<T*>(nullptr), w.S, BH, T_, opts_.causal, drop,
                                    stream);
    // Y = Pd V
    gemm_rm(handle_, false, false, T_, D, T_, 1.0f, dropout ? w.Pd : P, T_, sTT, w.v, D, sTD, kType, 0.0f, w.o, D, sTD,
            kType, BH);
    kern::attention_unpermute(static_cast<T*>(y_), w.o, B, T_, H, D, stream);
  }

  void backward(const void* qkv_, const void* /*y*/, const void* dy_, const void* saved, void* dqkv_, void* scratch,
                const AttentionShape& s, const DropoutState& drop, cudaStream_t stream) override {
    const Scratch w = carve(scratch, s);
    const int B = s.B, T_ = s.T, H = s.n_head, D = s.head_dim, BH = B * H;
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const long long sTD = static_cast<long long>(T_) * D, sTT = static_cast<long long>(T_) * T_;
    const T* P = static_cast<const T*>(saved);
    bind(w, stream);
    kern::attention_permute(w.q, w.k, w.v, static_cast<const T*>(qkv_), B, T_, H, s.n_kv_head, D, stream);
    kern::attention_split_heads(w.o, static_cast<const T*>(dy_), B, T_, H, D, stream);  // dY
    const bool dropout = drop.p > 0.0f;
    if (dropout) kern::dropout_apply(w.Pd, P, static_cast<size_t>(BH) * sTT, drop, stream);
    // dV = Pd^T dY
    gemm_rm(handle_, true, false, T_, D, T_, 1.0f, dropout ? w.Pd : P, T_, sTT, w.o, D, sTD, kType, 0.0f, w.dv, D, sTD,
            kType, BH);
    // dPd = dY V^T (into S)
    gemm_rm(handle_, false, true, T_, T_, D, 1.0f, w.o, D, sTD, w.v, D, sTD, kType, 0.0f, w.S, T_, sTT, kType, BH);
    // dS = P * (dP - rowsum(dP * P)), into Pd (no longer needed)
    kern::attention_softmax_backward(w.Pd, P, w.S, BH, T_, opts_.causal, drop, stream);
    // dQ = dS K / sqrt(D),  dK = dS^T Q / sqrt(D)
    gemm_rm(handle_, false, false, T_, D, T_, scale, w.Pd, T_, sTT, w.k, D, sTD, kType, 0.0f, w.dq, D, sTD, kType, BH);
    gemm_rm(handle_, true, false, T_, D, T_, scale, w.Pd, T_, sTT, w.q, D, sTD, kType, 0.0f, w.dk, D, sTD, kType, BH);
    kern::attention_permute_backward(static_cast<T*>(dqkv_), w.dq, w.dk, w.dv, B, T_, H, s.n_kv_head, D, stream);
  }

 private:
  static constexpr cudaDataType_t kType = std::is_same_v<T, float> ? CUDA_R_32F : CUDA_R_16BF;

  struct Scratch {
    void* ws;
    T *q, *k, *v, *o, *dq, *dk, *dv;  // (B, H, T, D); o = Y in forward, dY in backward
    T* S;                             // (B, H, T, T) scores, then dPd
    T* Pd;                            // (B, H, T, T) dropped probabilities, then dS
  };
  struct Layout {
    size_t ws, q, k, v, o, dq, dk, dv, S, Pd, bytes;
  };

  static size_t scores(const AttentionShape& s) { return static_cast<size_t>(s.B) * s.n_head * s.T * s.T; }

  static Layout layout(const AttentionShape& s) {
    const size_t heads = static_cast<size_t>(s.B) * s.n_head * s.T * s.head_dim * sizeof(T);
    ArenaPlan plan;
    Layout l;
    l.ws = plan.add(kCublasWorkspace);
    l.q = plan.add(heads), l.k = plan.add(heads), l.v = plan.add(heads), l.o = plan.add(heads);
    l.dq = plan.add(heads), l.dk = plan.add(heads), l.dv = plan.add(heads);
    l.S = plan.add(scores(s) * sizeof(T));
    l.Pd = plan.add(scores(s) * sizeof(T));
    l.bytes = plan.bytes();
    return l;
  }

  static Scratch carve(void* scratch, const AttentionShape& s) {
    char* base = static_cast<char*>(scratch);
    const Layout l = layout(s);
    auto t = [&](size_t off) { return reinterpret_cast<T*>(base + off); };
    return Scratch{base + l.ws, t(l.q), t(l.k), t(l.v), t(l.o), t(l.dq), t(l.dk), t(l.dv), t(l.S), t(l.Pd)};
  }

  void bind(const Scratch& w, cudaStream_t stream) {
    CUBLAS_CHECK(cublasSetStream(handle_, stream));
    CUBLAS_CHECK(cublasSetWorkspace(handle_, w.ws, kCublasWorkspace));
  }

  AttentionOptions opts_;
  cublasHandle_t handle_ = nullptr;
};

}  // namespace

std::unique_ptr<CudaAttention> make_cuda_naive_attention(const AttentionOptions& opts, DType act) {
  // What it supports (no masks beyond causal, no score modifications) is its registry line.
  if (act == DType::F32) return std::make_unique<NaiveAttention<float>>(opts);
  return std::make_unique<NaiveAttention<__nv_bfloat16>>(opts);
}

}  // namespace attn
