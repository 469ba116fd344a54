// Naive CUDA attention (forward and backward) against the float64 reference: causal and
// not, MHA / GQA / MQA, with and without attention dropout. Plus the option errors.
#include <string>
#include <utility>

#include "attention/cuda_attention.h"
#include "core/error.h"
#include "reference.h"
#include "test_util.h"

namespace {

using tu::DevBuf;
using tu::Vec;

template <typename T>
class NaiveAttention : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(NaiveAttention, Types);

TYPED_TEST(NaiveAttention, ForwardBackwardMatchReference) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  struct Case { int H, Hkv; bool causal; double p; };
  const Case cases[] = {{4, 4, true, 0.0}, {4, 4, false, 0.0}, {4, 2, true, 0.0},
                        {4, 1, true, 0.0}, {4, 2, true, 0.1}, {4, 4, false, 0.1}};
  // T = 77: causal GEMMs in row blocks of 16 (the last one 13 rows); T = 200: blocks of 32.
  // D = 18: the layout kernels move single elements; D = 64: 16-byte packs.
  const int B = 3;
  const std::pair<int, int> sizes[] = {{77, 18}, {77, 64}, {200, 64}};
  for (const auto& [T_, D] : sizes)
  for (const Case& c : cases) {
    attn::AttentionOptions opts;
    opts.impl = "naive";
    opts.causal = c.causal;
    auto att = attn::make_cuda_attention(opts, tu::dtype_of<T>());
    attn::AttentionShape s;
    s.B = B, s.T = T_, s.n_head = c.H, s.n_kv_head = c.Hkv, s.head_dim = D;
    const ref::AttnShape rs{B, T_, c.H, c.Hkv, D, c.causal};
    const uint64_t key = attn::dropout_site::key(42, 7, 1, attn::dropout_site::attention_probs(1));
    const attn::DropoutState drop{static_cast<float>(c.p), key};
    const Vec qkv = tu::rounded<T>(tu::random_vec(static_cast<size_t>(B) * T_ * s.qkv_dim(), 1));
    const Vec dy = tu::rounded<T>(tu::random_vec(static_cast<size_t>(B) * T_ * c.H * D, 2));
    DevBuf<T> d_qkv(qkv), d_y(dy.size()), d_dy(dy), d_dqkv(qkv.size());
    DevBuf<char> saved(att->saved_bytes(s)), scratch(att->scratch_bytes(s));
    att->forward(d_qkv.get(), d_y.get(), saved.get(), scratch.get(), s, drop, 0);
    att->backward(d_qkv.get(), d_y.get(), d_dy.get(), saved.get(), d_dqkv.get(), scratch.get(), s, drop, 0);
    Vec y, dqkv;
    ref::attention_forward(y, qkv, rs, c.p, key);
    ref::attention_backward(dqkv, qkv, dy, rs, c.p, key);
    const std::string tag = std::string(" ") + tu::type_name<T>() + " T=" + std::to_string(T_) + " D=" + std::to_string(D) + " H=" + std::to_string(c.H) + " Hkv=" +
                            std::to_string(c.Hkv) + (c.causal ? " causal" : " full") + " p=" + std::to_string(c.p);
    EXPECT_REL(d_y.download(), y, tu::tol<T>(), "attention y" + tag);
    EXPECT_REL(d_dqkv.download(), dqkv, tu::tol<T>(), "attention dqkv" + tag);
  }
}

TEST(CudaAttentionOptions, UnsupportedOptionsNameTheKey) {
  SKIP_WITHOUT_GPU();
  auto expect_error = [](attn::AttentionOptions o, const std::string& key) {
    try {
      attn::make_cuda_attention(o, attn::DType::F32);
      ADD_FAILURE() << "no error for " << key << " with attention.impl = " << o.impl;
    } catch (const attn::Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  // Naive CUDA attention has no masks beyond causal and no score modifications (flash has them
  // all: tests/gpu/test_flash_variants.cpp), so it must refuse each one by its key.
  {
    const char* impl = "naive";
    attn::AttentionOptions o;
    o.impl = impl;
    o.sliding_window = 16;
    expect_error(o, "attention.sliding_window");
    o = {};
    o.impl = impl;
    o.alibi = true;
    expect_error(o, "attention.alibi");
    o = {};
    o.impl = impl;
    o.softcap = 30.0f;
    expect_error(o, "attention.softcap");
    o = {};
    o.impl = impl;
    o.document_mask = true;
    expect_error(o, "attention.document_mask");
  }
  // Flash accepts every mask and score modification together ...
  {
    attn::AttentionOptions o;
    o.impl = "flash";
    o.sliding_window = 16, o.alibi = true, o.softcap = 30.0f, o.document_mask = true;
    EXPECT_NO_THROW(attn::make_cuda_attention(o, attn::DType::F32));
  }
  // ... and attention dropout (inside its kernels, tests/gpu/test_flash_attention.cu FlashDropout).
  {
    attn::AttentionOptions o;
    o.impl = "flash";
    attn::AttentionUse u;
    u.device = attn::AttentionDevice::cuda;
    u.dropout = 0.2f;
    EXPECT_NO_THROW(attn::check_attention(o, u));
  }
  attn::AttentionOptions o;
  o.impl = "bogus";
  expect_error(o, "attention.impl");
}

}  // namespace
