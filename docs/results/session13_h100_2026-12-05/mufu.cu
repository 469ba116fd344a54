// Throughput of the special-function unit's variants on sm_90: cycles per warp instruction per SM.
#include <cstdio>
#include <cuda_runtime.h>
#define OP(name, asmstr, T, C)                                                                   \
  __global__ void name(T* out, T seed, long long* cyc) {                                        \
    T v[8];                                                                                       \
    for (int i = 0; i < 8; ++i) v[i] = seed + (T)(threadIdx.x * 8 + i);                           \
    __syncthreads();                                                                             \
    long long t0 = clock64();                                                                    \
    for (int it = 0; it < 1024; ++it)                                                            \
      _Pragma("unroll") for (int i = 0; i < 8; ++i) asm volatile(asmstr : "+" C(v[i]));           \
    __syncthreads();                                                                             \
    long long t1 = clock64();                                                                    \
    if (threadIdx.x == 0) cyc[blockIdx.x] = t1 - t0;                                             \
    T s = 0; for (int i = 0; i < 8; ++i) s += v[i];                                               \
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;                                               \
  }
OP(ex2_f32, "ex2.approx.ftz.f32 %0, %0;", float, "f")
OP(tanh_f32, "tanh.approx.f32 %0, %0;", float, "f")
OP(ex2_f16x2, "ex2.approx.f16x2 %0, %0;", unsigned, "r")
OP(tanh_f16x2, "tanh.approx.f16x2 %0, %0;", unsigned, "r")
OP(ex2_bf16x2, "ex2.approx.ftz.bf16x2 %0, %0;", unsigned, "r")
OP(tanh_bf16x2, "tanh.approx.bf16x2 %0, %0;", unsigned, "r")
OP(ffma_f32, "fma.rn.f32 %0, %0, %0, %0;", float, "f")
template <class T, class K>
void run(const char* name, K k, T seed) {
  T* out; long long* cyc; cudaMalloc(&out, 132 * 1024 * sizeof(T)); cudaMalloc(&cyc, 132 * sizeof(long long));
  for (int threads : {256, 1024}) {
    k<<<132, threads>>>(out, seed, cyc); cudaDeviceSynchronize();
    long long h[132]; cudaMemcpy(h, cyc, sizeof h, cudaMemcpyDeviceToHost);
    double warp_instr = (threads / 32) * 1024.0 * 8;
    printf("%-12s threads %4d: %.2f cycles per warp instruction per SM (%.1f lanes/clk)\n", name, threads, h[0] / warp_instr,
           32 * warp_instr / h[0]);
  }
  cudaFree(out); cudaFree(cyc);
  if (cudaGetLastError() != cudaSuccess) printf("error\n");
}
int main() {
  run("ex2.f32", ex2_f32, 0.001f);
  run("tanh.f32", tanh_f32, 0.001f);
  run("ex2.f16x2", ex2_f16x2, 0x3c003c00u);
  run("tanh.f16x2", tanh_f16x2, 0x3c003c00u);
  run("ex2.bf16x2", ex2_bf16x2, 0x3f803f80u);
  run("tanh.bf16x2", tanh_bf16x2, 0x3f803f80u);
  run("ffma.f32", ffma_f32, 0.001f);
}
