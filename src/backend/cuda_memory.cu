#include "backend/cuda_memory.h"

#include <algorithm>

#include "core/cuda_check.h"
#include "core/error.h"

namespace attn {

const char* mem_category_name(MemCategory c) {
  switch (c) {
    case MemCategory::Parameters: return "parameters";
    case MemCategory::Gradients: return "gradients";
    case MemCategory::Optimizer: return "optimizer";
    case MemCategory::Activations: return "activations";
    case MemCategory::Attention: return "attention";
    case MemCategory::Workspace: return "workspace";
    case MemCategory::KVCache: return "kv_cache";
  }
  return "?";
}

std::string format_bytes(size_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024 * 1024) return fmt::format("{:.1f} TiB", b / (1024.0 * 1024 * 1024 * 1024));
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.1f} GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt::format("{:.1f} MiB", b / (1024.0 * 1024));
  if (b >= 1024.0) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{} B", bytes);
}

CudaAllocator::~CudaAllocator() {
  for (auto& [ptr, block] : blocks_) cudaFree(ptr);  // no throwing from a destructor
}

void* CudaAllocator::allocate(size_t bytes, MemCategory cat) {
  if (bytes == 0) bytes = ArenaPlan::kAlign;  // a valid, unique pointer
  void* ptr = nullptr;
  const cudaError_t err = cudaMalloc(&ptr, bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it so the next launch check does not see it
    std::string used;
    for (int c = 0; c < kNumMemCategories; ++c) {
      if (in_use_[c] == 0) continue;
      used += fmt::format("{}{} {}", used.empty() ? "" : ", ", mem_category_name(static_cast<MemCategory>(c)),
                          format_bytes(in_use_[c]));
    }
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail("out of GPU memory allocating {} for {} (in use: {}; device: {} free of {}); "
         "try a smaller training.batch_size or attention.impl = \"flash\"",
         format_bytes(bytes), mem_category_name(cat), used.empty() ? "nothing" : used, format_bytes(free_b),
         format_bytes(total_b));
  }
  CUDA_CHECK(err);
  blocks_[ptr] = Block{bytes, cat};
  const int c = static_cast<int>(cat);
  in_use_[c] += bytes;
  peak_[c] = std::max(peak_[c], in_use_[c]);
  total_ += bytes;
  total_peak_ = std::max(total_peak_, total_);
  return ptr;
}

void CudaAllocator::release(void* ptr) {
  if (ptr == nullptr) return;
  auto it = blocks_.find(ptr);
  ATTN_CHECK(it != blocks_.end(), "CudaAllocator::release: pointer was not allocated here");
  in_use_[static_cast<int>(it->second.cat)] -= it->second.bytes;
  total_ -= it->second.bytes;
  blocks_.erase(it);
  CUDA_CHECK(cudaFree(ptr));
}

MemoryReport CudaAllocator::report() const {
  MemoryReport r;
  for (int c = 0; c < kNumMemCategories; ++c)
    r.categories.push_back({mem_category_name(static_cast<MemCategory>(c)), in_use_[c], peak_[c]});
  r.total_peak = total_peak_;
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) r.device_used = total_b - free_b;
  else cudaGetLastError();
  return r;
}

}  // namespace attn
