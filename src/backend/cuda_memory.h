// Device memory you can account for: every allocation carries a category; the allocator
// tracks bytes in use and the peak per category and in total, and turns an allocation
// failure into an attn::Error that says what did not fit:
//
//   out of GPU memory allocating 1.2 GiB for activations (in use: parameters 474.7 MiB,
//   ...; device: 3.1 GiB free of 79.1 GiB); try a smaller training.batch_size or
//   attention.impl = "flash"
#pragma once
#include <array>
#include <cstddef>
#include <string>
#include <unordered_map>

#include "backend/backend.h"
#include "core/arena_plan.h"

namespace attn {

enum class MemCategory { Parameters, Gradients, Optimizer, Activations, Attention, Workspace, KVCache };
constexpr int kNumMemCategories = 7;
const char* mem_category_name(MemCategory c);  // "parameters", ... (lower case)

std::string format_bytes(size_t bytes);  // "1.2 GiB", "34.0 MiB", "512 B"

class CudaAllocator {
 public:
  CudaAllocator() = default;
  CudaAllocator(const CudaAllocator&) = delete;
  CudaAllocator& operator=(const CudaAllocator&) = delete;
  ~CudaAllocator();  // frees whatever is still allocated

  // cudaMalloc, 256-byte aligned; throws attn::Error when the device is full.
  void* allocate(size_t bytes, MemCategory cat);
  template <typename T>
  T* allocate_n(size_t n, MemCategory cat) { return static_cast<T*>(allocate(n * sizeof(T), cat)); }
  void release(void* ptr);

  size_t in_use(MemCategory c) const { return in_use_[static_cast<int>(c)]; }
  size_t peak(MemCategory c) const { return peak_[static_cast<int>(c)]; }
  size_t total_in_use() const { return total_; }
  size_t total_peak() const { return total_peak_; }
  // Per-category bytes and peaks, plus what cudaMemGetInfo says is used on the device.
  MemoryReport report() const;

 private:
  struct Block { size_t bytes; MemCategory cat; };
  std::unordered_map<void*, Block> blocks_;
  std::array<size_t, kNumMemCategories> in_use_{}, peak_{};
  size_t total_ = 0, total_peak_ = 0;
};

}  // namespace attn
