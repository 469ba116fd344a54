// The layernorm that writes an fp8 linear's input itself (kernels/fp8_cast.h's
// layernorm_forward_fp8 and residual_layernorm_forward_fp8) against today's two passes: the bf16
// layernorm (kernels.h), then fp8_cast_transpose of its output. Bit for bit: x, x^T, the amax,
// mean, rstd and the residual output.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/fp8_cast.h"
#include "kernels/kernels.h"
#include "test_util.h"

namespace {

using attn::kern::Fp8CastTarget;
using attn::kern::Fp8Format;
using tu::bf16;
using tu::DevBuf;
using tu::Vec;

template <typename T>
std::vector<T> download_raw(const T* dev, size_t n) {
  std::vector<T> h(n);
  CUDA_CHECK(cudaMemcpy(h.data(), dev, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}
template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}
// Elements whose bits differ (the first few positions in `where`).
template <typename T>
size_t count_different(const std::vector<T>& a, const std::vector<T>& b, std::string& where) {
  size_t bad = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0 && bad++ < 4) where += " " + std::to_string(i);
  return bad + (a.size() != b.size());
}

constexpr uint8_t kSentinelRef = 0xA5, kSentinelFused = 0x5A;  // fp8 buffers, filled before each run
constexpr size_t kGuard = 64;                                   // bytes past x and x^T that must stay untouched

// One layernorm's two outputs and statistics (and the residual output), on the device.
struct LnOut {
  DevBuf<uint8_t> q, q_t;
  DevBuf<float> mean, rstd, amax;
  DevBuf<bf16> res_out;
  LnOut(int N, int C)
      : q(static_cast<size_t>(N) * C + kGuard), q_t(static_cast<size_t>(N) * C + kGuard), mean(N), rstd(N), amax(1),
        res_out(static_cast<size_t>(N) * C) {}
  void reset(uint8_t sentinel) {
    CUDA_CHECK(cudaMemset(q.get(), sentinel, q.size()));
    CUDA_CHECK(cudaMemset(q_t.get(), sentinel, q_t.size()));
    CUDA_CHECK(cudaMemset(mean.get(), 0xFF, mean.size() * sizeof(float)));
    CUDA_CHECK(cudaMemset(rstd.get(), 0xFF, rstd.size() * sizeof(float)));
    CUDA_CHECK(cudaMemset(amax.get(), 0, sizeof(float)));
    CUDA_CHECK(cudaMemset(res_out.get(), 0xFF, res_out.size() * sizeof(bf16)));
  }
  Fp8CastTarget target(const float* scale) { return Fp8CastTarget{q.get(), q_t.get(), scale, amax.get()}; }
};

// Every output of `fused` equals `ref`'s bit for bit; the guard bytes past x and x^T are the
// sentinel; the test is not vacuous (x has nonzero bytes, the amax is positive).
void expect_same(LnOut& ref, LnOut& fused, int N, int C, bool residual, const std::string& tag) {
  ASSERT_CUDA(cudaDeviceSynchronize());
  const size_t nc = static_cast<size_t>(N) * C;
  const auto rq = download_raw(ref.q.get(), nc + kGuard), fq = download_raw(fused.q.get(), nc + kGuard);
  const auto rqt = download_raw(ref.q_t.get(), nc + kGuard), fqt = download_raw(fused.q_t.get(), nc + kGuard);
  std::string where;
  EXPECT_EQ(count_different(std::vector<uint8_t>(rq.begin(), rq.begin() + nc),
                            std::vector<uint8_t>(fq.begin(), fq.begin() + nc), where),
            0u)
      << tag << ": x bytes differ at" << where;
  where.clear();
  EXPECT_EQ(count_different(std::vector<uint8_t>(rqt.begin(), rqt.begin() + nc),
                            std::vector<uint8_t>(fqt.begin(), fqt.begin() + nc), where),
            0u)
      << tag << ": x^T bytes differ at" << where;
  for (size_t i = nc; i < nc + kGuard; ++i) {
    EXPECT_EQ(fq[i], kSentinelFused) << tag << ": written past x, byte " << i;
    EXPECT_EQ(fqt[i], kSentinelFused) << tag << ": written past x^T, byte " << i;
  }
  const size_t nonzero = std::count_if(fq.begin(), fq.begin() + nc, [](uint8_t b) { return (b & 0x7F) != 0; });
  EXPECT_GT(nonzero, nc / 2) << tag << ": x mostly zero";
  const auto ra = download_raw(ref.amax.get(), 1), fa = download_raw(fused.amax.get(), 1);
  EXPECT_GT(ra[0], 0.0f) << tag;
  EXPECT_TRUE(same_bits(ra, fa)) << tag << ": amax " << fa[0] << " (two passes: " << ra[0] << ")";
  EXPECT_TRUE(same_bits(download_raw(ref.mean.get(), N), download_raw(fused.mean.get(), N))) << tag << ": mean";
  EXPECT_TRUE(same_bits(download_raw(ref.rstd.get(), N), download_raw(fused.rstd.get(), N))) << tag << ": rstd";
  if (residual) {
    EXPECT_TRUE(same_bits(download_raw(ref.res_out.get(), nc), download_raw(fused.res_out.get(), nc)))
        << tag << ": residual output";
  }
}

// Shapes: N a multiple of 16 but not of the kernel's 32-row tiles (16, 48, 272, 1040: a last tile
// of 16 rows; 1040 also many tiles), C from 64 to the kernel's largest 1024, 80 and 208 not
// multiples of 128 (the shared tile's padded rows). Per shape, scales that move: a small one, one
// where the tails saturate (|y| * scale > 448), then a small one again on the same buffers (the
// scale is read from device memory at run time). Plain and with the residual add and dropout.
TEST(Fp8Layernorm, CastsLikeLayernormThenCastTranspose) {
  SKIP_WITHOUT_GPU();
  struct Shape { int N, C; };
  for (const Shape s : {Shape{16, 64}, Shape{48, 208}, Shape{272, 768}, Shape{1040, 80}, Shape{48, 1024},
                        Shape{1040, 768}}) {
    const int N = s.N, C = s.C;
    const size_t nc = static_cast<size_t>(N) * C;
    ASSERT_TRUE(attn::kern::layernorm_fp8_supports(N, C)) << N << "x" << C;
    DevBuf<bf16> x(tu::random_vec(nc, 7 + N + C, 2.0, 0.5)), branch(tu::random_vec(nc, 11 + N, 1.5));
    DevBuf<bf16> w(tu::random_vec(C, 3 + C, 0.3, 1.0)), b(tu::random_vec(C, 5 + C, 0.2));
    DevBuf<bf16> y(nc);  // the two-pass path's bf16 layernorm output
    LnOut ref(N, C), fused(N, C);
    for (const bool residual : {false, true}) {
      const attn::DropoutState drop{residual ? 0.1f : 0.0f, 0x1234abcdULL + static_cast<uint64_t>(N), nullptr};
      for (const float sc : {3.0f, 400.0f, 17.5f}) {
        const std::string tag = std::to_string(N) + "x" + std::to_string(C) + (residual ? " residual" : "") +
                                " scale " + std::to_string(sc);
        DevBuf<float> scale(Vec{sc});
        ref.reset(kSentinelRef), fused.reset(kSentinelFused);
        if (residual) {
          attn::kern::residual_layernorm_forward(ref.res_out.get(), y.get(), ref.mean.get(), ref.rstd.get(), x.get(),
                                                 branch.get(), w.get(), b.get(), N, C, drop, 0);
          attn::kern::residual_layernorm_forward_fp8(fused.res_out.get(), fused.target(scale.get()), fused.mean.get(),
                                                     fused.rstd.get(), x.get(), branch.get(), w.get(), b.get(), N, C,
                                                     drop, 0);
        } else {
          attn::kern::layernorm_forward(y.get(), ref.mean.get(), ref.rstd.get(), x.get(), w.get(), b.get(), N, C, 0);
          attn::kern::layernorm_forward_fp8(fused.target(scale.get()), fused.mean.get(), fused.rstd.get(), x.get(),
                                            w.get(), b.get(), N, C, 0);
        }
        attn::kern::fp8_cast_transpose(ref.q.get(), ref.q_t.get(), y.get(), N, C, Fp8Format::E4M3, scale.get(),
                                       ref.amax.get(), 0);
        expect_same(ref, fused, N, C, residual, tag);
        if (sc == 400.0f) {  // the tails saturate: +-448 (0x7E / 0xFE), never NaN (0x7F / 0xFF)
          const auto fq = download_raw(fused.q.get(), nc);
          EXPECT_GT(std::count_if(fq.begin(), fq.end(), [](uint8_t v) { return (v & 0x7F) == 0x7E; }), 0) << tag;
          EXPECT_EQ(std::count_if(fq.begin(), fq.end(), [](uint8_t v) { return (v & 0x7F) == 0x7F; }), 0) << tag;
        }
      }
    }
  }
}

// The amax is max(*amax, max |y|): a larger value already there stays, a smaller one is raised
// to the two-pass path's.
TEST(Fp8Layernorm, AmaxFoldsIntoThePreviousValue) {
  SKIP_WITHOUT_GPU();
  const int N = 48, C = 208;
  const size_t nc = static_cast<size_t>(N) * C;
  DevBuf<bf16> x(tu::random_vec(nc, 31, 1.0)), w(tu::random_vec(C, 32, 0.3, 1.0)), b(tu::random_vec(C, 33, 0.2));
  DevBuf<float> scale(Vec{8.0}), mean(N), rstd(N);
  DevBuf<uint8_t> q(nc), q_t(nc);
  DevBuf<float> amax(Vec{0.0, 0.0, 1e6, 1e-3});  // [fresh, fresh again, larger, smaller]
  for (int i = 0; i < 4; ++i)
    attn::kern::layernorm_forward_fp8(Fp8CastTarget{q.get(), q_t.get(), scale.get(), amax.get() + i}, mean.get(),
                                      rstd.get(), x.get(), w.get(), b.get(), N, C, 0);
  const Vec a = amax.download();
  EXPECT_GT(a[0], 1.0) << "a layernorm output with w ~ 1 has |y| > 1 somewhere";
  EXPECT_EQ(a[1], a[0]) << "the same input, the same amax";
  EXPECT_EQ(a[2], 1e6) << "a larger amax stays";
  EXPECT_EQ(a[3], a[0]) << "a smaller amax is raised";
}

// Shapes the kernel does not take are refused (the backend then keeps the two passes).
TEST(Fp8Layernorm, RefusesShapesOutsideTheKernel) {
  SKIP_WITHOUT_GPU();
  EXPECT_TRUE(attn::kern::layernorm_fp8_supports(16, 64));
  EXPECT_TRUE(attn::kern::layernorm_fp8_supports(16, 1024));
  EXPECT_FALSE(attn::kern::layernorm_fp8_supports(24, 64)) << "rows not a multiple of 16";
  EXPECT_FALSE(attn::kern::layernorm_fp8_supports(16, 1280)) << "a row longer than the registers hold";
  EXPECT_FALSE(attn::kern::layernorm_fp8_supports(16, 68)) << "C not a multiple of 8";
  DevBuf<bf16> x(24 * 64), w(64), b(64);
  DevBuf<float> scale(Vec{1.0}), amax(1), mean(24), rstd(24);
  DevBuf<uint8_t> q(24 * 64), q_t(24 * 64);
  EXPECT_THROW(attn::kern::layernorm_forward_fp8(Fp8CastTarget{q.get(), q_t.get(), scale.get(), amax.get()},
                                                 mean.get(), rstd.get(), x.get(), w.get(), b.get(), 24, 64, 0),
               attn::Error);
}

}  // namespace
