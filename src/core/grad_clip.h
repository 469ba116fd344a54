// Gradient clipping by the global norm: the factor AdamW multiplies the gradients by.
//   mult = norm > grad_clip > 0 ? grad_clip / norm : 1      (the division in double)
// One function for the host (the trainer's separate calls) and the device (a captured step,
// kernels/global_norm.cu), so both give the same float.
#pragma once
#include "core/host_device.h"

namespace attn {

ATTN_HD float grad_clip_multiplier(float norm, double grad_clip) {
  return grad_clip > 0 && norm > grad_clip ? static_cast<float>(grad_clip / static_cast<double>(norm)) : 1.0f;
}

}  // namespace attn
