// Each kernel against the float64 reference, fp32 and bf16, on sizes that are not
// multiples of any tile or pack (B=3, T=77, C=72 or 37, V=101 padded to 128).
#include <algorithm>
#include <numeric>
#include <random>
#include <string>
#include <tuple>

#include "core/error.h"
#include "kernels/kernels.h"
#include "reference.h"
#include "test_util.h"

namespace {

using tu::DevBuf;
using tu::Vec;

template <typename T>
class Kernels : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(Kernels, Types);

constexpr int B = 3, T_ = 77, V = 101, Vp = 128;

std::vector<int32_t> random_tokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(g() % vocab);
  return t;
}

TYPED_TEST(Kernels, EncoderForwardBackward) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  // captured: the layout padded to min(N, V) buckets and the dropout key read from device
  // memory (a wrong value in the argument), as a captured training step launches them
  for (bool captured : {false, true})
  for (int C : {72, 37}) {
    for (double p : {0.0, 0.2}) {
      const int N = B * T_;
      const uint64_t key = 12345;
      const auto tok = random_tokens(N, V, 1);
      const Vec wte = tu::rounded<T>(tu::random_vec(static_cast<size_t>(Vp) * C, 2));
      const Vec wpe = tu::rounded<T>(tu::random_vec(static_cast<size_t>(T_) * C, 3));
      const Vec dout = tu::rounded<T>(tu::random_vec(static_cast<size_t>(N) * C, 4));
      Vec dwte = tu::random_vec(wte.size(), 5), dwpe = tu::random_vec(wpe.size(), 6);  // accumulated into
      DevBuf<T> d_wte(wte), d_wpe(wpe), d_out(static_cast<size_t>(N) * C), d_dout(dout);
      DevBuf<int32_t> d_tok(tok);
      DevBuf<float> d_dwte(dwte), d_dwpe(dwpe);
      DevBuf<uint64_t> d_key(1);
      ASSERT_CUDA(cudaMemcpy(d_key.get(), &key, sizeof(key), cudaMemcpyHostToDevice));
      const attn::DropoutState drop = captured ? attn::DropoutState{static_cast<float>(p), key + 1, d_key.get()}
                                               : attn::DropoutState{static_cast<float>(p), key};
      attn::kern::encoder_forward(d_out.get(), d_tok.get(), d_wte.get(), d_wpe.get(), B, T_, C, drop, 0);
      std::vector<int32_t> buckets;
      const int nb = attn::kern::build_token_buckets(tok.data(), N, V, buckets, captured ? std::min(N, V) : 0);
      if (captured) {
        EXPECT_EQ(nb, std::min(N, V));
      }
      DevBuf<int32_t> d_buckets(buckets);
      attn::kern::encoder_backward(d_dwte.get(), d_dwpe.get(), d_dout.get(), d_buckets.get(), nb, B, T_, C, drop, 0);
      Vec out;
      ref::encoder_forward(out, tok, wte, wpe, B, T_, C, p, key);
      ref::encoder_backward(dwte, dwpe, dout, tok, B, T_, C, p, key);
      const std::string tag = " C=" + std::to_string(C) + " p=" + std::to_string(p) + (captured ? " captured" : "");
      EXPECT_REL(d_out.download(), out, tu::tol<T>(), "encoder out" + tag);
      EXPECT_REL(d_dwte.download(), dwte, 1e-5, "encoder dwte (fp32 acc)" + tag);
      EXPECT_REL(d_dwpe.download(), dwpe, 1e-5, "encoder dwpe (fp32 acc)" + tag);
    }
  }
}

// The host bucket layout (a counting sort) against a stable sort of the positions by token, on
// fresh random tokens: tiny and large vocabularies, one token, all positions one token. Host
// code only: runs without a GPU.
TEST(TokenBuckets, EqualAStableSortByToken) {
  std::mt19937 rng(std::random_device{}());
  const std::pair<int, int> cases[] = {{1, 1}, {1, 50257}, {17, 1}, {4099, 3}, {16384, 50257}, {1000, 65}};
  for (auto [N, vocab] : cases) {
    std::vector<int32_t> tok(N);
    for (auto& t : tok) t = static_cast<int32_t>(rng() % vocab);
    std::vector<int32_t> order(N), expected;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return tok[a] < tok[b]; });
    std::vector<int32_t> toks, starts;
    for (int k = 0; k < N; ++k)
      if (k == 0 || tok[order[k]] != tok[order[k - 1]]) toks.push_back(tok[order[k]]), starts.push_back(k);
    starts.push_back(N);
    expected = toks;
    expected.insert(expected.end(), starts.begin(), starts.end());
    expected.insert(expected.end(), order.begin(), order.end());
    std::vector<int32_t> got = {-7};  // stale content must be replaced
    const int nb = attn::kern::build_token_buckets(tok.data(), N, vocab, got);
    EXPECT_EQ(nb, static_cast<int>(toks.size())) << "N=" << N << " vocab=" << vocab;
    EXPECT_EQ(got, expected) << "N=" << N << " vocab=" << vocab;
  }
}

// C = 72: the register fast path (a multiple of the pack), C = 37: the generic kernels;
// C = 1024: the largest row the fast path keeps in registers, 1032 (bf16: the generic path).
// N = 4099: more rows than backward warps, so warps sum several rows into their registers.
// The backward adds into dinp and the parameter gradients, or (add_dinp / add_params false)
// writes them over buffers that hold garbage, as the first backward of a step does.
TYPED_TEST(Kernels, LayerNormForwardBackward) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const std::pair<int, int> shapes[] = {{B * T_, 72}, {B * T_, 37}, {4099, 72}, {515, 1024}, {67, 1032}};
  const std::pair<bool, bool> modes[] = {{true, true}, {false, false}, {true, false}};
  for (auto [N, C] : shapes) {
    for (auto [add_dinp, add_params] : modes) {
      const Vec x = tu::rounded<T>(tu::random_vec(static_cast<size_t>(N) * C, 10, 2.0, 0.5));
      const Vec w = tu::rounded<T>(tu::random_vec(C, 11, 0.3, 1.0)), b = tu::rounded<T>(tu::random_vec(C, 12, 0.1));
      const Vec dout = tu::rounded<T>(tu::random_vec(static_cast<size_t>(N) * C, 13));
      const Vec dx0 = tu::rounded<T>(tu::random_vec(dout.size(), 14)), dw0 = tu::random_vec(C, 15),
                db0 = tu::random_vec(C, 16);
      DevBuf<T> d_x(x), d_w(w), d_b(b), d_out(x.size()), d_dout(dout), d_dx(dx0);
      DevBuf<float> d_mean(N), d_rstd(N), d_dw(dw0), d_db(db0);
      DevBuf<float> scratch(attn::kern::layernorm_backward_scratch_floats(N, C));
      attn::kern::layernorm_forward(d_out.get(), d_mean.get(), d_rstd.get(), d_x.get(), d_w.get(), d_b.get(), N, C, 0);
      attn::kern::layernorm_backward(d_dx.get(), d_dw.get(), d_db.get(), scratch.get(), d_dout.get(), d_x.get(),
                                     d_w.get(), d_mean.get(), d_rstd.get(), N, C, add_dinp, add_params, 0);
      Vec out, mean, rstd;
      Vec dx = add_dinp ? dx0 : Vec(dx0.size(), 0.0);
      Vec dw = add_params ? dw0 : Vec(C, 0.0), db = add_params ? db0 : Vec(C, 0.0);
      ref::layernorm_forward(out, mean, rstd, x, w, b, N, C);
      ref::layernorm_backward(dx, dw, db, dout, x, w, N, C);
      const std::string tag = " N=" + std::to_string(N) + " C=" + std::to_string(C) +
                              " add_dinp=" + std::to_string(add_dinp) + " add_params=" + std::to_string(add_params);
      EXPECT_REL(d_out.download(), out, tu::tol<T>(), "layernorm out" + tag);
      EXPECT_REL(d_mean.download(), mean, 1e-5, "layernorm mean" + tag);
      EXPECT_REL(d_rstd.download(), rstd, 1e-5, "layernorm rstd" + tag);
      EXPECT_REL(d_dx.download(), dx, tu::tol<T>(), "layernorm dinp" + tag);
      EXPECT_REL(d_dw.download(), dw, 1e-5, "layernorm dweight" + tag);
      EXPECT_REL(d_db.download(), db, 1e-5, "layernorm dbias" + tag);
    }
  }
}

// residual_layernorm_forward == residual_forward then layernorm_forward, checked against the
// float64 reference of both (the residual rounded to T before it is normalised), with dropout.
TYPED_TEST(Kernels, ResidualLayerNormForward) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  for (int C : {72, 37}) {
    for (double p : {0.0, 0.2}) {
      const int N = B * T_ + 2;
      const size_t n = static_cast<size_t>(N) * C;
      const uint64_t key = attn::dropout_site::key(3, 9, 0, attn::dropout_site::attention_branch(1));
      const Vec res = tu::rounded<T>(tu::random_vec(n, 90, 2.0, 0.5)), br = tu::rounded<T>(tu::random_vec(n, 91));
      const Vec w = tu::rounded<T>(tu::random_vec(C, 92, 0.3, 1.0)), b = tu::rounded<T>(tu::random_vec(C, 93, 0.1));
      DevBuf<T> d_res(res), d_br(br), d_w(w), d_b(b), d_sum(n), d_out(n);
      DevBuf<float> d_mean(N), d_rstd(N);
      attn::kern::residual_layernorm_forward(d_sum.get(), d_out.get(), d_mean.get(), d_rstd.get(), d_res.get(),
                                             d_br.get(), d_w.get(), d_b.get(), N, C,
                                             attn::DropoutState{static_cast<float>(p), key}, 0);
      Vec sum(n);
      for (size_t i = 0; i < n; ++i) sum[i] = res[i] + br[i] * ref::drop_mult(key, i, p);
      const Vec sum_t = tu::rounded<T>(sum);
      Vec out, mean, rstd;
      ref::layernorm_forward(out, mean, rstd, sum_t, w, b, N, C);
      const std::string tag = " C=" + std::to_string(C) + " p=" + std::to_string(p);
      EXPECT_REL(d_sum.download(), sum, tu::tol<T>(), "fused residual" + tag);
      EXPECT_REL(d_out.download(), out, tu::tol<T>(), "fused layernorm out" + tag);
      EXPECT_REL(d_mean.download(), mean, 1e-5, "fused layernorm mean" + tag);
      EXPECT_REL(d_rstd.download(), rstd, 1e-5, "fused layernorm rstd" + tag);
    }
  }
}

// residual_layernorm_forward_split_k: the branch summed from fp32 split-K partials plus its bias
// and rounded to T, then the residual (rounded) and its layernorm, against float64; the decode
// step's shapes (C = 768, 32 and 1 rows, 6 slices) and smaller odd ones; C off the pack refused.
TYPED_TEST(Kernels, ResidualLayerNormForwardSplitK) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const std::tuple<int, int, int> shapes[] = {{32, 768, 6}, {1, 768, 6}, {5, 72, 3}, {33, 1024, 1}};
  for (const auto& [N, C, S] : shapes) {
    const size_t n = static_cast<size_t>(N) * C;
    const Vec parts = tu::random_vec(n * S, 95, 0.7), bb = tu::rounded<T>(tu::random_vec(C, 96, 0.5));
    const Vec res = tu::rounded<T>(tu::random_vec(n, 97, 2.0, 0.5));
    const Vec w = tu::rounded<T>(tu::random_vec(C, 98, 0.3, 1.0)), b = tu::rounded<T>(tu::random_vec(C, 99, 0.1));
    DevBuf<float> d_parts(parts), d_mean(N), d_rstd(N);
    DevBuf<T> d_bb(bb), d_res(res), d_w(w), d_b(b), d_sum(n), d_out(n);
    attn::kern::residual_layernorm_forward_split_k(d_sum.get(), d_out.get(), d_mean.get(), d_rstd.get(), d_res.get(),
                                                   d_parts.get(), S, d_bb.get(), d_w.get(), d_b.get(), N, C, 0);
    Vec branch(n), sum(n);
    for (size_t i = 0; i < n; ++i) {
      double acc = 0.0;
      for (int s = 0; s < S; ++s) acc += parts[s * n + i];
      branch[i] = acc + bb[i % C];
    }
    const Vec branch_t = tu::rounded<T>(branch);
    for (size_t i = 0; i < n; ++i) sum[i] = res[i] + branch_t[i];
    Vec out, mean, rstd;
    ref::layernorm_forward(out, mean, rstd, tu::rounded<T>(sum), w, b, N, C);
    const std::string tag = " N=" + std::to_string(N) + " C=" + std::to_string(C) + " splits=" + std::to_string(S);
    EXPECT_REL(d_sum.download(), sum, tu::tol<T>(), "split-K residual" + tag);
    EXPECT_REL(d_out.download(), out, tu::tol<T>(), "split-K layernorm out" + tag);
    EXPECT_REL(d_mean.download(), mean, 1e-5, "split-K layernorm mean" + tag);
    EXPECT_REL(d_rstd.download(), rstd, 1e-5, "split-K layernorm rstd" + tag);
  }
  DevBuf<float> d_parts(64), d_mean(1), d_rstd(1);
  DevBuf<T> d_v(64);
  EXPECT_THROW(attn::kern::residual_layernorm_forward_split_k(d_v.get(), d_v.get(), d_mean.get(), d_rstd.get(), d_v.get(),
                                                              d_parts.get(), 2, d_v.get(), d_v.get(), d_v.get(), 1, 37, 0),
               attn::Error);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

TYPED_TEST(Kernels, Gelu) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const size_t n = static_cast<size_t>(B) * T_ * 37;  // not a multiple of the pack
  const Vec x = tu::rounded<T>(tu::random_vec(n, 20, 2.0));
  const Vec d = tu::rounded<T>(tu::random_vec(n, 21));
  DevBuf<T> d_x(x), d_y(n), d_d(d);
  attn::kern::gelu_forward(d_y.get(), d_x.get(), n, 0);
  attn::kern::gelu_backward_inplace(d_d.get(), d_x.get(), n, 0);
  Vec y(n), dd(n);
  for (size_t i = 0; i < n; ++i) y[i] = ref::gelu(x[i]), dd[i] = d[i] * ref::gelu_grad(x[i]);
  EXPECT_REL(d_y.download(), y, tu::tol<T>(), "gelu");
  EXPECT_REL(d_d.download(), dd, tu::tol<T>(), "gelu backward");
}

TYPED_TEST(Kernels, ResidualAndDropout) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const size_t n = static_cast<size_t>(B) * T_ * 37;
  const Vec r = tu::rounded<T>(tu::random_vec(n, 30)), x = tu::rounded<T>(tu::random_vec(n, 31));
  for (double p : {0.0, 0.3}) {
    const uint64_t key = attn::dropout_site::key(7, 3, 1, attn::dropout_site::mlp_branch(2));
    const attn::DropoutState drop{static_cast<float>(p), key};
    DevBuf<T> d_r(r), d_x(x), d_out(n), d_drop(n);
    attn::kern::residual_forward(d_out.get(), d_r.get(), d_x.get(), n, drop, 0);
    attn::kern::dropout_apply(d_drop.get(), d_x.get(), n, drop, 0);
    Vec out(n), dropped(n);
    size_t kept = 0;
    for (size_t i = 0; i < n; ++i) {
      const double m = ref::drop_mult(key, i, p);
      out[i] = r[i] + x[i] * m, dropped[i] = x[i] * m;
      kept += m != 0.0;
    }
    const std::string tag = " p=" + std::to_string(p);
    EXPECT_REL(d_out.download(), out, tu::tol<T>(), "residual + dropout" + tag);
    EXPECT_REL(d_drop.download(), dropped, tu::tol<T>(), "dropout" + tag);
    if (p > 0) {
      EXPECT_NEAR(static_cast<double>(kept) / n, 1.0 - p, 0.02);
    }
  }
}

TYPED_TEST(Kernels, BiasForwardBackward) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const int N = B * T_, OC = V;
  const Vec out0 = tu::rounded<T>(tu::random_vec(static_cast<size_t>(N) * OC, 40));
  const Vec bias = tu::rounded<T>(tu::random_vec(OC, 41));
  const Vec dout = tu::rounded<T>(tu::random_vec(out0.size(), 42));
  Vec db = tu::random_vec(OC, 43);
  DevBuf<T> d_out(out0), d_bias(bias), d_dout(dout);
  DevBuf<float> d_db(db), scratch(attn::kern::bias_backward_scratch_floats(N, OC));
  attn::kern::bias_add(d_out.get(), d_bias.get(), N, OC, 0);
  attn::kern::bias_backward(d_db.get(), scratch.get(), d_dout.get(), N, OC, 0);
  Vec out = out0;
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) out[static_cast<size_t>(n) * OC + o] += bias[o], db[o] += dout[static_cast<size_t>(n) * OC + o];
  EXPECT_REL(d_out.download(), out, tu::tol<T>(), "bias add");
  EXPECT_REL(d_db.download(), db, 1e-5, "bias backward (fp32 acc)");
}

// Vp = 128: the row cached in shared memory (V = 101 ends inside a pack; packs of padding
// only); Vp = 130: not a multiple of the pack, the scalar kernel; the GPT-2 vocabulary: many
// packs per thread (bf16: shared memory, fp32: the packed kernel); 65536: too long a row for
// shared memory, the packed kernel in both. Odd shapes take dloss from device memory (a captured
// step's DeviceValue) with a wrong value beside it.
TYPED_TEST(Kernels, Classifier) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  struct Shape { int N, V, Vp; };
  const Shape shapes[] = {{B * T_, V, Vp}, {B * T_, V, 130}, {9, 50257, 50304}, {5, 65531, 65536}};
  for (int si = 0; si < 4; ++si) {
    const int N = shapes[si].N, V = shapes[si].V, Vp = shapes[si].Vp;
    Vec logits = tu::rounded<T>(tu::random_vec(static_cast<size_t>(N) * Vp, 50, 3.0));
    auto tgt = random_tokens(N, V, 51);
    for (int n = 0; n < N; n += 7) tgt[n] = -1;  // ignored positions
    int count = 0;
    for (int t : tgt) count += t != -1;
    const double dloss = 0.5 / count;
    Vec losses, dlogits;
    ref::classifier(losses, dlogits, logits, tgt, N, V, Vp, dloss);
    DevBuf<T> d_logits(logits);
    DevBuf<int32_t> d_tgt(tgt);
    DevBuf<float> d_losses(N);
    attn::kern::classifier_forward_backward(d_logits.get(), d_losses.get(), d_tgt.get(), N, V, Vp,
                                            static_cast<float>(dloss), false, 0);
    EXPECT_REL(d_losses.download(), losses, 1e-5, "classifier losses (no grad)");
    EXPECT_REL(d_logits.download(), logits, 0.0, "classifier leaves logits without grad");
    DevBuf<float> d_dloss(Vec{dloss});
    const attn::DeviceValue<float> dl = si % 2 == 1 ? attn::DeviceValue<float>(-1.0f, d_dloss.get())
                                                    : attn::DeviceValue<float>(static_cast<float>(dloss));
    attn::kern::classifier_forward_backward(d_logits.get(), d_losses.get(), d_tgt.get(), N, V, Vp, dl, true, 0);
    EXPECT_REL(d_losses.download(), losses, 1e-5, "classifier losses");
    EXPECT_REL(d_logits.download(), dlogits, tu::tol<T>(), "classifier dlogits (in place) Vp=" + std::to_string(Vp));
  }
}

TEST(KernelsF32, AdamW) {
  SKIP_WITHOUT_GPU();
  const size_t n = 64 * 97 + 3;  // 97 chunks of 64 floats + a partial one: the scalar tail
  const Vec p0 = tu::rounded<float>(tu::random_vec(n, 60)), g = tu::rounded<float>(tu::random_vec(n, 61, 0.1));
  const Vec m0 = tu::rounded<float>(tu::random_vec(n, 62, 0.01));
  Vec v0 = tu::random_vec(n, 63, 0.001);
  for (double& x : v0) x = static_cast<float>(std::abs(x));
  const size_t chunks = (n + 63) / 64;
  std::vector<uint32_t> bits((chunks + 31) / 32, 0u);
  for (size_t c = 0; c < chunks; ++c)
    if (c % 3 != 0) bits[c / 32] |= 1u << (c % 32);
  DevBuf<float> d_p(p0), d_g(g), d_m(m0), d_v(v0);
  DevBuf<__nv_bfloat16> d_pb(n);
  uint32_t* d_bits = nullptr;
  CUDA_CHECK(cudaMalloc(&d_bits, bits.size() * 4));
  CUDA_CHECK(cudaMemcpy(d_bits, bits.data(), bits.size() * 4, cudaMemcpyHostToDevice));
  const double lr = 1e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1, mult = 0.7;
  const int64_t t = 5;
  attn::kern::adamw_update(d_p.get(), d_g.get(), d_m.get(), d_v.get(), d_pb.get(), d_bits, n, lr, b1, b2,
                           static_cast<float>(1 - std::pow(b1, t)), static_cast<float>(1 - std::pow(b2, t)), eps, wd,
                           mult, 0);
  Vec p = p0, m = m0, v = v0;
  for (size_t i = 0; i < n; ++i) {
    const size_t c = i / 64;
    const bool decay = (bits[c / 32] >> (c % 32)) & 1u;
    ref::adamw(p[i], m[i], v[i], g[i], lr, b1, b2, eps, decay ? wd : 0.0, mult, t);
  }
  Vec dp(n), dpnew(n);
  for (size_t i = 0; i < n; ++i) dp[i] = p[i] - p0[i];
  const Vec got = d_p.download();
  for (size_t i = 0; i < n; ++i) dpnew[i] = got[i] - static_cast<float>(p0[i]);
  EXPECT_REL(got, p, 1e-5, "adamw params");
  EXPECT_REL(dpnew, dp, 1e-4, "adamw update (p_new - p_old)");
  EXPECT_REL(d_m.download(), m, 1e-5, "adamw m");
  EXPECT_REL(d_v.download(), v, 1e-5, "adamw v");
  EXPECT_REL(d_pb.download(), tu::rounded<__nv_bfloat16>(p), 1e-2, "adamw bf16 copy");
  cudaFree(d_bits);
}

// Sizes: below one float4 per thread, not a multiple of 4, and past 4 x the grid (the loop with
// four loads in flight); offset 1: a buffer that is not 16-byte aligned (a ZeRO-1 shard can be).
TEST(KernelsF32, GlobalNorm) {
  SKIP_WITHOUT_GPU();
  const std::pair<size_t, size_t> cases[] = {{7, 0}, {1000003, 0}, {4000003, 0}, {4000003, 1}};
  for (auto [n, offset] : cases) {
    const Vec x = tu::random_vec(n + offset, 70 + n);
    DevBuf<float> d_x(x), partials(attn::kern::kNormPartials);
    DevBuf<double> out(1);
    attn::kern::global_norm_squared(out.get(), partials.get(), d_x.get() + offset, n, 0);
    double s = 0.0;
    for (size_t i = offset; i < n + offset; ++i) s += static_cast<float>(x[i]) * static_cast<double>(static_cast<float>(x[i]));
    const std::string tag = " n=" + std::to_string(n) + " offset=" + std::to_string(offset);
    EXPECT_REL(out.download(), Vec{s}, 1e-5, "global norm^2" + tag);
    // deterministic: the same bits twice
    const double first = out.download()[0];
    attn::kern::global_norm_squared(out.get(), partials.get(), d_x.get() + offset, n, 0);
    EXPECT_EQ(out.download()[0], first) << tag;
  }
}

TEST(KernelsF32, Casts) {
  SKIP_WITHOUT_GPU();
  const size_t n = 1237;
  const Vec x = tu::random_vec(n, 80);
  DevBuf<float> d_x(x), d_back(n);
  DevBuf<__nv_bfloat16> d_b(n);
  attn::kern::cast_f32_to_bf16(d_b.get(), d_x.get(), n, 0);
  attn::kern::cast_bf16_to_f32(d_back.get(), d_b.get(), n, 0);
  const Vec r = tu::rounded<__nv_bfloat16>(x);
  EXPECT_REL(d_b.download(), r, 0.0, "cast f32->bf16 (round to nearest even)");
  EXPECT_REL(d_back.download(), r, 0.0, "cast bf16->f32");
}

}  // namespace
