// Finite-difference gradient checking helpers shared by the CPU model and attention tests.
//
// Derivatives are central differences of order 4 (five-point stencil), in float64:
//   f'(x) ~ (f(x-2h) - 8 f(x-h) + 8 f(x+h) - f(x+2h)) / (12 h),   h = kFdStep = 2e-4
// (truncation O(h^4), rounding ~1e-16 |f| / h; measured absolute errors ~1e-11).
// Error of an analytic value a against the numeric one n, within a tensor whose analytic
// gradient g has largest magnitude |g|max:
//   rel(a, n) = |a - n| / max(|a| + |n|, floor),   floor = max(1e-3 |g|max, 1e-8)
// The floor keeps exact zeros (a masked key, the softmax-invariant key bias) and tiny
// near-cancellations, whose numeric value is rounding noise of ~1e-11 |g|max, from
// reading as O(1) errors; anything larger than 1e-3 of the tensor's scale is compared
// plainly. A check passes when the largest rel over the checked elements is <= 1e-6.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace attn::testing {

inline constexpr double kFdStep = 2e-4;
inline constexpr double kFdFloorRel = 1e-3;
inline constexpr double kFdFloorMin = 1e-8;
inline constexpr double kFdTol = 1e-6;

inline double rel_err(double a, double n, double floor) { return std::abs(a - n) / std::max(std::abs(a) + std::abs(n), floor); }

// d f / d x at the current value of *x (restored afterwards).
template <typename F>
double numeric_derivative(double* x, F&& f, double h = kFdStep) {
  const double x0 = *x;
  auto at = [&](double d) {
    *x = x0 + d;
    return static_cast<double>(f());
  };
  const double fm2 = at(-2 * h), fm1 = at(-h), fp1 = at(h), fp2 = at(2 * h);
  *x = x0;
  return (fm2 - 8 * fm1 + 8 * fp1 - fp2) / (12 * h);
}

inline std::string fmt_g(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.6e", x);
  return b;
}

struct FdResult {
  double max_rel = 0, max_abs = 0;
  int checked = 0;
  std::string worst;  // where the largest error occurred
  void add(double a, double n, double floor, const std::string& what) {
    const double r = rel_err(a, n, floor);
    ++checked;
    max_abs = std::max(max_abs, std::abs(a - n));
    if (r >= max_rel) {
      max_rel = r;
      worst = what + " analytic=" + fmt_g(a) + " numeric=" + fmt_g(n);
    }
  }
  void merge(const FdResult& o) {
    checked += o.checked;
    max_abs = std::max(max_abs, o.max_abs);
    if (o.max_rel >= max_rel) max_rel = o.max_rel, worst = o.worst;
  }
};

// Checks analytic[i] against d f/d x[i] for the indices given (all when empty); the
// floor comes from all n analytic values (the whole tensor).
template <typename F>
FdResult check_gradient(double* x, const double* analytic, size_t n, F&& f, const std::string& name,
                        std::vector<size_t> indices = {}) {
  if (indices.empty())
    for (size_t i = 0; i < n; ++i) indices.push_back(i);
  double gmax = 0;
  for (size_t i = 0; i < n; ++i) gmax = std::max(gmax, std::abs(analytic[i]));
  const double floor = std::max(kFdFloorRel * gmax, kFdFloorMin);
  FdResult r;
  for (size_t i : indices)
    r.add(analytic[i], numeric_derivative(x + i, f), floor, name + "[" + std::to_string(i) + "]");
  return r;
}

inline std::vector<size_t> random_indices(std::mt19937_64& rng, size_t n, size_t k) {
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(std::min(n, k));
  return all;
}

inline std::vector<double> randn(std::mt19937_64& rng, size_t n, double stddev = 1.0, double mean = 0.0) {
  std::normal_distribution<double> d(mean, stddev);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// A fresh seed per run (printed by the tests so a failure can be replayed with ATTN_TEST_SEED).
inline uint64_t test_seed() {
  if (const char* s = std::getenv("ATTN_TEST_SEED")) return std::stoull(s);
  return std::random_device{}();
}

}  // namespace attn::testing
