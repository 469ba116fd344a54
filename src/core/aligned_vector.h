// std::vector with 64-byte aligned storage.
//
// Eigen's vectorised kernels peel a few scalar iterations until the data is aligned, so
// the order of a floating-point sum depends on the address of the buffer. With malloc's
// 16-byte alignment two runs could round differently; with every buffer (and every
// tensor inside one, see ParamLayout::kAlign) 64-byte aligned, results are bitwise
// reproducible, which exact resume needs.
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace attn {

template <typename T, std::size_t Align = 64>
struct AlignedAllocator {
  using value_type = T;
  template <typename U>
  struct rebind {
    using other = AlignedAllocator<U, Align>;
  };
  AlignedAllocator() noexcept = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U, Align>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(Align))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t(Align)); }
  template <typename U>
  bool operator==(const AlignedAllocator<U, Align>&) const noexcept { return true; }
};

template <typename T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace attn
