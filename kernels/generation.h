// Small kernels of cached generation (kernels/generation.cu): per-sequence positions that
// live on the device, so one captured decode step (CUDA graph) serves every step.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace attn::kern {

// The start of a decode step, one kernel (one token per sequence b):
//   positions[b] = lengths[b];  lengths[b] += 1;
//   out[b, :] = wte[tokens[b], :] + wpe[positions[b], :]   (the sum in fp32, rounded once)
//   fed[b * fed_stride + positions[b]] = tokens[b]   (the tokens a run of steps was fed, when each
//     step's tokens are the step before's argmax on the device: Generator::decode_greedy_steps)
template <typename T>
void start_decode_step(T* out, int32_t* positions, int32_t* lengths, const int32_t* tokens, int32_t* fed, int fed_stride,
                       const T* wte, const T* wpe, int B, int C, cudaStream_t stream);

// out[b, :] = x[b, lengths[b] - 1, :]   for x (B, seq, C): each prompt's last position
template <typename T>
void gather_last_rows(T* out, const T* x, const int32_t* lengths, int B, int seq, int C, cudaStream_t stream);

// The logits of a decode step (logits (B, Vp), the vocabulary's V columns used), in one pass:
//   out[b, v] = float(logits[b * Vp + v]) for v < V   (when out is not null)
//   next[b]   = argmax_v logits[b, v], the first index among equal maxima (as std::max_element),
//               NaNs skipped, 0 when a row has none: greedy decoding on the device, so a step
//               returns B ids, not (B, V) floats.
// scratch: argmax_scratch_bytes(B) on the device, zeroed once by the caller; zero again after
// every call (graph-safe; kernels/grid_argmax.cuh).
template <typename T>
void logits_argmax(int32_t* next, float* out, const T* logits, int B, int V, int Vp, unsigned long long* scratch,
                   cudaStream_t stream);
size_t argmax_scratch_bytes(int rows);

}  // namespace attn::kern
