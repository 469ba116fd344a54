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
//
// Causal: the rows are cut into `kCausalBlocks` blocks of R rows, and each GEMM runs once per
// block on the part of the T x T matrices that block can see: query rows [r0, r1) only need
// key columns [0, r1) (S, dPd, Y, dQ), and key columns [k0, k1) are only seen by query rows
// [k0, T) (dV, dK). With 8 blocks the T^2 work and bytes are 9/16 of the full square. Only the
// diagonal blocks hold masked entries, which the softmax kernels write as zeros; what lies
// right of a block's last column is never written nor read.
#include <algorithm>
#include <cmath>

#include "attention/cuda_attention.h"
#include "core/arena_plan.h"
#include "core/cuda_check.h"
#include "core/error.h"
#include "kernels/kernels.h"

namespace attn {

namespace {

// Row-major, batched: C_i = alpha op(A_i) op(B_i) + beta C_i with op(A) (M, K), op(B) (K, N);
// lda/ldb/ldc are row-major leading dimensions (elements between rows of the stored matrix).
// cuBLAS is column-major, so this is C^T = op(B)^T op(A)^T there.
// compute: CUBLAS_COMPUTE_32F, or CUBLAS_COMPUTE_32F_FAST_TF32 in device.precision = "tf32".
void gemm_rm(cublasHandle_t h, cublasComputeType_t compute, bool tA, bool tB, int M, int N, int K, float alpha,
             const void* A, int lda, long long sA, const void* B, int ldb, long long sB, cudaDataType_t ab_type,
             float beta, void* C, int ldc, long long sC, cudaDataType_t c_type, int batch) {
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                          &alpha, B, ab_type, ldb, sB, A, ab_type, lda, sA, &beta, C, c_type, ldc, sC,
                                          batch, compute, CUBLAS_GEMM_DEFAULT));
}

template <typename T>
class NaiveAttention final : public CudaAttention {
 public:
  static constexpr size_t kCublasWorkspace = 4u << 20;

  NaiveAttention(const AttentionOptions& opts, bool tf32)
      : opts_(opts), compute_(tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F) {
    CUBLAS_CHECK(cublasCreate(&handle_));
    // TF32 only where compute_ asks for it (the explicit compute type), never implicitly.
    CUBLAS_CHECK(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));
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
    const RowBlocks blocks = row_blocks(T_);
    // S[r0:r1, 0:r1] = Q[r0:r1] K[0:r1]^T / sqrt(D)
    for (int r0 = 0; r0 < T_; r0 += blocks.rows) {
      const int r1 = blocks.end(r0);
      gemm_rm(handle_, compute_, false, true, r1 - r0, r1, D, scale, at(w.q, r0, D), D, sTD, w.k, D, sTD, kType, 0.0f,
              at(w.S, r0, T_), T_, sTT, kType, BH);
    }
    // P = softmax(S), Pd = drop(P)
    const bool dropout = drop.p > 0.0f;
    const T* Pv = dropout ? w.Pd : P;
    kern::attention_softmax_forward(P, dropout ? w.Pd : static_cast<T*>(nullptr), w.S, BH, T_, blocks.causal_rows(),
                                    drop, stream);
    // Y[r0:r1] = Pd[r0:r1, 0:r1] V[0:r1]
    for (int r0 = 0; r0 < T_; r0 += blocks.rows) {
      const int r1 = blocks.end(r0);
      gemm_rm(handle_, compute_, false, false, r1 - r0, D, r1, 1.0f, at(Pv, r0, T_), T_, sTT, w.v, D, sTD, kType, 0.0f,
              at(w.o, r0, D), D, sTD, kType, BH);
    }
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
    const T* Pv = dropout ? w.Pd : P;
    const RowBlocks blocks = row_blocks(T_);
    for (int r0 = 0; r0 < T_; r0 += blocks.rows) {
      const int r1 = blocks.end(r0), seen_from = blocks.first_row_seeing(r0);
      // dV[r0:r1] = Pd[seen_from:T, r0:r1]^T dY[seen_from:T]   (key block r0:r1)
      gemm_rm(handle_, compute_, true, false, r1 - r0, D, T_ - seen_from, 1.0f, at(Pv, seen_from, T_, r0), T_, sTT,
              at(w.o, seen_from, D), D, sTD, kType, 0.0f, at(w.dv, r0, D), D, sTD, kType, BH);
      // dPd[r0:r1, 0:r1] = dY[r0:r1] V[0:r1]^T (into S)
      gemm_rm(handle_, compute_, false, true, r1 - r0, r1, D, 1.0f, at(w.o, r0, D), D, sTD, w.v, D, sTD, kType, 0.0f,
              at(w.S, r0, T_), T_, sTT, kType, BH);
    }
    // dS = P * (dP - rowsum(dP * P)), into Pd (no longer needed)
    kern::attention_softmax_backward(w.Pd, P, w.S, BH, T_, blocks.causal_rows(), drop, stream);
    for (int r0 = 0; r0 < T_; r0 += blocks.rows) {
      const int r1 = blocks.end(r0), seen_from = blocks.first_row_seeing(r0);
      // dQ[r0:r1] = dS[r0:r1, 0:r1] K[0:r1] / sqrt(D)
      gemm_rm(handle_, compute_, false, false, r1 - r0, D, r1, scale, at(w.Pd, r0, T_), T_, sTT, w.k, D, sTD, kType,
              0.0f, at(w.dq, r0, D), D, sTD, kType, BH);
      // dK[r0:r1] = dS[seen_from:T, r0:r1]^T Q[seen_from:T] / sqrt(D)   (key block r0:r1)
      gemm_rm(handle_, compute_, true, false, r1 - r0, D, T_ - seen_from, scale, at(w.Pd, seen_from, T_, r0), T_, sTT,
              at(w.q, seen_from, D), D, sTD, kType, 0.0f, at(w.dk, r0, D), D, sTD, kType, BH);
    }
    kern::attention_permute_backward(static_cast<T*>(dqkv_), w.dq, w.dk, w.dv, B, T_, H, s.n_kv_head, D, stream);
  }

 private:
  static constexpr cudaDataType_t kType = std::is_same_v<T, float> ? CUDA_R_32F : CUDA_R_16BF;
  static constexpr int kCausalBlocks = 8;

  // The row blocks of the header comment: causal -> ~T/8 rows (a multiple of 16, so the softmax
  // kernels' 16-byte packs never straddle a block's end); full attention -> one block of T.
  struct RowBlocks {
    int seq, rows;
    bool causal;
    int end(int r0) const { return std::min(seq, r0 + rows); }
    // the first query row that sees key column r0 (rows before it are masked there)
    int first_row_seeing(int r0) const { return causal ? r0 : 0; }
    int causal_rows() const { return causal ? rows : 0; }  // for the softmax kernels: 0 = full
  };
  // &m[row][col] of a row-major matrix with leading dimension ld (the first matrix of the batch)
  template <typename E>
  static E* at(E* m, int row, int ld, int col = 0) {
    return m + static_cast<size_t>(row) * ld + col;
  }
  RowBlocks row_blocks(int T_) const {
    if (!opts_.causal) return RowBlocks{T_, T_, false};
    const int rows = ((T_ + kCausalBlocks - 1) / kCausalBlocks + 15) / 16 * 16;
    return RowBlocks{T_, rows, true};
  }

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
  cublasComputeType_t compute_;
  cublasHandle_t handle_ = nullptr;
};

}  // namespace

std::unique_ptr<CudaAttention> make_cuda_naive_attention(const AttentionOptions& opts, DType act, bool tf32) {
  // What it supports (no masks beyond causal, no score modifications) is its registry line.
  ATTN_CHECK(!tf32 || act == DType::F32, "TF32 attention GEMMs need fp32 activations (got {})", dtype_name(act));
  if (act == DType::F32) return std::make_unique<NaiveAttention<float>>(opts, tf32);
  return std::make_unique<NaiveAttention<__nv_bfloat16>>(opts, false);
}

}  // namespace attn
