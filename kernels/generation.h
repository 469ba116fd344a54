// Small kernels of cached generation (kernels/generation.cu): per-sequence positions that
// live on the device, so one captured decode step (CUDA graph) serves every step.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace attn::kern {

// The start of a decode step, one kernel (one token per sequence b):
//   positions[b] = lengths[b];  lengths[b] += 1;
//   out[b, :] = wte[tokens[b], :] + wpe[positions[b], :]   (the sum in fp32, rounded once)
template <typename T>
void start_decode_step(T* out, int32_t* positions, int32_t* lengths, const int32_t* tokens, const T* wte, const T* wpe,
                       int B, int C, cudaStream_t stream);

// out[b, :] = x[b, lengths[b] - 1, :]   for x (B, seq, C): each prompt's last position
template <typename T>
void gather_last_rows(T* out, const T* x, const int32_t* lengths, int B, int seq, int C, cudaStream_t stream);

// next[b] = argmax_v logits[b, v] over v < V, the first index among equal maxima (as
// std::max_element): greedy decoding on the device, so a step returns B ids, not (B, V) floats.
void argmax_rows(int32_t* next, const float* logits, int B, int V, cudaStream_t stream);

}  // namespace attn::kern
