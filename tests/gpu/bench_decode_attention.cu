// Benchmark of the decode attention kernel (kernels/decode_attention.h) against the device's
// memory bandwidth. For each shape (B, H, Hkv, D, context, cache dtype):
//   copy:   cudaMemcpyAsync device-to-device of a 1 GiB buffer, bandwidth = 2 * bytes / time
//           (read + write), median of 10;
//   decode: one call (split kernel + combine) at lengths = max_len = context, the L2 cache
//           flushed before every timed call (--flush read, the default: a read of a buffer of
//           2x the L2 size, which leaves L2 holding clean lines; --flush write: a memset of it,
//           which leaves ~L2-size dirty lines whose write-back to HBM then lands inside the
//           timed call, ~17 us on the H100 for every implementation alike; then a short GPU spin so
//           that launch overhead is not timed, both outside the events),
//           median of --reps; read_us: a plain streaming read of the same K and V bytes, timed
//           the same way (the floor of this harness: launch, DRAM latency, TLB warm-up);
//           read_bulk_us: the same bytes by bulk copies into shared memory (read_kv_bulk);
//           bandwidth = cache bytes read / time, with
//           cache bytes = 2 * B * Hkv * context * D * element bytes (+ 2 * B * Hkv * context * 4
//           for the 8-bit scales).
// Prints one JSON line per shape (scripts/bench_decode_sdpa.py prints PyTorch's peers).
//
// usage: bench_decode_attention [--reps N] [--flush read|write] [--shape B,H,Hkv,D,ctx,dtype ...]   (dtype bf16|fp8|int8|fp32)
//        [--waves X] [--blocks-per-sm X] [--cuda-cores] [--no-short-heads] [--mha-tensor-cores] [--min-split-rows N]
//        [--merge-bytes N] [--mma-warps 4|8] [--no-fit-waves]   (DecodeAttentionTuning: splits sized for X waves of resident blocks,
//        or for X blocks per SM; the CUDA-core split kernel also for bf16 activations; the
//        tensor-core kernel also for MHA; at least N cache rows per split; the last block merges
//        partials of up to N bytes, else the combine kernel; warps per block of the tensor-core kernel;
//        no extra splits to fill the last wave when the blocks exceed one)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "kernels/tiles/mbarrier.cuh"
#include "kernels/tiles/tma.cuh"
#include "kernels/decode_attention.h"
#include "bench_util.h"

// Random stored elements of any cache dtype: for 8-bit, bytes with bit 6 clear (e4m3 values
// below 2, never the NaN codes 0x7f/0xff); for bf16/fp32, uniform values in [-1, 1).
__global__ void fill_cache(uint8_t* p, size_t bytes, int elem_bytes, uint64_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i * 4 < bytes; i += (size_t)gridDim.x * blockDim.x) {
    uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    uint32_t w = (uint32_t)z;
    if (elem_bytes == 1) w &= 0xBFBFBFBFu;
    else if (elem_bytes == 2) w &= 0xBFFFBFFFu;  // two bf16 with exponent bit 7 clear: |x| < 2
    else w = __float_as_uint(__uint_as_float(0x3F800000u | (w & 0x7FFFFFu)) - 1.5f);
    reinterpret_cast<uint32_t*>(p)[i] = w;
  }
}
__global__ void fill_float(float* p, size_t n, float v) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) p[i] = v;
}

// Reads n 16-byte words (evicts L2 without leaving dirty lines); the sink is written only on
// an XOR no fill produces, so the reads cannot be optimised away.
__global__ void read_all(const int4* p, size_t n, int* sink) {
  int acc = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const int4 w = p[i];
    acc ^= w.x ^ w.y ^ w.z ^ w.w;
  }
  if (acc == 0x5eed1234) *sink = acc;
}

// The floor a cache read can reach in this harness: a streaming read of the K and V buffers
// (n16 16-byte words each, 4 loads in flight per thread; not the 8-bit scales), timed exactly
// like the decode call.
__global__ void read_kv(const int4* k, const int4* v, size_t n16, int* sink) {
  int acc = 0;
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n16; i += 2 * stride) {
    const int4 a = __ldcs(k + i), b = __ldcs(v + i);
    int4 c{}, d{};
    if (i + stride < n16) c = __ldcs(k + i + stride), d = __ldcs(v + i + stride);
    acc ^= a.x ^ a.w ^ b.y ^ b.z ^ c.x ^ c.w ^ d.y ^ d.z;
  }
  if (acc == 0x5eed1234) *sink = acc;
}

// The same floor through the copy engine of each SM: one thread per block bulk-copies 16 KB
// chunks of K then V (chunk i to block i mod the grid) into a ring of kBulkStages in shared
// memory and reissues a stage as soon as its copy lands; nothing is computed. With 128 KB in
// flight per SM, it bounds what a kernel that streams the cache through shared memory could read.
constexpr int kBulkChunk = 16 * 1024, kBulkStages = 8;
__global__ void __launch_bounds__(32) read_kv_bulk(const uint8_t* k, const uint8_t* v, size_t bytes, int* sink) {
  extern __shared__ __align__(128) unsigned char buffers[];
  __shared__ attn::tiles::RingBarriers<kBulkStages> ring;  // (its empty barriers unused: one thread both loads and reads)
  if (threadIdx.x != 0) return;
  const size_t per = (bytes + kBulkChunk - 1) / kBulkChunk, n = 2 * per;  // chunks of K, then of V
  auto issue = [&](size_t c, uint32_t use) {  // chunk c into the buffer of `use`
    const uint8_t* base = c < per ? k : v;
    const size_t off = (c % per) * kBulkChunk;
    const uint32_t len = (uint32_t)std::min<size_t>(kBulkChunk, bytes - off);
    attn::tiles::mbar_arrive_expect_tx(ring.full_bar(use), len);
    attn::tiles::bulk_load(attn::tiles::smem_addr(buffers + (size_t)ring.stage(use) * kBulkChunk), base + off, len,
                           ring.full_bar(use));
  };
  ring.init(1);
  attn::tiles::fence_barrier_init();
  size_t next = blockIdx.x;
  uint32_t issued = 0;
  for (; issued < kBulkStages && next < n; ++issued, next += gridDim.x) issue(next, issued);
  int acc = 0;
  for (uint32_t use = 0; use < issued; ++use) {
    ring.wait_full(use);
    acc ^= reinterpret_cast<const int*>(buffers + (size_t)ring.stage(use) * kBulkChunk)[0];
    if (next < n) issue(next, issued++), next += gridDim.x;
  }
  if (acc == 0x5eed1234) *sink = acc;
}

// Keeps the GPU busy for `cycles` while the host enqueues the timed call: the events then
// time GPU work only (the same as scripts/bench_decode_sdpa.py's torch.cuda._sleep).
__global__ void spin(long long cycles) {
  const long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
}

using attn::bench::median;

struct Shape {
  int B, H, Hkv, D, ctx;
  std::string dtype;
};

int main(int argc, char** argv) {
  int reps = 50;
  bool flush_by_write = false;
  attn::DecodeAttentionTuning tune;
  std::vector<Shape> shapes;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--flush") && i + 1 < argc) flush_by_write = !std::strcmp(argv[++i], "write");
    else if (!std::strcmp(argv[i], "--waves") && i + 1 < argc) tune.waves = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--cuda-cores")) tune.tensor_cores = false;
    else if (!std::strcmp(argv[i], "--no-short-heads")) tune.short_heads = false;
    else if (!std::strcmp(argv[i], "--no-fit-waves")) tune.fit_waves = false;
    else if (!std::strcmp(argv[i], "--mha-tensor-cores")) tune.mha_tensor_cores = true;
    else if (!std::strcmp(argv[i], "--min-split-rows") && i + 1 < argc) tune.min_split_rows = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--merge-bytes") && i + 1 < argc) tune.in_kernel_merge_bytes = std::atol(argv[++i]);
    else if (!std::strcmp(argv[i], "--blocks-per-sm") && i + 1 < argc) tune.blocks_per_sm = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--mma-warps") && i + 1 < argc) tune.mma_warps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--shape") && i + 1 < argc) {
      Shape s{};
      char dt[16] = {0};
      if (std::sscanf(argv[++i], "%d,%d,%d,%d,%d,%15s", &s.B, &s.H, &s.Hkv, &s.D, &s.ctx, dt) != 6) {
        std::fprintf(stderr, "--shape wants B,H,Hkv,D,ctx,dtype, got '%s'\n", argv[i]);
        return 2;
      }
      s.dtype = dt;
      shapes.push_back(s);
    } else {
      std::fprintf(stderr, "unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (shapes.empty())
    shapes = {{1, 12, 12, 64, 32768, "bf16"}, {32, 12, 12, 64, 4096, "bf16"}, {1, 12, 12, 64, 32768, "fp8"},
              {32, 12, 12, 64, 4096, "fp8"},  {1, 12, 12, 64, 32768, "int8"}, {32, 12, 12, 64, 4096, "int8"},
              {1, 12, 4, 64, 32768, "bf16"},  {32, 12, 4, 64, 4096, "bf16"},  {1, 32, 8, 128, 32768, "bf16"},
              {1, 12, 1, 64, 32768, "bf16"},  {1, 12, 4, 64, 32768, "int8"},  {1, 32, 8, 128, 32768, "fp8"},
              {1, 32, 8, 128, 32768, "int8"}, {1, 12, 1, 64, 32768, "fp8"}};

  attn::set_decode_attention_tuning(tune);
  const std::string pipeline = "waves " + (tune.waves > 0 ? std::to_string(tune.waves).substr(0, 4) : std::string("per kernel")) +
                               (tune.blocks_per_sm > 0 ? ", blocks per SM " + std::to_string(tune.blocks_per_sm).substr(0, 4) : std::string()) +
                               (tune.tensor_cores ? (tune.mha_tensor_cores ? ", tensor cores (MHA too)" : ", tensor cores")
                                                  : ", cuda cores") +
                               (tune.mma_warps > 0 ? ", " + std::to_string(tune.mma_warps) + " warps" : std::string()) +
                               ", min split rows " + std::to_string(tune.min_split_rows);
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreate(&stream));
  cudaEvent_t e0, e1;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));

  // ---- device-to-device copy bandwidth -------------------------------------------------
  const size_t copy_bytes = size_t(1) << 30;
  void *src, *dst;
  CUDA_CHECK(cudaMalloc(&src, copy_bytes));
  CUDA_CHECK(cudaMalloc(&dst, copy_bytes));
  CUDA_CHECK(cudaMemsetAsync(src, 1, copy_bytes, stream));
  std::vector<float> ts;
  for (int i = 0; i < 12; ++i) {
    CUDA_CHECK(cudaEventRecord(e0, stream));
    CUDA_CHECK(cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice, stream));
    CUDA_CHECK(cudaEventRecord(e1, stream));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float ms;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    if (i >= 2) ts.push_back(ms);
  }
  const double copy_gbps = 2.0 * copy_bytes / (median(ts) * 1e-3) / 1e9;
  CUDA_CHECK(cudaFree(src));
  CUDA_CHECK(cudaFree(dst));
  std::printf("{\"what\": \"copy\", \"device\": \"%s\", \"bytes\": %zu, \"gbps\": %.1f}\n", prop.name, copy_bytes, copy_gbps);
  std::fflush(stdout);

  // ---- L2 flush buffer ---------------------------------------------------------------------
  const size_t flush_bytes = 2 * (size_t)prop.l2CacheSize;
  void* flush;
  CUDA_CHECK(cudaMalloc(&flush, flush_bytes));
  CUDA_CHECK(cudaMemset(flush, 1, flush_bytes));
  int* sink;
  CUDA_CHECK(cudaMalloc(&sink, sizeof(int)));
  CUDA_CHECK(cudaFuncSetAttribute(read_kv_bulk, cudaFuncAttributeMaxDynamicSharedMemorySize, kBulkChunk * kBulkStages));

  for (const Shape& s : shapes) {
    try {
      const attn::KVCacheDType dt = attn::kv_cache_dtype_from_name(s.dtype);
      const size_t eb = attn::kv_cache_element_bytes(dt);
      const bool q8 = dt == attn::KVCacheDType::FP8_E4M3 || dt == attn::KVCacheDType::INT8;
      const size_t rows = (size_t)s.B * s.Hkv * s.ctx, cache_bytes = rows * s.D * eb;
      uint8_t *k, *v;
      float *ks = nullptr, *vs = nullptr;
      void *q, *o, *ws;
      int32_t* lengths;
      CUDA_CHECK(cudaMalloc(&k, cache_bytes));
      CUDA_CHECK(cudaMalloc(&v, cache_bytes));
      fill_cache<<<1024, 256, 0, stream>>>(k, cache_bytes, (int)eb, 1);
      fill_cache<<<1024, 256, 0, stream>>>(v, cache_bytes, (int)eb, 2);
      if (q8) {
        CUDA_CHECK(cudaMalloc(&ks, rows * 4));
        CUDA_CHECK(cudaMalloc(&vs, rows * 4));
        fill_float<<<1024, 256, 0, stream>>>(ks, rows, 0.01f);
        fill_float<<<1024, 256, 0, stream>>>(vs, rows, 0.01f);
      }
      const size_t qo_bytes = (size_t)s.B * s.H * s.D * 2;
      CUDA_CHECK(cudaMalloc(&q, qo_bytes));
      CUDA_CHECK(cudaMalloc(&o, qo_bytes));
      fill_cache<<<64, 256, 0, stream>>>(static_cast<uint8_t*>(q), qo_bytes, 2, 3);
      CUDA_CHECK(cudaMalloc(&lengths, s.B * 4));
      std::vector<int32_t> lens(s.B, s.ctx);
      CUDA_CHECK(cudaMemcpy(lengths, lens.data(), s.B * 4, cudaMemcpyHostToDevice));
      CUDA_CHECK(cudaGetLastError());

      attn::DecodeAttentionParams p;
      p.q = q;
      p.q_batch_stride = (int64_t)s.H * s.D;
      p.o = o;
      p.o_batch_stride = (int64_t)s.H * s.D;
      p.act_bf16 = true;
      p.cache.k = k;
      p.cache.v = v;
      p.cache.k_scale = ks;
      p.cache.v_scale = vs;
      p.shape = {s.B, s.Hkv, s.ctx, s.D, dt};
      p.lengths = lengths;
      p.H = s.H;
      p.scale = 1.0f / std::sqrt((float)s.D);
      CUDA_CHECK(cudaMalloc(&ws, attn::decode_attention_workspace_bytes(p)));
      attn::decode_attention_workspace_init(p, ws, stream);

      // median time of `call` with the L2 flushed before each (outside the events), after 3 warm-ups
      auto time_flushed = [&](auto call) {
        for (int i = 0; i < 3; ++i) call();
        ts.clear();
        for (int i = 0; i < reps; ++i) {
          if (flush_by_write) CUDA_CHECK(cudaMemsetAsync(flush, i & 0xff, flush_bytes, stream));  // evict the cache from L2
          else read_all<<<1024, 256, 0, stream>>>(static_cast<const int4*>(flush), flush_bytes / 16, sink);
          spin<<<1, 1, 0, stream>>>(400000);
          CUDA_CHECK(cudaEventRecord(e0, stream));
          call();
          CUDA_CHECK(cudaEventRecord(e1, stream));
          CUDA_CHECK(cudaEventSynchronize(e1));
          float ms;
          CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
          ts.push_back(ms);
        }
        CUDA_CHECK(cudaGetLastError());
        return median(ts) * 1e-3;
      };
      const double t_read = time_flushed([&] {
        read_kv<<<prop.multiProcessorCount * 8, 256, 0, stream>>>(reinterpret_cast<const int4*>(k),
                                                                  reinterpret_cast<const int4*>(v), cache_bytes / 16, sink);
      });
      const double t_read_bulk = time_flushed([&] {
        read_kv_bulk<<<prop.multiProcessorCount, 32, kBulkChunk * kBulkStages, stream>>>(k, v, cache_bytes, sink);
      });
      CUDA_CHECK(cudaGetLastError());
      const double t = time_flushed([&] { attn::decode_attention(p, ws, stream); });
      const double bytes = 2.0 * cache_bytes + (q8 ? 2.0 * rows * 4 : 0.0);
      const double gbps = bytes / t / 1e9;
      std::printf(
          "{\"what\": \"decode\", \"who\": \"ours\", \"B\": %d, \"H\": %d, \"Hkv\": %d, \"D\": %d, \"ctx\": %d, "
          "\"cache\": \"%s\", \"flush\": \"%s\", \"pipeline\": \"%s\", \"us\": %.2f, \"bytes\": %.0f, \"gbps\": %.1f, \"copy_gbps\": %.1f, \"frac_copy\": %.3f, \"read_us\": %.2f, \"read_bulk_us\": %.2f}\n",
          s.B, s.H, s.Hkv, s.D, s.ctx, s.dtype.c_str(), flush_by_write ? "write" : "read", pipeline.c_str(), t * 1e6, bytes, gbps, copy_gbps, gbps / copy_gbps, t_read * 1e6, t_read_bulk * 1e6);
      std::fflush(stdout);
      CUDA_CHECK(cudaFree(k));
      CUDA_CHECK(cudaFree(v));
      if (ks) CUDA_CHECK(cudaFree(ks));
      if (vs) CUDA_CHECK(cudaFree(vs));
      CUDA_CHECK(cudaFree(q));
      CUDA_CHECK(cudaFree(o));
      CUDA_CHECK(cudaFree(ws));
      CUDA_CHECK(cudaFree(lengths));
    } catch (const attn::Error& e) {
      std::printf("{\"what\": \"decode\", \"who\": \"ours\", \"B\": %d, \"H\": %d, \"Hkv\": %d, \"D\": %d, \"ctx\": %d, "
                  "\"cache\": \"%s\", \"error\": \"%s\"}\n",
                  s.B, s.H, s.Hkv, s.D, s.ctx, s.dtype.c_str(), e.what());
    }
  }
  CUDA_CHECK(cudaFree(flush));
  CUDA_CHECK(cudaFree(sink));
  return 0;
}
