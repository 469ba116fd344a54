// Offsets of sub-buffers packed into one allocation (device or host), used by the backends'
// allocators and by the attention implementations for their scratch.
#pragma once
#include <cstddef>

namespace attn {

// Lays out several sub-buffers in one allocation (each start 256-byte aligned):
//   ArenaPlan plan; size_t a = plan.add(bytes_a), b = plan.add(bytes_b);
//   char* base = alloc.allocate(plan.bytes(), cat);  ptr_a = base + a; ...
class ArenaPlan {
 public:
  static constexpr size_t kAlign = 256;
  static constexpr size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }
  size_t add(size_t bytes) {
    const size_t off = bytes_;
    bytes_ += aligned(bytes);
    return off;
  }
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_ = 0;
};

}  // namespace attn
