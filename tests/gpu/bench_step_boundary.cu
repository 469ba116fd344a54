// What one dependent stage of a decode step costs, apart from its work (issue 17): a chain of
// S stages, each of which reads the whole vector the stage before wrote (n floats, from L2),
// sums it per block, and writes its share of the next vector, run as
//   pdl:        S kernels captured in a CUDA graph, launched with programmatic dependent launch
//               (tiles/pdl.cuh: wait for the kernel before, then let the next one start);
//   graph:      the same S kernels without the attribute (plain stream order in the graph);
//   persistent: one kernel of S stages with a grid barrier between them (GridBarrierT below),
//               the barrier's counters on 16 groups (grouped) or one address (flat).
// The barrier lives here, not in kernels/: it measured slower than a launch, so nothing uses it.
// --empty: the stages do no work (each block only waits), the pure cost of a boundary.
// Prints one JSON line per (mode, blocks): microseconds per stage, median of --reps replays.
//
// usage: bench_step_boundary [--stages S] [--reps N] [--n N] [--blocks a,b,...] [--empty]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "kernels/common.cuh"
#include "kernels/tiles/hardware.cuh"
#include "kernels/tiles/pdl.cuh"
#include "bench_util.h"

namespace {

// A barrier across every block of a persistent grid (all blocks resident: the bench checks the
// grid against the occupancy; a spin past kSpinLimitNs traps instead of hanging). Counters
// (kWords, zeroed once, zero again after each launch): kGroups group counters, the top counter,
// the exit counter. At its e-th barrier a block adds 1 to its group's counter (block % kGroups);
// the group's last arriver adds 1 to the top counter; every block waits for top >= e * groups.
// The last block to exit zeroes the counters (by then every block has passed every barrier).
// Writes before the barrier are visible after it: __threadfence before arriving, release /
// acquire on the counters, __threadfence after.
template <int kGroupCount>
struct GridBarrierT {
  static constexpr int kGroups = kGroupCount;
  static constexpr unsigned long long kSpinLimitNs = 2000000000ull;  // 2 s: a grid that is not co-resident
  static constexpr int kWords = kGroups + 2;
  __host__ __device__ static constexpr int words() { return kWords; }

  unsigned* counters = nullptr;  // words() of device memory, zeroed once

  __device__ __forceinline__ static unsigned load_acquire(const unsigned* p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
  }

  // Blocks of the grid in group `group` (blocks group, group + kGroups, ...).
  __device__ __forceinline__ static unsigned group_size(unsigned group) {
    return (gridDim.x - group + kGroups - 1) / kGroups;
  }

  // The e-th barrier of this launch (e counted by the caller from 1). Every thread of every
  // block calls it.
  __device__ __forceinline__ void sync(unsigned e) const {
    __syncthreads();
    if (threadIdx.x == 0) {
      const unsigned group = blockIdx.x % kGroups;
      const unsigned groups = gridDim.x < kGroups ? gridDim.x : kGroups;
      __threadfence();
      const unsigned arrived = atomicAdd(&counters[group], 1u) + 1;
      if (arrived == e * group_size(group)) {
        __threadfence();
        atomicAdd(&counters[kGroups], 1u);
      }
      const unsigned long long start = globaltimer();
      while (load_acquire(&counters[kGroups]) < e * groups)
        if (globaltimer() - start > kSpinLimitNs) __trap();
      __threadfence();
    }
    __syncthreads();
  }

  // Called once by every block as it leaves the kernel (after its last barrier).
  __device__ __forceinline__ void exit() const {
    __syncthreads();
    if (threadIdx.x == 0 && atomicAdd(&counters[kGroups + 1], 1u) == gridDim.x - 1) {
      for (int i = 0; i < words(); ++i) counters[i] = 0;
      __threadfence();
    }
  }

  __device__ __forceinline__ static unsigned long long globaltimer() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
    return t;
  }
};
using GridBarrier = GridBarrierT<16>;

constexpr int kThreads = 128;

// out[i] for i = block, block + blocks, ... = 1e-3 * sum(in) + i: a true dependency on all of `in`.
__device__ void stage(const float* in, float* out, int n, int block, int blocks, bool empty) {
  if (empty) return;
  float s = 0.0f;
  for (int i = threadIdx.x; i < n; i += kThreads) s += __ldcg(in + i);
  const float total = attn::kern::block_sum(s);
  for (int i = block + threadIdx.x * blocks; i < n; i += kThreads * blocks) out[i] = 1e-3f * total + i;
}

__global__ void __launch_bounds__(kThreads) stage_kernel(const float* in, float* out, int n, bool empty) {
  attn::tiles::wait_for_predecessor();
  attn::tiles::launch_dependents();
  stage(in, out, n, blockIdx.x, gridDim.x, empty);
}

template <int kGroups>
__global__ void __launch_bounds__(kThreads) persistent_kernel(float* buf, int n, int stages, bool empty, unsigned* counters) {
  const GridBarrierT<kGroups> bar{counters};
  for (int s = 0; s < stages; ++s) {
    if (s > 0) bar.sync(s);
    stage(buf + (s % 2) * n, buf + ((s + 1) % 2) * n, n, blockIdx.x, gridDim.x, empty);
  }
  bar.exit();
}

struct Options {
  int stages = 62, reps = 50, n = 768;
  std::vector<int> blocks;
  bool empty = false;
};

// Replays `graph` reps times (after 5 warm-ups), each timed by events: median us per stage.
double time_graph(cudaGraphExec_t exec, cudaStream_t s, const Options& o) {
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 5; ++i) CUDA_CHECK(cudaGraphLaunch(exec, s));
  std::vector<double> us;
  for (int r = 0; r < o.reps; ++r) {
    CUDA_CHECK(cudaEventRecord(a, s));
    CUDA_CHECK(cudaGraphLaunch(exec, s));
    CUDA_CHECK(cudaEventRecord(b, s));
    CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    us.push_back(1000.0 * ms / o.stages);
  }
  CUDA_CHECK(cudaEventDestroy(a));
  CUDA_CHECK(cudaEventDestroy(b));
  return attn::bench::median(us);
}

template <typename F>
double capture_and_time(cudaStream_t s, const Options& o, F&& body) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  body();
  CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  const double us = time_graph(exec, s, o);
  CUDA_CHECK(cudaGraphExecDestroy(exec));
  CUDA_CHECK(cudaGraphDestroy(graph));
  return us;
}

void report(const char* mode, int blocks, double us, const Options& o) {
  std::printf("{\"mode\": \"%s\", \"blocks\": %d, \"stages\": %d, \"n\": %d, \"empty\": %s, \"us_per_stage\": %.3f}\n", mode,
              blocks, o.stages, o.n, o.empty ? "true" : "false", us);
  std::fflush(stdout);
}

std::vector<int> parse_ints(const char* s) {
  std::vector<int> v;
  for (const char* p = s; *p;) {
    v.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--stages") o.stages = std::atoi(next());
    else if (a == "--reps") o.reps = std::atoi(next());
    else if (a == "--n") o.n = std::atoi(next());
    else if (a == "--blocks") o.blocks = parse_ints(next());
    else if (a == "--empty") o.empty = true;
    else {
      std::fprintf(stderr, "error: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (o.stages < 2 || o.reps < 1 || o.n < 1) {
    std::fprintf(stderr, "error: --stages must be >= 2, --reps and --n >= 1\n");
    return 2;
  }
  const int sms = attn::tiles::sm_count();
  int per_sm = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, persistent_kernel<16>, kThreads, 0));
  if (o.blocks.empty()) o.blocks = {sms, 2 * sms, 5 * sms};
  cudaStream_t s;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  float* buf = nullptr;
  unsigned* counters = nullptr;
  CUDA_CHECK(cudaMalloc(&buf, 2 * sizeof(float) * o.n));
  CUDA_CHECK(cudaMemset(buf, 0, 2 * sizeof(float) * o.n));
  CUDA_CHECK(cudaMalloc(&counters, sizeof(unsigned) * GridBarrier::words()));
  CUDA_CHECK(cudaMemset(counters, 0, sizeof(unsigned) * GridBarrier::words()));
  for (const int blocks : o.blocks) {
    if (blocks < 1 || blocks > per_sm * sms) {
      std::fprintf(stderr, "skipped: %d blocks (1 to %d resident)\n", blocks, per_sm * sms);
      continue;
    }
    for (const bool pdl : {true, false}) {
      const double us = capture_and_time(s, o, [&] {
        for (int st = 0; st < o.stages; ++st) {
          const float* in = buf + (st % 2) * o.n;
          float* out = buf + ((st + 1) % 2) * o.n;
          if (pdl) attn::tiles::launch_pdl(stage_kernel, dim3(blocks), dim3(kThreads), 0, s, in, out, o.n, o.empty);
          else stage_kernel<<<blocks, kThreads, 0, s>>>(in, out, o.n, o.empty);
          CUDA_CHECK_LAUNCH();
        }
      });
      report(pdl ? "pdl" : "graph", blocks, us, o);
    }
    const double grouped = capture_and_time(s, o, [&] {
      persistent_kernel<16><<<blocks, kThreads, 0, s>>>(buf, o.n, o.stages, o.empty, counters);
      CUDA_CHECK_LAUNCH();
    });
    report("persistent_grouped", blocks, grouped, o);
    const double flat = capture_and_time(s, o, [&] {
      persistent_kernel<1><<<blocks, kThreads, 0, s>>>(buf, o.n, o.stages, o.empty, counters);
      CUDA_CHECK_LAUNCH();
    });
    report("persistent_flat", blocks, flat, o);
  }
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaFree(buf));
  CUDA_CHECK(cudaFree(counters));
  return 0;
}
