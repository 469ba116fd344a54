// Benchmark of the flash attention kernels: forward, backward and forward+backward, bf16 (or
// fp32 / tf32), causal by default, on the issue's shapes. CUDA events around each call, warm-up, median of
// N, inputs rotated over several buffer sets so that repeated calls do not run from L2.
// FLOPs: forward 4*B*H*T*T*D (halved when causal); backward 2.5x forward.
// Extra memory: lse + backward workspace (inputs, outputs and gradients not counted).
//
// usage: bench_flash_attention [--precision bf16|fp32|tf32] [--full] [--det] [--reps N] [--warmup-ms MS]
//                              [--shape B,H,Hkv,T,D ...] [--window W] [--alibi] [--softcap C] [--doc-len L]
//                              [--trace N]
//   --precision: bf16 (default), fp32 (3xTF32 tensor-core kernels) or tf32 (1xTF32); fp32 and
//            tf32 default to the shapes of issue 20, (16,12,1024,64) and (2,12,8192,64)
//   --full : non-causal instead of causal;  --det : also time the deterministic backward
//   --warmup-ms: before each timed series, run the call for MS ms first (default 0: 3 calls).
//            The H200 reaches its 700 W power limit within about a second at head dim 128 and
//            then lowers its SM clock (1980 -> ~1500-1850 MHz), so a short series measures a cool
//            GPU and the series after it a throttled one; with MS ~1500 every series (ours and
//            scripts/bench_sdpa.py's, which takes the same flag) runs in the steady state.
//   --shape: time these shapes (Hkv < H: grouped-query) instead of the issue's five
//   --trace N: after the timings, N + 1 forward+backward calls under a kernel trace (CUPTI,
//            src/backend/kernel_trace.h): per shape, a table of where one call's time goes, kernel
//            by kernel (the backward's pre-pass, which also zeroes dQ's accumulator, and its dQ
//            convert included), with the gaps between them
//   --window W / --alibi / --softcap C / --doc-len L: sliding window, ALiBi, soft-capping,
//            document mask with documents of L tokens. TFLOP/s stays the nominal count of the
//            unmasked (causal or full) problem, so with masks compare the ms.
// scripts/bench_sdpa.py prints the same table for PyTorch's SDPA backends.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/kernel_trace.h"
#include "core/cuda_check.h"
#include "kernels/flash_attention.h"
#include "bench_util.h"

template <typename E>
__global__ void fill_random(E* x, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = (float)(z >> 40) * (1.0f / 16777216.0f);
    x[i] = static_cast<E>((u - 0.5f) * 3.4641016f);  // unit variance
  }
}

struct Set {
  char *qkv, *dy, *y, *dqkv;  // bf16 or fp32 elements
  float* lse;
  void* ws;
};

using attn::bench::median;

int main(int argc, char** argv) {
  bool causal = true, det = false, alibi = false;
  std::string precision = "bf16";
  int reps = 20, window = 0, doc_len = 0, warmup_ms = 0, trace_calls = 0;
  float softcap = 0.0f;
  struct Shape { int B, H, Hkv, T, D; };
  std::vector<Shape> shapes;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--full")) causal = false;
    else if (!std::strcmp(argv[i], "--det")) det = true;
    else if (!std::strcmp(argv[i], "--precision") && i + 1 < argc) {
      precision = argv[++i];
      if (precision != "bf16" && precision != "fp32" && precision != "tf32") {
        std::fprintf(stderr, "--precision wants bf16, fp32 or tf32, got '%s'\n", precision.c_str());
        return 2;
      }
    }
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--warmup-ms") && i + 1 < argc) warmup_ms = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--trace") && i + 1 < argc) trace_calls = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--window") && i + 1 < argc) window = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--alibi")) alibi = true;
    else if (!std::strcmp(argv[i], "--softcap") && i + 1 < argc) softcap = (float)std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--doc-len") && i + 1 < argc) doc_len = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--shape") && i + 1 < argc) {
      Shape sh{};
      if (std::sscanf(argv[++i], "%d,%d,%d,%d,%d", &sh.B, &sh.H, &sh.Hkv, &sh.T, &sh.D) != 5 || sh.Hkv < 1 ||
          sh.H % sh.Hkv != 0) {
        std::fprintf(stderr, "--shape wants B,H,Hkv,T,D with Hkv dividing H, got '%s'\n", argv[i]);
        return 2;
      }
      shapes.push_back(sh);
    } else {
      std::fprintf(stderr, "unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  const bool bf16 = precision == "bf16";
  const size_t es = bf16 ? 2 : 4;  // bytes per element
  if (shapes.empty() && !bf16) shapes = {{16, 12, 12, 1024, 64}, {2, 12, 12, 8192, 64}};
  if (shapes.empty())
    shapes = {{16, 12, 12, 1024, 64}, {4, 12, 12, 4096, 64}, {1, 12, 12, 16384, 64}, {8, 16, 16, 2048, 128},
              {2, 16, 16, 8192, 128}};
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::string mods;
  if (window > 0) mods += ", window " + std::to_string(window);
  if (doc_len > 0) mods += ", documents of " + std::to_string(doc_len);
  if (alibi) mods += ", alibi";
  if (softcap > 0) mods += ", softcap " + std::to_string(softcap);
  if (warmup_ms > 0) mods += ", after " + std::to_string(warmup_ms) + " ms of warm-up each";
  std::printf("attnlab flash attention, %s, %s, %s, median of %d%s\n", prop.name, precision.c_str(),
              causal ? "causal" : "non-causal", reps, mods.c_str());
  std::printf("%-22s %9s %7s %9s %7s %9s %7s %9s%s\n", "B,H,Hkv,T,D", "fwd ms", "TFLOP/s", "bwd ms", "TFLOP/s", "f+b ms",
              "TFLOP/s", "extra MB", det ? "  det-bwd ms TFLOP/s" : "");
  cudaEvent_t e0, e1;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  for (const Shape& sh : shapes) {
    const int W = (sh.H + 2 * sh.Hkv) * sh.D, HD = sh.H * sh.D, KD = sh.Hkv * sh.D;
    const size_t n_qkv = (size_t)sh.B * sh.T * W, n_y = (size_t)sh.B * sh.T * HD;
    attn::FlashAttentionParams p;
    p.B = sh.B, p.T = sh.T, p.H = sh.H, p.Hkv = sh.Hkv, p.D = sh.D;
    p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = (int64_t)sh.T * W;
    p.q_token_stride = p.k_token_stride = p.v_token_stride = W;
    p.o_batch_stride = (int64_t)sh.T * HD;
    p.o_token_stride = HD;
    p.causal = causal;
    p.scale = 1.0f / std::sqrt((float)sh.D);
    p.bf16 = bf16;
    p.tf32 = precision == "tf32";
    p.window = window;
    p.alibi = alibi;
    p.softcap = softcap;
    int32_t* doc_ids = nullptr;  // doc(t) = t / doc_len in every row
    if (doc_len > 0) {
      std::vector<int32_t> h((size_t)sh.B * sh.T);
      for (size_t i = 0; i < h.size(); ++i) h[i] = (int32_t)((i % sh.T) / doc_len);
      CUDA_CHECK(cudaMalloc(&doc_ids, h.size() * sizeof(int32_t)));
      CUDA_CHECK(cudaMemcpy(doc_ids, h.data(), h.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
      p.doc_ids = doc_ids;
    }
    attn::FlashAttentionBackwardParams bp;
    bp.fwd = p;
    bp.do_batch_stride = (int64_t)sh.T * HD;
    bp.do_token_stride = HD;
    bp.dq_batch_stride = bp.dk_batch_stride = bp.dv_batch_stride = (int64_t)sh.T * W;
    bp.dq_token_stride = bp.dk_token_stride = bp.dv_token_stride = W;
    bp.deterministic = false;
    const size_t ws_bytes = attn::flash_attention_backward_workspace_bytes(bp);
    bp.deterministic = true;
    const size_t ws_det = attn::flash_attention_backward_workspace_bytes(bp);
    const size_t set_bytes = (2 * n_qkv + 2 * n_y) * es + (size_t)sh.B * sh.H * sh.T * 4 + ws_bytes;
    const int nrot = (int)std::clamp<size_t>((size_t)(3 * prop.l2CacheSize) / set_bytes + 1, 1, 6);
    std::vector<Set> sets(nrot);
    for (int i = 0; i < nrot; ++i) {
      Set& s = sets[i];
      CUDA_CHECK(cudaMalloc(&s.qkv, n_qkv * es));
      CUDA_CHECK(cudaMalloc(&s.dqkv, n_qkv * es));
      CUDA_CHECK(cudaMalloc(&s.dy, n_y * es));
      CUDA_CHECK(cudaMalloc(&s.y, n_y * es));
      CUDA_CHECK(cudaMalloc(&s.lse, (size_t)sh.B * sh.H * sh.T * 4));
      CUDA_CHECK(cudaMalloc(&s.ws, ws_bytes));
      if (bf16) {
        fill_random<<<1024, 256>>>(reinterpret_cast<__nv_bfloat16*>(s.qkv), n_qkv, 1234 + 2 * i);
        fill_random<<<1024, 256>>>(reinterpret_cast<__nv_bfloat16*>(s.dy), n_y, 4321 + 2 * i);
      } else {
        fill_random<<<1024, 256>>>(reinterpret_cast<float*>(s.qkv), n_qkv, 1234 + 2 * i);
        fill_random<<<1024, 256>>>(reinterpret_cast<float*>(s.dy), n_y, 4321 + 2 * i);
      }
      CUDA_CHECK(cudaGetLastError());
    }
    auto bind = [&](const Set& s, bool deterministic) {
      attn::FlashAttentionBackwardParams b = bp;
      b.fwd.q = s.qkv;
      b.fwd.k = s.qkv + HD * es;
      b.fwd.v = s.qkv + (HD + KD) * es;
      b.fwd.o = s.y;
      b.fwd.lse = s.lse;
      b.dO = s.dy;
      b.dq = s.dqkv;
      b.dk = s.dqkv + HD * es;
      b.dv = s.dqkv + (HD + KD) * es;
      b.deterministic = deterministic;
      return b;
    };
    auto time_it = [&](auto&& fn) {
      for (int i = 0; i < 3; ++i) fn(sets[i % nrot]);
      const auto warm_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(warmup_ms);
      for (int i = 0; std::chrono::steady_clock::now() < warm_until; ++i) {
        fn(sets[i % nrot]);
        CUDA_CHECK(cudaEventRecord(e0));
        CUDA_CHECK(cudaEventSynchronize(e0));
      }
      std::vector<float> t;
      for (int i = 0; i < reps; ++i) {
        CUDA_CHECK(cudaEventRecord(e0));
        fn(sets[i % nrot]);
        CUDA_CHECK(cudaEventRecord(e1));
        CUDA_CHECK(cudaEventSynchronize(e1));
        float ms = 0.f;
        CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        t.push_back(ms);
      }
      CUDA_CHECK(cudaGetLastError());
      return median(t);
    };
    auto fwd = [&](const Set& s) { attn::flash_attention_forward(bind(s, false).fwd, nullptr); };
    auto bwd = [&](const Set& s) { attn::flash_attention_backward(bind(s, false), s.ws, nullptr); };
    auto bwd_det = [&](const Set& s) { attn::flash_attention_backward(bind(s, true), s.ws, nullptr); };
    auto both = [&](const Set& s) { fwd(s); bwd(s); };
    const float t_f = time_it(fwd);
    for (auto& s : sets) fwd(s);
    const float t_b = time_it(bwd);
    const float t_fb = time_it(both);
    const float t_bd = det ? time_it(bwd_det) : 0.f;
    const double flop_f = 4.0 * sh.B * sh.H * (double)sh.T * sh.T * sh.D * (causal ? 0.5 : 1.0);
    const double extra_mb = ((size_t)sh.B * sh.H * sh.T * 4 + ws_bytes) / 1048576.0;
    char name[64];
    std::snprintf(name, sizeof name, "%d,%d,%d,%d,%d", sh.B, sh.H, sh.Hkv, sh.T, sh.D);
    std::printf("%-22s %9.3f %7.1f %9.3f %7.1f %9.3f %7.1f %9.1f", name, t_f, flop_f / t_f * 1e-9, t_b,
                2.5 * flop_f / t_b * 1e-9, t_fb, 3.5 * flop_f / t_fb * 1e-9, extra_mb);
    if (det) std::printf("  %9.3f %7.1f (ws %.1f MB)", t_bd, 2.5 * flop_f / t_bd * 1e-9, ws_det / 1048576.0);
    std::printf("\n");
    std::fflush(stdout);
    if (trace_calls > 0) {  // each forward+backward call is one "step" of the trace
      try {
        std::unique_ptr<attn::KernelTrace> trace = attn::KernelTrace::start();
        for (int i = 0; i <= trace_calls; ++i) both(sets[i % nrot]);
        const attn::StepTrace st = attn::summarise_steps(trace->stop(), trace_calls + 1);
        std::printf("\ntrace of %s, forward+backward:\n%s\n", name, attn::format_step_trace(st).c_str());
      } catch (const std::exception& e) {
        std::printf("trace of %s: error: %s\n", name, e.what());
      }
      std::fflush(stdout);
    }
    for (auto& s : sets) {
      CUDA_CHECK(cudaFree(s.qkv));
      CUDA_CHECK(cudaFree(s.dqkv));
      CUDA_CHECK(cudaFree(s.dy));
      CUDA_CHECK(cudaFree(s.y));
      CUDA_CHECK(cudaFree(s.lse));
      CUDA_CHECK(cudaFree(s.ws));
    }
    CUDA_CHECK(cudaFree(doc_ids));
  }
  return 0;
}
