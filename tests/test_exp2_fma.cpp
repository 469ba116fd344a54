// exp2_fma (kernels/exp2_fma.h), the FMA-pipe 2^x of the soft-capping loops, against the double
// exp2 on a fine sweep of the range the flash kernels feed it ([-125, 8]: a score minus a row
// maximum that may lag by up to 2^8) plus its edges: relative error within the polynomial's
// 7.5e-5 and never negative; -125 gives 2^-125 to that error, anything below it (a masked score's
// -inf) exactly 0 and NaN NaN, as ex2.approx; integers and half-integers (the ends of the reduced
// range) within the same error.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/exp2_fma.h"

namespace {

TEST(Exp2Fma, RelativeErrorWithinThePolynomialsBound) {
  double worst = 0.0;
  for (int i = 0; i <= 1330000; ++i) {  // [-125, 8] in steps of 1e-4
    const float x = static_cast<float>(-125.0 + 1e-4 * i);
    const double want = std::exp2(static_cast<double>(x));
    const double got = attn::exp2_fma(x);
    ASSERT_GT(got, 0.0) << "x = " << x;
    worst = std::max(worst, std::fabs(got - want) / want);
  }
  EXPECT_LT(worst, 7.6e-5);
  EXPECT_GT(worst, 1e-6) << "not the degree-3 polynomial (a test that cannot fail)";
}

TEST(Exp2Fma, IntegersHalvesAndTheClamp) {
  for (int j = -124; j <= 7; ++j) {
    EXPECT_NEAR(attn::exp2_fma(static_cast<float>(j)) / std::exp2(j), 1.0, 7.6e-5) << j;
    EXPECT_NEAR(attn::exp2_fma(j + 0.5f) / std::exp2(j + 0.5), 1.0, 7.6e-5) << j;
    EXPECT_NEAR(attn::exp2_fma(j - 0.5f) / std::exp2(j - 0.5), 1.0, 7.6e-5) << j;
  }
  const float floor_value = attn::exp2_fma(-125.0f);
  EXPECT_NEAR(floor_value / std::exp2(-125.0), 1.0, 7.6e-5);
  EXPECT_EQ(attn::exp2_fma(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(attn::exp2_fma(-1000.0f), 0.0f);
  EXPECT_EQ(attn::exp2_fma(std::nextafter(-125.0f, -200.0f)), 0.0f);
  EXPECT_TRUE(std::isnan(attn::exp2_fma(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_NEAR(attn::exp2_fma(0.0f), 1.0f, 7.6e-5f);
}

}  // namespace
