#include "backend/cuda_matmul.h"

#include <algorithm>
#include <cstdint>
#include <iterator>

#include "core/cuda_check.h"
#include "core/error.h"
#include "kernels/kernels.h"

namespace attn {

namespace {

// Largest power of two (<= 256) dividing the address: what the algorithm may assume.
int alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int al = 256;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

cudaDataType_t cuda_type(DType t) { return t == DType::F32 ? CUDA_R_32F : CUDA_R_16BF; }
using bf16 = __nv_bfloat16;

}  // namespace

// One cuBLASLt call, column-major: D (m, n) = op(A) op(B), op(A) (m, k), op(B) (k, n).
struct CudaMatmul::Call {
  bool transA = false, transB = false;
  int m = 0, n = 0, k = 0;
  int lda = 0, ldb = 0, ldd = 0;
  cudaDataType_t a_type = CUDA_R_32F, b_type = CUDA_R_32F, d_type = CUDA_R_32F;
  const float* a_scale = nullptr;  // fp8 operands: the factor cuBLASLt multiplies op(A) op(B) by
  const float* b_scale = nullptr;  // (device fp32, A_SCALE_POINTER / B_SCALE_POINTER)
  bool fast_accum = false;         // fp8: FAST_ACCUM (no periodic fp32 promotion of the sums)
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* A = nullptr;
  const void* B = nullptr;
  void* D = nullptr;
  float beta = 0.0f;           // D = op(A) op(B) + beta D
  const void* bias = nullptr;  // bias (BIAS) or bias-gradient output (BGRADB)
  const void* aux = nullptr;   // GELU input (GELU_AUX_BIAS writes it, DGELU reads it)
  int64_t aux_ld = 0;
  int batch = 1;  // strided batch: A, B, D of batch i at i stride_a, i stride_b, i stride_d elements
  int64_t stride_a = 0, stride_b = 0, stride_d = 0;
};

CudaMatmul::CudaMatmul(DType act, Epilogues epilogues, void* workspace, cudaStream_t stream, size_t workspace_bytes,
                       bool tf32, bool autotune)
    : act_(act),
      compute_(tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F),
      epilogues_(epilogues),
      fuse_gelu_(epilogues == Epilogues::All),
      fuse_bias_(epilogues != Epilogues::None),
      workspace_(workspace),
      workspace_bytes_(workspace_bytes),
      stream_(stream),
      autotune_(autotune) {
  ATTN_CHECK(!tf32 || act == DType::F32, "TF32 matmuls need fp32 operands (got {})", dtype_name(act));
  CUBLAS_CHECK(cublasLtCreate(&lt_));
}

CudaMatmul::~CudaMatmul() {
  if (lt_) cublasLtDestroy(lt_);
}

void CudaMatmul::note_fallback(const std::string& what) {
  if (std::find(fallbacks_.begin(), fallbacks_.end(), what) == fallbacks_.end()) fallbacks_.push_back(what);
}

bool CudaMatmul::lt_matmul(const Call& c) {
  const Key key{c.transA, c.transB, c.m, c.n, c.k, c.lda, c.ldb, c.ldd, static_cast<int>(c.a_type) * 64 + static_cast<int>(c.b_type),
                static_cast<int>(c.d_type), static_cast<int>(c.epilogue), (c.beta != 0.0f) + 2 * c.fast_accum, alignment_of(c.A),
                alignment_of(c.B), alignment_of(c.D), static_cast<int>(c.aux_ld), c.batch, static_cast<int>(c.stride_a),
                static_cast<int>(c.stride_b), static_cast<int>(c.stride_d)};

  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, compute_, CUDA_R_32F));
  const cublasOperation_t opA = c.transA ? CUBLAS_OP_T : CUBLAS_OP_N, opB = c.transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &c.epilogue, sizeof(c.epilogue)));
  if (c.bias)
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &c.bias, sizeof(c.bias)));
  if (c.aux) {
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &c.aux, sizeof(c.aux)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &c.aux_ld, sizeof(c.aux_ld)));
  }
  if (c.fast_accum) {
    const int8_t fast = 1;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof(fast)));
  }
  if (c.a_scale)
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &c.a_scale, sizeof(c.a_scale)));
  if (c.b_scale)
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &c.b_scale, sizeof(c.b_scale)));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, c.a_type, c.transA ? c.k : c.m, c.transA ? c.m : c.k, c.lda));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, c.b_type, c.transB ? c.n : c.k, c.transB ? c.k : c.n, c.ldb));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, c.d_type, c.m, c.n, c.ldd));
  if (c.batch > 1) {
    const std::pair<cublasLtMatrixLayout_t, int64_t> strided[] = {{la, c.stride_a}, {lb, c.stride_b}, {ld, c.stride_d}};
    for (const auto& [layout, stride] : strided) {
      CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &c.batch, sizeof(c.batch)));
      CUBLAS_CHECK(
          cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
    }
  }

  auto it = cache_.find(key);
  if (it == cache_.end()) it = cache_.emplace(key, choose_algorithm(c, desc, la, lb, ld)).first;
  if (it->second.ok) {
    const float alpha = 1.0f;
    const cublasStatus_t st = cublasLtMatmul(lt_, desc, &alpha, c.A, la, c.B, lb, &c.beta, c.D, ld, c.D, ld,
                                             &it->second.algo, workspace_, workspace_bytes_, stream_);
    // The heuristic's algorithm can still be refused when run (fp8 kernels check more at run
    // time): then the shape has no algorithm here, as if the heuristic had found none, and the
    // caller falls back or names the shape. Any other failure is an error.
    if (st == CUBLAS_STATUS_NOT_SUPPORTED) {
      (void)cudaGetLastError();
      it->second.ok = false;
    } else {
      CUBLAS_CHECK(st);
    }
  }
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(ld);
  cublasLtMatmulDescDestroy(desc);
  return it->second.ok;
}

CudaMatmul::Cached CudaMatmul::choose_algorithm(const Call& c, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t la,
                                                cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t ld) {
  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = workspace_bytes_;
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  const uint32_t al_a = alignment_of(c.A), al_b = alignment_of(c.B), al_d = alignment_of(c.D);
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof(al_d)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof(al_d)));
  cublasLtMatmulHeuristicResult_t results[kAutotuneCandidates] = {};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(lt_, desc, la, lb, ld, ld, pref, kAutotuneCandidates, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  Cached entry;
  entry.ok = st == CUBLAS_STATUS_SUCCESS && found > 0;
  if (!entry.ok) return entry;
  entry.algo = results[0].algo;

  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream_, &capturing));
  const size_t out_bytes = static_cast<size_t>(c.ldd) * c.n * (c.d_type == CUDA_R_32F ? 4 : 2);  // (D: fp32 or bf16)
  const bool accumulates = c.beta != 0.0f;
  if (!autotune_ || capturing != cudaStreamCaptureStatusNone || (accumulates && out_bytes > kAutotuneMaxOutput))
    return entry;
  cublasLtMatmulAlgo_t candidates[kAutotuneCandidates + kSplitKCandidates];
  int n_candidates = 0;
  for (int i = 0; i < found; ++i) candidates[n_candidates++] = results[i].algo;
  n_candidates += add_split_k_candidates(c, desc, la, lb, ld, results[0].algo, candidates + n_candidates);
  if (n_candidates < 2) return entry;
  // Every candidate runs on the real operands. Outputs that are overwritten (D, the GELU input
  // of GELU_AUX, the bias gradient of BGRADB) end as one run leaves them; an accumulating D
  // (beta != 0: the weight gradients) is saved first and put back after the timing.
  void* saved = nullptr;
  if (accumulates) {
    CUDA_CHECK(cudaMallocAsync(&saved, out_bytes, stream_));
    CUDA_CHECK(cudaMemcpyAsync(saved, c.D, out_bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  const float first_ms = time_algorithm(c, desc, la, lb, ld, candidates[0]);
  float best_ms = first_ms;
  int best = 0;
  for (int i = 1; i < n_candidates; ++i) {
    const float ms = time_algorithm(c, desc, la, lb, ld, candidates[i]);
    if (ms < best_ms) best_ms = ms, best = i;
  }
  // (a first pick that refused to run (1e30) loses to any candidate that ran)
  if (best != 0 && (best_ms <= kAutotuneMargin * first_ms || first_ms >= kRefusedMs)) {
    entry.algo = candidates[best];
    ++autotune_changes_;
  }
  ++autotuned_shapes_;
  if (accumulates) {
    CUDA_CHECK(cudaMemcpyAsync(c.D, saved, out_bytes, cudaMemcpyDeviceToDevice, stream_));
    CUDA_CHECK(cudaFreeAsync(saved, stream_));
  }
  return entry;
}

// Split-K versions of the heuristic's first pick, for the shapes whose K dwarfs the output (the
// weight gradients: K = the batch's tokens): k split into 2..8 parts that run side by side,
// reduced in a fixed order (in place with counters, or in fp32 in the workspace), so a split
// choice is as deterministic as the unsplit one. Only those cuBLASLt accepts for this call and
// whose workspace fits are added.
int CudaMatmul::add_split_k_candidates(const Call& c, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t la,
                                       cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t ld,
                                       const cublasLtMatmulAlgo_t& base, cublasLtMatmulAlgo_t* out) const {
  int added = 0;
  if (c.k < 2 * std::max(c.m, c.n)) return added;
  static constexpr uint32_t kSchemes[] = {CUBLASLT_REDUCTION_SCHEME_INPLACE, CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE};
  static constexpr int32_t kSplits[] = {2, 3, 4, 6, 8};
  static_assert(std::size(kSchemes) * std::size(kSplits) <= kSplitKCandidates);
  for (const uint32_t scheme : kSchemes)
    for (const int32_t splits : kSplits) {
      cublasLtMatmulAlgo_t algo = base;
      if (cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof(splits)) !=
              CUBLAS_STATUS_SUCCESS ||
          cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme, sizeof(scheme)) !=
              CUBLAS_STATUS_SUCCESS)
        continue;
      cublasLtMatmulHeuristicResult_t check{};
      if (cublasLtMatmulAlgoCheck(lt_, desc, la, lb, ld, ld, &algo, &check) == CUBLAS_STATUS_SUCCESS &&
          check.workspaceSize <= workspace_bytes_)
        out[added++] = algo;
    }
  return added;
}

// One untimed run (caches, clocks), then the best of three timed runs, in ms (kRefusedMs: refused).
float CudaMatmul::time_algorithm(const Call& c, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t la,
                                 cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t ld, const cublasLtMatmulAlgo_t& algo) {
  const float alpha = 1.0f;
  cudaEvent_t start = nullptr, stop = nullptr;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  float best = kRefusedMs;
  for (int rep = 0; rep < 4; ++rep) {
    CUDA_CHECK(cudaEventRecord(start, stream_));
    const cublasStatus_t st = cublasLtMatmul(lt_, desc, &alpha, c.A, la, c.B, lb, &c.beta, c.D, ld, c.D, ld, &algo,
                                             workspace_, workspace_bytes_, stream_);
    CUDA_CHECK(cudaEventRecord(stop, stream_));
    CUDA_CHECK(cudaEventSynchronize(stop));
    if (st != CUBLAS_STATUS_SUCCESS) {  // a candidate that refuses these operands is not chosen, and
      (void)cudaGetLastError();         // a launch it refused must not surface in a later check
      break;
    }
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (rep > 0) best = std::min(best, ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return best;
}

// The forward epilogue cascade of forward() and fp8_matmul(): out (rows, cols) = c's product
// + bias, and with pre_gelu, pre_gelu = that and out = GELU(pre_gelu). Tries GELU_AUX(_BIAS),
// then BIAS, then the plain matmul with our bias and GELU kernels; each fallback is noted once.
// `c` holds all but D and the epilogue. False when cuBLASLt has no algorithm even without one.
bool CudaMatmul::matmul_bias_gelu(Call c, void* out, DType out_type, int rows, int cols, const void* bias,
                                  void* pre_gelu, const char* tag) {
  if (pre_gelu && fuse_gelu_) {
    Call g = c;
    g.D = out;
    g.epilogue = bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
    g.bias = bias;
    g.aux = pre_gelu, g.aux_ld = cols;
    if (lt_matmul(g)) return true;
    note_fallback(std::string(tag) + "GELU_AUX_BIAS");
  }
  void* target = pre_gelu ? pre_gelu : out;
  c.D = target;
  bool done = false;
  if (bias && fuse_bias_) {
    c.epilogue = CUBLASLT_EPILOGUE_BIAS, c.bias = bias;
    done = lt_matmul(c);
    if (!done) note_fallback(std::string(tag) + "BIAS");
    c.epilogue = CUBLASLT_EPILOGUE_DEFAULT, c.bias = nullptr;
  }
  if (!done) {
    if (!lt_matmul(c)) return false;
    if (bias) {
      if (out_type == DType::F32) kern::bias_add(static_cast<float*>(target), static_cast<const float*>(bias), rows, cols, stream_);
      else kern::bias_add(static_cast<bf16*>(target), static_cast<const bf16*>(bias), rows, cols, stream_);
    }
  }
  if (pre_gelu) {
    const size_t n = static_cast<size_t>(rows) * cols;
    if (out_type == DType::F32) kern::gelu_forward(static_cast<float*>(out), static_cast<const float*>(pre_gelu), n, stream_);
    else kern::gelu_forward(static_cast<bf16*>(out), static_cast<const bf16*>(pre_gelu), n, stream_);
  }
  return true;
}

// Row-major out (N, OC) = inp (N, IC) W^T is column-major out^T (OC, N) = W (OC, IC) inp^T:
// A = W stored column-major (IC, OC), transposed; B = inp stored (IC, N).
void CudaMatmul::forward(void* out, const void* inp, const void* weight, const void* bias, int N, int IC, int OC,
                         void* pre_gelu) {
  Call c;
  c.transA = true;
  c.m = OC, c.n = N, c.k = IC;
  c.lda = IC, c.ldb = IC, c.ldd = OC;
  c.a_type = c.b_type = c.d_type = cuda_type(act_);
  c.A = weight, c.B = inp;
  if (!matmul_bias_gelu(c, out, act_, N, OC, bias, pre_gelu, ""))
    fail("cuBLASLt has no matmul algorithm for ({} x {}) @ ({} x {})^T", N, IC, OC, IC);
}

// forward()'s product split over K for a reduction the caller fuses: partials[s] (N, OC, fp32) =
// inp[:, s k : (s + 1) k] W[:, s k : (s + 1) k]^T with k = IC / splits, one strided-batched call
// (batch s: A and B advanced by s k elements, D by N OC).
void CudaMatmul::forward_split_k_partials(float* partials, const void* inp, const void* weight, int N, int IC, int OC,
                                          int splits) {
  ATTN_CHECK(split_k_cuts(IC, splits),
             "split-K partials: IC = {} must split into {} parts of a multiple of 8", IC, splits);
  Call c;
  c.transA = true;
  c.m = OC, c.n = N, c.k = IC / splits;
  c.lda = IC, c.ldb = IC, c.ldd = OC;
  c.a_type = c.b_type = cuda_type(act_), c.d_type = CUDA_R_32F;
  c.A = weight, c.B = inp, c.D = partials;
  c.batch = splits, c.stride_a = c.k, c.stride_b = c.k, c.stride_d = static_cast<int64_t>(N) * OC;
  if (!lt_matmul(c))
    fail("cuBLASLt has no matmul algorithm for ({} x {}) @ ({} x {})^T in {} fp32 partials", N, IC, OC, IC, splits);
}

// Row-major dinp (N, IC) = dout (N, OC) W (OC, IC) is column-major dinp^T (IC, N) =
// W^T (IC, OC) dout^T (OC, N): A = W stored (IC, OC), not transposed; B = dout stored (OC, N).
void CudaMatmul::backward_input(void* dinp, const void* dout, const void* weight, int N, int IC, int OC,
                                const void* pre_gelu) {
  Call c;
  c.m = IC, c.n = N, c.k = OC;
  c.lda = IC, c.ldb = OC, c.ldd = IC;
  c.a_type = c.b_type = c.d_type = cuda_type(act_);
  c.A = weight, c.B = dout, c.D = dinp;
  if (pre_gelu && fuse_gelu_) {
    Call g = c;
    g.epilogue = CUBLASLT_EPILOGUE_DGELU;
    g.aux = pre_gelu, g.aux_ld = IC;
    if (lt_matmul(g)) return;
    note_fallback("DGELU");
  }
  if (!lt_matmul(c)) fail("cuBLASLt has no matmul algorithm for ({} x {}) @ ({} x {})", N, OC, OC, IC);
  if (pre_gelu) {
    const size_t n = static_cast<size_t>(N) * IC;
    if (act_ == DType::F32)
      kern::gelu_backward_inplace(static_cast<float*>(dinp), static_cast<const float*>(pre_gelu), n, stream_);
    else
      kern::gelu_backward_inplace(static_cast<__nv_bfloat16*>(dinp), static_cast<const __nv_bfloat16*>(pre_gelu), n,
                                  stream_);
  }
}

size_t CudaMatmul::backward_weight_scratch_floats(int N, int OC) {
  return std::max(static_cast<size_t>(OC), kern::bias_backward_scratch_floats(N, OC));
}

// Row-major dweight (OC, IC) += dout^T (OC, N) inp (N, IC) is column-major dweight^T (IC, OC)
// += inp^T (IC, N) dout (N, OC): A = inp stored (IC, N); B = dout stored (OC, N), transposed.
// BGRADB reduces op(B) over k = N: the bias gradient, written (not added) to scratch.
void CudaMatmul::backward_weight(float* dweight, float* dbias, const void* dout, const void* inp, int N, int IC,
                                 int OC, float* scratch, bool accumulate) {
  Call c;
  c.transB = true;
  c.m = IC, c.n = OC, c.k = N;
  c.lda = IC, c.ldb = OC, c.ldd = IC;
  c.a_type = c.b_type = cuda_type(act_), c.d_type = CUDA_R_32F;
  c.A = inp, c.B = dout, c.D = dweight;
  c.beta = accumulate ? 1.0f : 0.0f;
  if (dbias && fuse_bias_) {  // BGRADB writes the bias gradient: into dbias, or beside it to be added
    Call g = c;
    g.epilogue = CUBLASLT_EPILOGUE_BGRADB;
    g.bias = accumulate ? scratch : dbias;
    if (lt_matmul(g)) {
      if (accumulate) kern::add_inplace(dbias, scratch, OC, stream_);
      return;
    }
    note_fallback("BGRADB");
  }
  if (!lt_matmul(c)) fail("cuBLASLt has no matmul algorithm for ({} x {})^T @ ({} x {})", N, OC, N, IC);
  if (dbias) {
    if (!accumulate) CUDA_CHECK(cudaMemsetAsync(dbias, 0, OC * sizeof(float), stream_));
    if (act_ == DType::F32)
      kern::bias_backward(dbias, scratch, static_cast<const float*>(dout), N, OC, stream_);
    else
      kern::bias_backward(dbias, scratch, static_cast<const __nv_bfloat16*>(dout), N, OC, stream_);
  }
}

// Row-major out (rows, cols) = beta out + x_scale w_scale (x (rows, k) w (cols, k)^T), both
// operands fp8 and K-major: in cuBLASLt's column-major terms out^T (cols, rows) = op(A) op(B)
// with A = w stored (k, cols) and OP_T, B = x stored (k, rows) and OP_N: the "TN" layout that
// is the only one cuBLASLt's fp8 matmuls take (the forward's pattern, see forward above).
// cuBLASLt has no e5m2 x e5m2 kernel: at most one operand may be e5m2.
void CudaMatmul::fp8_matmul(void* out, DType out_type, const Fp8Operand& x, const Fp8Operand& w, int rows, int cols,
                            int k, float beta, const void* bias, bool fast_accum) {
  ATTN_CHECK(!(x.e5m2 && w.e5m2), "fp8 matmul ({} x {}) @ ({} x {})^T: e5m2 x e5m2 is not supported by cuBLASLt", rows,
             k, cols, k);
  ATTN_CHECK(rows % 16 == 0 && cols % 16 == 0 && k % 16 == 0,
             "fp8 matmul ({} x {}) @ ({} x {})^T: cuBLASLt fp8 needs every dimension a multiple of 16", rows, k, cols, k);
  ATTN_CHECK(out_type == DType::BF16 || !bias, "fp8 matmul: the bias epilogue needs a bf16 output");
  Call c;
  c.transA = true;
  c.m = cols, c.n = rows, c.k = k;
  c.lda = k, c.ldb = k, c.ldd = cols;
  c.a_type = w.e5m2 ? CUDA_R_8F_E5M2 : CUDA_R_8F_E4M3;
  c.b_type = x.e5m2 ? CUDA_R_8F_E5M2 : CUDA_R_8F_E4M3;
  c.d_type = cuda_type(out_type);
  c.a_scale = w.scale_inv, c.b_scale = x.scale_inv;
  c.A = w.data, c.B = x.data;
  c.beta = beta;
  c.fast_accum = fast_accum;
  const auto refused = [&](const char* epilogue) {
    fail("cuBLASLt has no fp8 matmul algorithm for ({} x {}, {}) @ ({} x {}, {})^T -> {} ({}, beta {})", rows, k,
         x.e5m2 ? "e5m2" : "e4m3", cols, k, w.e5m2 ? "e5m2" : "e4m3", dtype_name(out_type), epilogue, beta);
  };
  // (no GELU or DGELU epilogue with fp8 operands: on the H200, GPT-2 124M, cuBLASLt's DGELU ran
  // at 192 TFLOP/s and its GELU (writing gelu(h) and h) at 549, where the plain fp8 matmul runs
  // at ~1200; the GELU and dGELU go into the casts instead)
  if (!matmul_bias_gelu(c, out, out_type, rows, cols, bias, nullptr, "fp8 ")) refused("no epilogue");
}

}  // namespace attn
