// A kernel argument that is either a value fixed at launch or read from device memory when the
// kernel runs. A captured CUDA graph keeps its kernels' arguments as they were at capture; what
// changes from step to step (dropout keys, the loss scale, the learning rate, the clip factor)
// is passed as `at`, a device address the host rewrites before each replay. The same kernel
// then computes the same thing either way (bit-exact), only where the number comes from differs.
#pragma once
#include "core/host_device.h"

namespace attn {

template <typename V>
struct DeviceValue {
  V value{};
  const V* at = nullptr;  // device memory; read by the kernel when set
  ATTN_HD constexpr DeviceValue(V v = V{}, const V* a = nullptr) : value(v), at(a) {}  // NOLINT: implicit from V
  ATTN_HD V get() const { return at != nullptr ? *at : value; }
};

}  // namespace attn
