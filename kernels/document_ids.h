// Document ids for attention.document_mask, computed on the device from the batch's tokens.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace attn::kern {

// doc[b, t] = number of eot tokens among inputs[b, 0..t-1]   (the CPU reference's rule,
// attention/cpu_attention.cpp); non-decreasing along each row. inputs, doc: (B, T) int32.
void document_ids(int32_t* doc, const int32_t* inputs, int B, int T, int32_t eot, cudaStream_t stream);

}  // namespace attn::kern
