// What a dropout needs to know, shared by the CPU layers, the attention implementations and
// the CUDA kernels. The rule itself (which elements are dropped, the element index, the sites)
// is stated once in model/dropout_sites.h; the random numbers are core/rng.h's.
#pragma once
#include <cstdint>

#include "core/device_value.h"

namespace attn {

// Identifies a micro-step, so that dropout draws are a pure function of it.
struct StepContext {
  uint64_t seed = 0;
  int64_t step = 0;
  int micro_step = 0;
  bool train = true;  // false: dropout off
  // Data-parallel only (Backend::enable_data_parallel): average the gradients over the ranks
  // after this micro-step's backward. The trainer sets it on the last micro-step of accumulation.
  bool sync_grads = true;
};

// One dropout site of one micro-step: probability p (0: off) and the stream key
// stream_key(seed, step, micro_step, site) its mask is drawn from (model/dropout_sites.h).
// key_at (CUDA graphs only, core/device_value.h): the same key read from device memory.
struct DropoutState {
  float p = 0.0f;
  uint64_t key = 0;
  const uint64_t* key_at = nullptr;
  DeviceValue<uint64_t> device_key() const { return {key, key_at}; }
};

}  // namespace attn
