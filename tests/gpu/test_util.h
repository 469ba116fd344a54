// Helpers for the GPU tests: device buffers, random inputs rounded to the device dtype,
// relative errors, and the skip-without-GPU guard every test starts with.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <type_traits>
#include <vector>

#include "backend/cuda_backend.h"
#include "core/cuda_check.h"
#include "core/dtype.h"

#define SKIP_WITHOUT_GPU() \
  if (attn::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"

// A CUDA runtime call that must succeed inside a test (a failed assertion, not an exception).
#define ASSERT_CUDA(x) ASSERT_EQ((x), cudaSuccess) << #x << ": " << cudaGetErrorString(cudaGetLastError())

namespace tu {

using bf16 = __nv_bfloat16;
using Vec = std::vector<double>;

template <typename T>
constexpr attn::DType dtype_of() { return std::is_same_v<T, float> ? attn::DType::F32 : attn::DType::BF16; }
template <typename T>
constexpr double tol() { return std::is_same_v<T, float> ? 1e-5 : 1e-2; }
template <typename T>
const char* type_name() { return std::is_same_v<T, float> ? "fp32" : "bf16"; }

template <typename T>
inline T to_t(double x) {
  if constexpr (std::is_same_v<T, bf16>) return __float2bfloat16_rn(static_cast<float>(x));
  else return static_cast<T>(x);
}
template <typename T>
inline double from_t(T x) {
  if constexpr (std::is_same_v<T, bf16>) return static_cast<double>(__bfloat162float(x));
  else return static_cast<double>(x);
}
// x rounded to what a T holds (the reference then sees exactly the device's input).
template <typename T>
inline Vec rounded(const Vec& x) {
  Vec out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = from_t<T>(to_t<T>(x[i]));
  return out;
}

inline Vec random_vec(size_t n, uint64_t seed, double scale = 1.0, double offset = 0.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  Vec v(n);
  for (double& x : v) x = offset + scale * dist(gen);
  return v;
}

template <typename T>
class DevBuf {
 public:
  explicit DevBuf(size_t n) : n_(n) { CUDA_CHECK(cudaMalloc(&p_, std::max<size_t>(n, 1) * sizeof(T))); }
  explicit DevBuf(const Vec& host) : DevBuf(host.size()) { upload(host); }
  explicit DevBuf(const std::vector<int32_t>& host) : DevBuf(host.size()) {
    static_assert(std::is_same_v<T, int32_t>);
    CUDA_CHECK(cudaMemcpy(p_, host.data(), n_ * sizeof(int32_t), cudaMemcpyHostToDevice));
  }
  ~DevBuf() { cudaFree(p_); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const Vec& host) {
    std::vector<T> h(n_);
    for (size_t i = 0; i < n_; ++i) h[i] = to_t<T>(host[i]);
    CUDA_CHECK(cudaMemcpy(p_, h.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  Vec download() const {
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> h(n_);
    CUDA_CHECK(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    Vec out(n_);
    for (size_t i = 0; i < n_; ++i) out[i] = from_t<T>(h[i]);
    return out;
  }

 private:
  T* p_ = nullptr;
  size_t n_;
};

// ||out - ref|| / ||ref||  (absolute norm when ref is all zero)
inline double rel_err(const Vec& out, const Vec& ref) {
  double num = 0.0, den = 0.0;
  const size_t n = std::min(out.size(), ref.size());
  for (size_t i = 0; i < n; ++i) {
    num += (out[i] - ref[i]) * (out[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  if (out.size() != ref.size()) return INFINITY;
  return den > 0.0 ? std::sqrt(num / den) : std::sqrt(num);
}

// EXPECT rel_err <= tol and print the value (the run log is the report).
#define EXPECT_REL(out, ref, tolerance, what)                                                     \
  do {                                                                                           \
    const double e_ = ::tu::rel_err((out), (ref));                                               \
    std::printf("    [rel] %-40s %.3e (tol %.0e)\n", std::string(what).c_str(), e_, (double)(tolerance)); \
    EXPECT_LE(e_, (tolerance)) << (what);                                                        \
  } while (0)

}  // namespace tu
