// Decode attention and the KV-cache writes (kernels/decode_attention.h) against float64 CPU
// references on fresh random inputs.
//
// KVCacheWrite.*: the cache bytes and scales must equal, bit for bit, a CPU model of the
// quantization (scale = amax / qmax in fp32, x / scale in fp32, int8 round-to-nearest-even
// clamped to +-127, e4m3 round-to-nearest-even saturating; the e4m3 encoder here is a table
// search, independent of CUDA's). Positions >= max_len and untouched rows keep their poison.
//
// DecodeAttention.*: the cache is built on the host (stored values + scales from the same CPU
// model), every position at or past lengths[b] poisoned (0xFF bytes: NaN for fp32/bf16/e4m3,
// NaN scales for int8), q read from a packed qkv row, o written into rows padded by 8 elements
// (the padding must stay NaN). Two checks per case:
// bf16 activations over a bf16/e4m3/int8 cache run on the tensor-core kernel (its P rounded to
// bf16, or fp16 for 8-bit caches, inside the bound below); fp32 activations and the fp32
// cache on the CUDA-core kernel.
//  1. vs the float64 reference over the *dequantized* cache (exactly what the kernel reads):
//     only fp32 accumulation and the output rounding remain: bf16 o: ||e|| / ||ref|| <= 2^-8
//     (round to nearest with 8 significant bits: relative <= 2^-8 per element; typical ~2.2e-3)
//     + 2e-4; fp32 o: 2e-5 (the fp32-activation cases are the sensitive check of the indexing).
//  2. vs the float64 reference over the *unquantized* values, elementwise, with the bound
//     derived from the quantization step: per element |k - k^| <= eps with
//       int8: eps = scale / 2;   e4m3: eps = max(2^-4 |k|, 2^-10 scale) (3 mantissa bits;
//       subnormals below 2^-6 have absolute step 2^-9 scale);   bf16/fp32: 0 (stored as given)
//     so each score moves by at most Delta_h = max_t scale_attn * sum_d |q_hd| eps_k,td, each
//     probability by a factor within e^(+-2 Delta_h), and
//       |o^ - o|_hd <= qb = max_t eps_v,td + (e^(2 Delta_h) - 1) max_t |v_td|,
//     and with the output rounding |out - o|_hd <= qb + 2^-8 (|o| + qb) + 1e-5.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/generator.h"
#include "core/error.h"
#include "kernels/decode_attention.h"
#include "test_util.h"

namespace {

using attn::KVCacheDType;

const char* dtype_name(KVCacheDType t) { return attn::kv_cache_dtype_name(t); }
bool is_8bit(KVCacheDType t) { return t == KVCacheDType::FP8_E4M3 || t == KVCacheDType::INT8; }

float bf16_round(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }
uint16_t bf16_bits(float x) {
  const __nv_bfloat16 b = __float2bfloat16_rn(x);
  uint16_t u;
  std::memcpy(&u, &b, 2);
  return u;
}
float bf16_from_bits(uint16_t u) {
  __nv_bfloat16_raw raw;
  raw.x = u;
  return __bfloat162float(__nv_bfloat16(raw));
}

// ---- e4m3 (1 sign, 4 exponent bits with bias 7, 3 mantissa bits; 0x7f/0xff NaN; max 448) ----
double e4m3_decode(uint8_t c) {
  const int e = (c >> 3) & 15, m = c & 7;
  const double mag = e == 0 ? m / 8.0 * std::ldexp(1.0, -6) : (1.0 + m / 8.0) * std::ldexp(1.0, e - 7);
  return (c & 0x80) ? -mag : mag;
}
double e4m3_value(uint8_t c) {
  static const std::vector<double> table = [] {
    std::vector<double> t(256);
    for (int i = 0; i < 256; ++i) t[i] = e4m3_decode((uint8_t)i);
    return t;
  }();
  return table[c];
}
// Round to nearest, ties to the even code, saturating at 448.
uint8_t e4m3_encode(float y) {
  const double a = std::fabs((double)y);
  uint8_t lo = 0;  // largest code with value <= a, by bisection over the monotone codes 0..0x7e
  int l = 0, h = 0x7e;
  while (l < h) {
    const int mid = (l + h + 1) / 2;
    if (e4m3_value((uint8_t)mid) <= a) l = mid;
    else h = mid - 1;
  }
  lo = (uint8_t)l;
  uint8_t code = lo;
  if (lo < 0x7e) {
    const double dl = a - e4m3_value(lo), du = e4m3_value(lo + 1) - a;
    if (du < dl || (du == dl && (lo & 1))) code = lo + 1;
  }
  return (uint8_t)(code | (std::signbit(y) ? 0x80 : 0));
}

// CPU model of one cache row: stored bytes (elem_bytes each) and the scale.
struct QuantRow {
  std::vector<uint8_t> bytes;
  std::vector<float> stored;  // the stored value as a float (exact)
  float scale = 1.0f;
};
QuantRow quantize_row(const float* x, int D, KVCacheDType t) {
  QuantRow r;
  const size_t eb = attn::kv_cache_element_bytes(t);
  r.bytes.resize(D * eb);
  r.stored.resize(D);
  if (is_8bit(t)) {
    float amax = 0.0f;
    for (int d = 0; d < D; ++d) amax = std::max(amax, std::fabs(x[d]));
    const float qmax = t == KVCacheDType::INT8 ? 127.0f : 448.0f;
    float scale = amax > 0.0f ? amax / qmax : 1.0f;
    if (scale == 0.0f) scale = 1.0f;
    r.scale = scale;
    for (int d = 0; d < D; ++d) {
      const float y = x[d] / scale;
      if (t == KVCacheDType::INT8) {
        const int q = std::clamp((int)std::nearbyint(y), -127, 127);
        r.bytes[d] = (uint8_t)(int8_t)q;
        r.stored[d] = (float)q;
      } else {
        r.bytes[d] = e4m3_encode(y);
        r.stored[d] = (float)e4m3_value(r.bytes[d]);
      }
    }
  } else if (t == KVCacheDType::BF16) {
    for (int d = 0; d < D; ++d) {
      const uint16_t u = bf16_bits(x[d]);
      std::memcpy(&r.bytes[2 * d], &u, 2);
      r.stored[d] = bf16_from_bits(u);
    }
  } else {
    std::memcpy(r.bytes.data(), x, 4 * D);
    for (int d = 0; d < D; ++d) r.stored[d] = x[d];
  }
  return r;
}

// Device buffer of raw bytes.
struct DevBytes {
  void* p = nullptr;
  size_t n = 0;
  explicit DevBytes(size_t bytes) : n(bytes) {
    if (cudaMalloc(&p, std::max<size_t>(bytes, 16)) != cudaSuccess) p = nullptr;
  }
  ~DevBytes() { cudaFree(p); }
  DevBytes(const DevBytes&) = delete;
  DevBytes& operator=(const DevBytes&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(p); }
  void upload(const void* h) const { cudaMemcpy(p, h, n, cudaMemcpyHostToDevice); }
  std::vector<uint8_t> download() const {
    std::vector<uint8_t> h(n);
    cudaDeviceSynchronize();
    cudaMemcpy(h.data(), p, n, cudaMemcpyDeviceToHost);
    return h;
  }
};

// Activations (bf16 or fp32) from floats, as raw bytes.
std::vector<uint8_t> act_bytes(const std::vector<float>& x, bool bf16) {
  std::vector<uint8_t> out(x.size() * (bf16 ? 2 : 4));
  for (size_t i = 0; i < x.size(); ++i) {
    if (bf16) {
      const uint16_t u = bf16_bits(x[i]);
      std::memcpy(&out[2 * i], &u, 2);
    } else {
      std::memcpy(&out[4 * i], &x[i], 4);
    }
  }
  return out;
}
double act_value(const std::vector<uint8_t>& bytes, size_t i, bool bf16) {
  if (bf16) {
    uint16_t u;
    std::memcpy(&u, &bytes[2 * i], 2);
    return bf16_from_bits(u);
  }
  float f;
  std::memcpy(&f, &bytes[4 * i], 4);
  return f;
}

// ================================ KVCacheWrite ================================
struct WriteCase {
  KVCacheDType dtype;
  bool act_bf16;
  int D;
};

class KVCacheWrite : public ::testing::TestWithParam<WriteCase> {};

TEST_P(KVCacheWrite, MatchesCpuQuantizationModelBitExactly) {
  SKIP_WITHOUT_GPU();
  const WriteCase c = GetParam();
  const int B = 3, H = 4, Hkv = 2, D = c.D, n_new = 5, max_len = 19;
  const int width = (H + 2 * Hkv) * D;
  const int64_t token_stride = width + 8, batch_stride = token_stride * n_new + 24;  // padded strides
  const std::vector<int32_t> start = {0, 7, max_len - 2};  // the last sequence runs past max_len
  std::mt19937_64 gen(1234 + D + 10 * (int)c.dtype + c.act_bf16);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> qkv(batch_stride * B);
  for (size_t i = 0; i < qkv.size(); ++i) {
    const size_t row = i / D;
    qkv[i] = nd(gen) * std::exp(0.7f * (float)((row * 2654435761u) % 7) - 2.0f);  // row magnitudes vary
  }
  // One all-zero K row (amax = 0 -> scale 1) and one V row with a single large outlier.
  for (int d = 0; d < D; ++d) qkv[1 * batch_stride + 2 * token_stride + (H + 1) * D + d] = 0.0f;
  qkv[0 * batch_stride + 1 * token_stride + (H + Hkv) * D + 5] = 300.0f;
  if (c.act_bf16)
    for (float& x : qkv) x = bf16_round(x);
  const std::vector<uint8_t> qkv_b = act_bytes(qkv, c.act_bf16);

  const size_t eb = attn::kv_cache_element_bytes(c.dtype);
  const size_t rows = (size_t)B * Hkv * max_len;
  DevBytes d_qkv(qkv_b.size()), d_k(rows * D * eb), d_v(rows * D * eb), d_ks(rows * 4), d_vs(rows * 4),
      d_start(B * 4);
  ASSERT_TRUE(d_qkv.p && d_k.p && d_v.p && d_ks.p && d_vs.p && d_start.p);
  d_qkv.upload(qkv_b.data());
  d_start.upload(start.data());
  for (const DevBytes* d : {&d_k, &d_v, &d_ks, &d_vs}) ASSERT_CUDA(cudaMemset(d->p, 0xFF, d->n));

  attn::KVCacheLayer layer;
  layer.k = d_k.p;
  layer.v = d_v.p;
  if (is_8bit(c.dtype)) {
    layer.k_scale = d_ks.as<float>();
    layer.v_scale = d_vs.as<float>();
  }
  attn::KVCacheShape shape{B, Hkv, max_len, D, c.dtype};
  ASSERT_NO_THROW(attn::kv_cache_write(d_qkv.p, batch_stride, token_stride, c.act_bf16, H, n_new,
                                       d_start.as<int32_t>(), layer, shape, nullptr));
  ASSERT_CUDA(cudaDeviceSynchronize());

  std::vector<uint8_t> want_k(rows * D * eb, 0xFF), want_v = want_k, want_ks(rows * 4, 0xFF), want_vs = want_ks;
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < n_new; ++i) {
      const int t = start[b] + i;
      if (t >= max_len) continue;
      for (int kv = 0; kv < 2; ++kv)
        for (int g = 0; g < Hkv; ++g) {
          const float* x = &qkv[b * batch_stride + i * token_stride + (H + kv * Hkv + g) * D];
          const QuantRow q = quantize_row(x, D, c.dtype);
          const size_t row = ((size_t)b * Hkv + g) * max_len + t;
          std::memcpy(&(kv ? want_v : want_k)[row * D * eb], q.bytes.data(), D * eb);
          if (is_8bit(c.dtype)) std::memcpy(&(kv ? want_vs : want_ks)[row * 4], &q.scale, 4);
        }
    }
  const auto got_k = d_k.download(), got_v = d_v.download();
  size_t bad = 0;
  for (size_t i = 0; i < want_k.size(); ++i) {
    bad += got_k[i] != want_k[i];
    bad += got_v[i] != want_v[i];
    if (bad && bad < 4 && (got_k[i] != want_k[i] || got_v[i] != want_v[i]))
      std::printf("    byte %zu (row %zu): K got %02x want %02x, V got %02x want %02x\n", i, i / (D * eb), got_k[i],
                  want_k[i], got_v[i], want_v[i]);
  }
  EXPECT_EQ(bad, 0u) << "cache bytes differing from the CPU model (" << dtype_name(c.dtype) << ")";
  if (is_8bit(c.dtype)) {
    EXPECT_EQ(d_ks.download(), want_ks) << "K scales";
    EXPECT_EQ(d_vs.download(), want_vs) << "V scales";
  }
}

std::string write_name(const ::testing::TestParamInfo<WriteCase>& info) {
  return std::string(dtype_name(info.param.dtype)) + (info.param.act_bf16 ? "_actbf16" : "_actfp32") + "_D" +
         std::to_string(info.param.D);
}
std::vector<WriteCase> write_cases() {
  std::vector<WriteCase> out;
  for (KVCacheDType t : {KVCacheDType::FP32, KVCacheDType::BF16, KVCacheDType::FP8_E4M3, KVCacheDType::INT8})
    for (bool act : {true, false})
      for (int D : {64, 128}) out.push_back({t, act, D});
  return out;
}
INSTANTIATE_TEST_SUITE_P(KVCache, KVCacheWrite, ::testing::ValuesIn(write_cases()), write_name);

// ================================ DecodeAttention ================================
struct DecodeCase {
  KVCacheDType dtype;
  bool act_bf16;
  int H, Hkv, D, max_len;
  std::vector<int> lengths;
};

// Host cache: raw values (what was written), stored values and scales (what the kernel reads),
// and the bytes to upload (poison past each length).
struct HostCache {
  std::vector<float> raw_k, raw_v, st_k, st_v, sc_k, sc_v;
  std::vector<uint8_t> bytes_k, bytes_v;
  std::vector<float> scales_k, scales_v;  // uploaded (NaN past each length)
};

HostCache make_cache(const DecodeCase& c, uint64_t seed) {
  const int B = (int)c.lengths.size(), D = c.D;
  const size_t rows = (size_t)B * c.Hkv * c.max_len, eb = attn::kv_cache_element_bytes(c.dtype);
  HostCache h;
  for (auto* v : {&h.raw_k, &h.raw_v, &h.st_k, &h.st_v}) v->assign(rows * D, 0.0f);
  h.sc_k.assign(rows, 1.0f);
  h.sc_v.assign(rows, 1.0f);
  h.bytes_k.assign(rows * D * eb, 0xFF);
  h.bytes_v.assign(rows * D * eb, 0xFF);
  h.scales_k.assign(rows, NAN);
  h.scales_v.assign(rows, NAN);
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(D);
  for (int b = 0; b < B; ++b)
    for (int g = 0; g < c.Hkv; ++g)
      for (int t = 0; t < c.lengths[b]; ++t) {
        const size_t row = ((size_t)b * c.Hkv + g) * c.max_len + t;
        for (int kv = 0; kv < 2; ++kv) {
          const float mag = std::exp(0.5f * nd(gen));  // per-row magnitude: per-row scales matter
          for (int d = 0; d < D; ++d) {
            x[d] = mag * nd(gen);
            if (c.act_bf16) x[d] = bf16_round(x[d]);
          }
          const QuantRow q = quantize_row(x.data(), D, c.dtype);
          std::memcpy(&(kv ? h.raw_v : h.raw_k)[row * D], x.data(), 4 * D);
          std::memcpy(&(kv ? h.st_v : h.st_k)[row * D], q.stored.data(), 4 * D);
          std::memcpy(&(kv ? h.bytes_v : h.bytes_k)[row * D * eb], q.bytes.data(), D * eb);
          (kv ? h.sc_v : h.sc_k)[row] = q.scale;
          (kv ? h.scales_v : h.scales_k)[row] = q.scale;
        }
      }
  return h;
}

// Per-element quantization step bound of one stored element (see the header comment).
double quant_eps(KVCacheDType t, double raw, double scale) {
  if (t == KVCacheDType::INT8) return scale / 2.0;
  if (t == KVCacheDType::FP8_E4M3) return std::max(std::ldexp(std::fabs(raw), -4), std::ldexp(scale, -10));
  return 0.0;
}

// Float64 decode attention over rows given by value(row, d) for K and V.
template <typename KF, typename VF>
std::vector<double> reference(const DecodeCase& c, const std::vector<double>& q, double scale, KF kval, VF vval) {
  const int B = (int)c.lengths.size(), D = c.D, G = c.H / c.Hkv;
  std::vector<double> o((size_t)B * c.H * D, 0.0);
  std::vector<double> s;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < c.H; ++h) {
      const int g = h / G, L = c.lengths[b];
      const size_t row0 = ((size_t)b * c.Hkv + g) * c.max_len;
      const double* qh = &q[((size_t)b * c.H + h) * D];
      s.assign(L, 0.0);
      double mx = -INFINITY;
      for (int t = 0; t < L; ++t) {
        double dot = 0.0;
        for (int d = 0; d < D; ++d) dot += qh[d] * kval(row0 + t, d);
        s[t] = scale * dot;
        mx = std::max(mx, s[t]);
      }
      double sum = 0.0;
      for (int t = 0; t < L; ++t) sum += (s[t] = std::exp(s[t] - mx));
      double* oh = &o[((size_t)b * c.H + h) * D];
      for (int t = 0; t < L; ++t)
        for (int d = 0; d < D; ++d) oh[d] += s[t] / sum * vval(row0 + t, d);
    }
  return o;
}

class DecodeAttention : public ::testing::TestWithParam<DecodeCase> {};

// How a case is launched: on a created stream (the combine kernel then uses programmatic
// dependent launch), on the legacy default stream (plain stream order), or captured once in a
// CUDA graph for lengths - 1 and replayed after the lengths grew to c.lengths (the split count
// must not depend on them).
enum class Launch { Stream, DefaultStream, Graph };
// append: the newest row of each sequence (lengths[b] - 1) is poisoned in the uploaded cache
// and given instead in the packed qkv row (DecodeAttentionParams::append_at); the call must
// attend to it and leave exactly its stored bytes (and scales) in the cache.
void run_decode_case(const DecodeCase& c, Launch launch, bool append = false) {
  const int B = (int)c.lengths.size(), D = c.D, H = c.H, Hkv = c.Hkv;
  const uint64_t seed = 99 + 7 * D + 31 * H + 131 * Hkv + (uint64_t)c.max_len + 17 * (int)c.dtype;
  const HostCache hc = make_cache(c, seed);
  const size_t rows = (size_t)B * Hkv * c.max_len, eb = attn::kv_cache_element_bytes(c.dtype);
  const double scale = 1.0 / std::sqrt((double)D);

  // q: packed qkv rows (q heads first); o: rows padded by 8 elements.
  const int64_t q_stride = (int64_t)(H + 2 * Hkv) * D, o_stride = (int64_t)H * D + 8;
  std::mt19937_64 gen(seed + 1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> qkv((size_t)B * q_stride);
  for (float& x : qkv) x = nd(gen);
  ASSERT_TRUE(!append || launch != Launch::Graph) << "the graph case replays at two lengths: not with append";
  HostCache upload = hc;  // with append: the newest rows poisoned (0xFF: NaN, scales NaN), their K/V in qkv
  for (int b = 0; append && b < B; ++b)
    for (int g = 0; g < Hkv; ++g) {
      const size_t row = ((size_t)b * Hkv + g) * c.max_len + c.lengths[b] - 1;
      for (int d = 0; d < D; ++d) {
        qkv[(size_t)b * q_stride + (size_t)(H + g) * D + d] = hc.raw_k[row * D + d];
        qkv[(size_t)b * q_stride + (size_t)(H + Hkv + g) * D + d] = hc.raw_v[row * D + d];
      }
      std::fill_n(upload.bytes_k.begin() + row * D * eb, D * eb, 0xFF);
      std::fill_n(upload.bytes_v.begin() + row * D * eb, D * eb, 0xFF);
      upload.scales_k[row] = upload.scales_v[row] = NAN;
    }
  const std::vector<uint8_t> q_b = act_bytes(qkv, c.act_bf16);
  std::vector<double> q((size_t)B * H * D);
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < H * D; ++i) q[(size_t)b * H * D + i] = act_value(q_b, (size_t)b * q_stride + i, c.act_bf16);

  const size_t ab = c.act_bf16 ? 2 : 4;
  DevBytes d_q(q_b.size()), d_o((size_t)B * o_stride * ab), d_k(rows * D * eb), d_v(rows * D * eb), d_ks(rows * 4),
      d_vs(rows * 4), d_len(B * 4);
  ASSERT_TRUE(d_q.p && d_o.p && d_k.p && d_v.p && d_ks.p && d_vs.p && d_len.p) << "cudaMalloc";
  d_q.upload(q_b.data());
  d_k.upload(upload.bytes_k.data());
  d_v.upload(upload.bytes_v.data());
  d_ks.upload(upload.scales_k.data());
  d_vs.upload(upload.scales_v.data());
  std::vector<int32_t> newest(c.lengths.begin(), c.lengths.end());
  for (int32_t& t : newest) t -= 1;
  DevBytes d_pos(B * 4);
  d_pos.upload(newest.data());
  ASSERT_CUDA(cudaMemset(d_o.p, 0xFF, d_o.n));  // NaN poison: padding must stay, outputs must be overwritten

  attn::DecodeAttentionParams p;
  p.q = d_q.p;
  p.q_batch_stride = q_stride;
  p.o = d_o.p;
  p.o_batch_stride = o_stride;
  p.act_bf16 = c.act_bf16;
  p.cache.k = d_k.p;
  p.cache.v = d_v.p;
  if (is_8bit(c.dtype)) {
    p.cache.k_scale = d_ks.as<float>();
    p.cache.v_scale = d_vs.as<float>();
  }
  p.shape = {B, Hkv, c.max_len, D, c.dtype};
  p.lengths = d_len.as<int32_t>();
  p.H = H;
  p.scale = (float)scale;
  if (append) p.append_at = d_pos.as<int32_t>();
  size_t ws_bytes = 0;
  ASSERT_NO_THROW(ws_bytes = attn::decode_attention_workspace_bytes(p));
  DevBytes ws(ws_bytes);
  ASSERT_TRUE(ws.p);
  ASSERT_CUDA(cudaMemset(ws.p, 0xFF, ws.n));  // stale partials would be NaN
  ASSERT_NO_THROW(attn::decode_attention_workspace_init(p, ws.p, nullptr));  // the done counts only

  std::vector<int32_t> lens(c.lengths.begin(), c.lengths.end());
  if (launch == Launch::DefaultStream) {
    d_len.upload(lens.data());
    ASSERT_NO_THROW(attn::decode_attention(p, ws.p, nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
  } else if (launch == Launch::Stream) {
    d_len.upload(lens.data());
    cudaStream_t stream;
    ASSERT_CUDA(cudaStreamCreate(&stream));
    ASSERT_NO_THROW(attn::decode_attention(p, ws.p, stream));
    ASSERT_CUDA(cudaStreamSynchronize(stream));
    cudaStreamDestroy(stream);
  } else {
    std::vector<int32_t> shorter = lens;
    for (int32_t& l : shorter) l = std::max(1, l - 1);
    d_len.upload(shorter.data());
    cudaStream_t stream;
    ASSERT_CUDA(cudaStreamCreate(&stream));
    cudaGraph_t g;
    cudaGraphExec_t exec;
    ASSERT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    ASSERT_NO_THROW(attn::decode_attention(p, ws.p, stream));
    ASSERT_CUDA(cudaStreamEndCapture(stream, &g));
    ASSERT_CUDA(cudaGraphInstantiate(&exec, g, 0));
    ASSERT_CUDA(cudaGraphLaunch(exec, stream));  // at the shorter lengths
    ASSERT_CUDA(cudaStreamSynchronize(stream));
    ASSERT_CUDA(cudaMemcpy(d_len.p, lens.data(), B * 4, cudaMemcpyHostToDevice));
    ASSERT_CUDA(cudaGraphLaunch(exec, stream));  // replayed after the lengths grew
    ASSERT_CUDA(cudaStreamSynchronize(stream));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(g);
    cudaStreamDestroy(stream);
  }
  if (append) {  // the cache now holds exactly what kv_cache_write stores for the rows
    auto bytes_differing = [](const std::vector<uint8_t>& got, const std::vector<uint8_t>& want) {
      size_t n = 0;
      for (size_t i = 0; i < want.size(); ++i) n += got[i] != want[i];
      return n;
    };
    EXPECT_EQ(bytes_differing(d_k.download(), hc.bytes_k), 0u) << "K cache after the append";
    EXPECT_EQ(bytes_differing(d_v.download(), hc.bytes_v), 0u) << "V cache after the append";
    if (is_8bit(c.dtype)) {
      auto same_scales = [&](const DevBytes& d, const std::vector<float>& want) {
        const std::vector<uint8_t> got = d.download();
        size_t differ = 0;
        for (int b = 0; b < B; ++b)
          for (int g = 0; g < Hkv; ++g)
            for (int t = 0; t < c.lengths[b]; ++t) {
              const size_t row = ((size_t)b * Hkv + g) * c.max_len + t;
              differ += std::memcmp(got.data() + 4 * row, &want[row], 4) != 0;
            }
        return differ;
      };
      EXPECT_EQ(same_scales(d_ks, hc.scales_k), 0u) << "K scales after the append";
      EXPECT_EQ(same_scales(d_vs, hc.scales_v), 0u) << "V scales after the append";
    }
  }
  const std::vector<uint8_t> o_b = d_o.download();
  std::vector<double> o((size_t)B * H * D);
  size_t nonfinite = 0, padding_touched = 0;
  for (int b = 0; b < B; ++b) {
    for (int i = 0; i < H * D; ++i) {
      o[(size_t)b * H * D + i] = act_value(o_b, (size_t)b * o_stride + i, c.act_bf16);
      nonfinite += !std::isfinite(o[(size_t)b * H * D + i]);
    }
    for (int i = H * D; i < o_stride; ++i) padding_touched += std::isfinite(act_value(o_b, (size_t)b * o_stride + i, c.act_bf16));
  }
  EXPECT_EQ(nonfinite, 0u) << "non-finite outputs (poison leaked in or outputs not written)";
  EXPECT_EQ(padding_touched, 0u) << "o padding overwritten";

  // 1. tight, vs the dequantized cache
  const auto deq = reference(
      c, q, scale, [&](size_t row, int d) { return (double)hc.st_k[row * D + d] * hc.sc_k[row]; },
      [&](size_t row, int d) { return (double)hc.st_v[row * D + d] * hc.sc_v[row]; });
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < o.size(); ++i) {
    num += (o[i] - deq[i]) * (o[i] - deq[i]);
    den += deq[i] * deq[i];
  }
  const double rel = std::sqrt(num / den), tol = c.act_bf16 ? std::ldexp(1.0, -8) + 2e-4 : 2e-5;
  std::printf("    [rel] vs dequantized cache: %.3e (tol %.2e)\n", rel, tol);
  EXPECT_LE(rel, tol) << "vs the float64 reference over the dequantized cache";

  // 2. derived bound, vs the unquantized values
  if (is_8bit(c.dtype)) {
    const auto raw = reference(
        c, q, scale, [&](size_t row, int d) { return (double)hc.raw_k[row * D + d]; },
        [&](size_t row, int d) { return (double)hc.raw_v[row * D + d]; });
    const int G = H / Hkv;
    size_t over = 0;
    double worst_ratio = 0.0, worst_err = 0.0;
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h) {
        const size_t row0 = ((size_t)b * Hkv + h / G) * c.max_len;
        const double* qh = &q[((size_t)b * H + h) * D];
        double delta = 0.0;
        std::vector<double> eps_v(D, 0.0), vmax(D, 0.0);
        for (int t = 0; t < c.lengths[b]; ++t) {
          const size_t row = row0 + t;
          double ds = 0.0;
          for (int d = 0; d < D; ++d) {
            ds += std::fabs(qh[d]) * quant_eps(c.dtype, hc.raw_k[row * D + d], hc.sc_k[row]);
            eps_v[d] = std::max(eps_v[d], quant_eps(c.dtype, hc.raw_v[row * D + d], hc.sc_v[row]));
            vmax[d] = std::max(vmax[d], std::fabs((double)hc.raw_v[row * D + d]));
          }
          delta = std::max(delta, scale * ds);
        }
        for (int d = 0; d < D; ++d) {
          const size_t i = ((size_t)b * H + h) * D + d;
          const double qb = eps_v[d] + std::expm1(2.0 * delta) * vmax[d];
          const double bound = qb + std::ldexp(std::fabs(raw[i]) + qb, c.act_bf16 ? -8 : -24) + 1e-5;
          const double err = std::fabs(o[i] - raw[i]);
          over += !(err <= bound);
          worst_ratio = std::max(worst_ratio, err / bound);
          worst_err = std::max(worst_err, err);
        }
      }
    std::printf("    [abs] vs unquantized: worst |err| %.3e, worst err/bound %.3f\n", worst_err, worst_ratio);
    EXPECT_EQ(over, 0u) << "outputs beyond the bound derived from the quantization step";
  }
}

TEST_P(DecodeAttention, MatchesFloat64Reference) {
  SKIP_WITHOUT_GPU();
  run_decode_case(GetParam(), Launch::Stream);
}

std::string decode_name(const ::testing::TestParamInfo<DecodeCase>& info) {
  const DecodeCase& c = info.param;
  std::string s = std::string(dtype_name(c.dtype)) + (c.act_bf16 ? "_actbf16" : "_actfp32") + "_H" + std::to_string(c.H) +
                  "_Hkv" + std::to_string(c.Hkv) + "_D" + std::to_string(c.D) + "_cap" + std::to_string(c.max_len) + "_L";
  for (int l : c.lengths) s += "_" + std::to_string(l);
  return s;
}

std::vector<DecodeCase> decode_cases() {
  std::vector<DecodeCase> out;
  const std::vector<int> mixed = {1, 17, 1000, 4097};  // one batch, lengths differing; capacity 4100
  struct Layout { int H, Hkv; };
  for (KVCacheDType t : {KVCacheDType::FP32, KVCacheDType::BF16, KVCacheDType::FP8_E4M3, KVCacheDType::INT8})
    for (int D : {64, 128})
      for (Layout l : {Layout{4, 4}, Layout{8, 2}, Layout{6, 1}})  // MHA, GQA, MQA
        out.push_back({t, t != KVCacheDType::FP32, l.H, l.Hkv, D, 4100, mixed});
  // the long context (capacity exactly the length for the first sequence)
  for (KVCacheDType t : {KVCacheDType::FP32, KVCacheDType::BF16, KVCacheDType::FP8_E4M3, KVCacheDType::INT8}) {
    out.push_back({t, t != KVCacheDType::FP32, 4, 2, 64, 32768, {32768, 5}});
    out.push_back({t, t != KVCacheDType::FP32, 4, 1, 128, 32768, {32768, 300}});
  }
  // 8-bit and bf16 caches under fp32 activations
  out.push_back({KVCacheDType::INT8, false, 4, 2, 64, 1100, {1000, 1}});
  out.push_back({KVCacheDType::FP8_E4M3, false, 6, 1, 128, 4100, {4097, 17}});
  out.push_back({KVCacheDType::BF16, false, 4, 4, 128, 1100, {17, 1000}});
  // query heads per kv head beyond one block's 4 (head groups 4 + 4 + 1 and 4 + 4 + 4), and
  // many sequences (few splits each)
  out.push_back({KVCacheDType::BF16, true, 9, 1, 64, 4100, mixed});
  out.push_back({KVCacheDType::INT8, true, 24, 2, 128, 4100, mixed});
  out.push_back({KVCacheDType::FP8_E4M3, true, 12, 1, 64, 2000, std::vector<int>(40, 1999)});
  // the tensor-core kernel's M tile of 16 query heads: exactly full (G = 16), two tiles (G = 32,
  // 16 + 4 for G = 20), and the benchmark's shapes at the long context (32/8 at D = 128: bf16 on
  // 4 warps, fp8 on 8 by default)
  out.push_back({KVCacheDType::BF16, true, 16, 1, 128, 4100, mixed});
  out.push_back({KVCacheDType::INT8, true, 32, 1, 64, 4100, mixed});
  out.push_back({KVCacheDType::FP8_E4M3, true, 40, 2, 128, 1100, {1000, 1}});
  out.push_back({KVCacheDType::BF16, true, 32, 8, 128, 32768, {32768, 1}});
  out.push_back({KVCacheDType::FP8_E4M3, true, 32, 8, 128, 32768, {4097, 32768}});
  out.push_back({KVCacheDType::FP8_E4M3, true, 12, 4, 64, 32768, {32768}});
  // 8-bit MHA (the direct-fragment kernel) at the long context: its plan's many splits
  out.push_back({KVCacheDType::FP8_E4M3, true, 12, 12, 64, 32768, {32768, 77}});
  out.push_back({KVCacheDType::INT8, true, 12, 12, 64, 32768, {32768}});
  out.push_back({KVCacheDType::INT8, true, 12, 1, 64, 32768, {32768, 17}});
  out.push_back({KVCacheDType::BF16, true, 12, 12, 64, 32768, {32768}});
  // many sequences on the tensor cores: MHA and GQA, lengths not multiples of the 64-token tile
  out.push_back({KVCacheDType::BF16, true, 12, 12, 64, 300, std::vector<int>(33, 257)});
  out.push_back({KVCacheDType::INT8, true, 8, 2, 128, 300, {65, 64, 63, 1, 299, 128, 129, 2}});
  // 48 x 12 = 576 (sequence, kv head) blocks: more than a wave of the 8-bit MHA kernel (3 a SM) or
  // of the tensor-core kernel holds on 132 SMs, so the plan splits each kv head to fill the last
  // wave (wave_filling_splits); bf16 MHA (at least 5 a SM) stays within one. Lengths 1 .. 700, some of
  // the splits empty.
  std::vector<int> many(48);
  for (int i = 0; i < 48; ++i) many[i] = 1 + (i * 97) % 700;
  out.push_back({KVCacheDType::BF16, true, 12, 12, 64, 700, many});
  out.push_back({KVCacheDType::INT8, true, 12, 12, 128, 700, many});
  out.push_back({KVCacheDType::FP8_E4M3, true, 24, 12, 64, 700, many});
  // short caches, one block a (sequence, head) holding the whole head (kernels/decode_attention_short.cuh):
  // lengths 1 to the capacity, the decode step's shape (B = 1, 12 heads, 640), D = 128 near its
  // shared-memory limit
  out.push_back({KVCacheDType::BF16, true, 4, 4, 64, 640, {640, 1, 17, 300}});
  out.push_back({KVCacheDType::BF16, true, 12, 12, 64, 640, {639}});
  out.push_back({KVCacheDType::BF16, true, 3, 3, 128, 400, {400, 2, 129}});
  return out;
}
INSTANTIATE_TEST_SUITE_P(Decode, DecodeAttention, ::testing::ValuesIn(decode_cases()), decode_name);

// The tensor-core kernel at each of its warp counts (DecodeAttentionTuning::mma_warps; the default
// takes 8 for 8-bit caches at D = 128 over long caches, 4 elsewhere): 4 warps with 64-token stages, 8 with 128-token
// stages and a plan of one block per SM, on every case that runs on tensor cores, MHA included
// (mha_tensor_cores), and replayed from a graph.
// The process-wide decode tuning for a scope; the default comes back even when a check fails.
struct ScopedTuning {
  explicit ScopedTuning(const attn::DecodeAttentionTuning& t) { attn::set_decode_attention_tuning(t); }
  ~ScopedTuning() { attn::set_decode_attention_tuning(attn::DecodeAttentionTuning{}); }
  ScopedTuning(const ScopedTuning&) = delete;
  ScopedTuning& operator=(const ScopedTuning&) = delete;
};
attn::DecodeAttentionTuning forced_warps(int warps) {
  attn::DecodeAttentionTuning t;
  t.mma_warps = warps;
  t.mha_tensor_cores = true;
  return t;
}

class DecodeAttentionFourWarps : public ::testing::TestWithParam<DecodeCase> {};
class DecodeAttentionEightWarps : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(DecodeAttentionFourWarps, MatchesFloat64Reference) {
  SKIP_WITHOUT_GPU();
  const ScopedTuning tuned(forced_warps(4));
  run_decode_case(GetParam(), Launch::Stream);
}

TEST_P(DecodeAttentionEightWarps, MatchesFloat64Reference) {
  SKIP_WITHOUT_GPU();
  const ScopedTuning tuned(forced_warps(8));
  run_decode_case(GetParam(), Launch::Stream);
}

std::vector<DecodeCase> tensor_core_cases() {
  std::vector<DecodeCase> out;
  for (const DecodeCase& c : decode_cases())
    if (c.act_bf16 && c.dtype != KVCacheDType::FP32) out.push_back(c);
  return out;
}
INSTANTIATE_TEST_SUITE_P(Decode, DecodeAttentionFourWarps, ::testing::ValuesIn(tensor_core_cases()), decode_name);
INSTANTIATE_TEST_SUITE_P(Decode, DecodeAttentionEightWarps, ::testing::ValuesIn(tensor_core_cases()), decode_name);

TEST(DecodeAttentionEightWarpsGraph, ReplayFollowsGrowingLengths) {
  SKIP_WITHOUT_GPU();
  const ScopedTuning tuned(forced_warps(8));
  run_decode_case({KVCacheDType::INT8, true, 12, 4, 128, 4100, {4097, 1, 1000}}, Launch::Graph);
  run_decode_case({KVCacheDType::BF16, true, 12, 1, 128, 2000, {17, 1999}}, Launch::Graph);
  run_decode_case({KVCacheDType::FP8_E4M3, true, 12, 12, 64, 1000, {128, 1000, 1}}, Launch::Graph);
}

TEST(DecodeAttentionTuning, RefusesOtherWarpCounts) {
  attn::DecodeAttentionTuning t;
  t.mma_warps = 6;
  EXPECT_THROW(attn::set_decode_attention_tuning(t), attn::Error);
}

// A decode step captured once in a CUDA graph and replayed after the lengths grew must see
// the new lengths (the split count and grid do not depend on them).
TEST(DecodeAttentionGraph, ReplayFollowsGrowingLengths) {
  SKIP_WITHOUT_GPU();
  run_decode_case({KVCacheDType::BF16, true, 8, 2, 64, 3000, {2049, 1, 700}}, Launch::Graph);
  run_decode_case({KVCacheDType::BF16, true, 12, 12, 64, 640, {600, 2, 17}}, Launch::Graph);  // short caches
  run_decode_case({KVCacheDType::FP8_E4M3, true, 4, 4, 128, 600, {513, 2}}, Launch::Graph);
}

TEST(DecodeAttentionGraph, TensorCoreReplayFollowsGrowingLengths) {
  SKIP_WITHOUT_GPU();
  run_decode_case({KVCacheDType::INT8, true, 12, 4, 128, 4100, {4097, 1, 1000}}, Launch::Graph);
  run_decode_case({KVCacheDType::BF16, true, 12, 1, 128, 2000, {17, 1999}}, Launch::Graph);
  run_decode_case({KVCacheDType::FP8_E4M3, true, 12, 12, 64, 1000, {64, 1000, 1}}, Launch::Graph);
}

// Short caches take the whole-head kernel: one split (the workspace holds one partial a head),
// where DecodeAttentionTuning::short_heads = false splits them (the split kernels, which must
// agree with the reference too); a cache too long for one block's shared memory, grouped heads, an
// append in the call, or more blocks than SMs keep the split kernels either way.
TEST(DecodeAttentionShort, OneSplitWhereTheHeadFitsAndSplitsWithout) {
  SKIP_WITHOUT_GPU();
  auto workspace = [](int B, int H, int Hkv, int D, int max_len, bool append) {
    attn::DecodeAttentionParams p;
    p.shape = {B, Hkv, max_len, D, KVCacheDType::BF16};
    p.H = H;
    p.act_bf16 = true;
    if (append) p.append_at = reinterpret_cast<const int32_t*>(16);  // (only its presence matters to the plan)
    return attn::decode_attention_workspace_bytes(p);
  };
  auto one_split = [](int B, int H, int Hkv, int D) {
    return (size_t)B * H * (D + 2) * sizeof(float) + (size_t)B * Hkv * sizeof(unsigned);
  };
  EXPECT_EQ(workspace(1, 12, 12, 64, 640, false), one_split(1, 12, 12, 64));
  EXPECT_EQ(workspace(3, 3, 3, 128, 400, false), one_split(3, 3, 3, 128));
  EXPECT_GT(workspace(1, 12, 12, 64, 4000, false), one_split(1, 12, 12, 64));  // K and V past shared memory
  EXPECT_GT(workspace(1, 12, 4, 64, 640, false), one_split(1, 12, 4, 64));     // grouped heads
  EXPECT_GT(workspace(1, 12, 12, 64, 640, true), one_split(1, 12, 12, 64));    // the call appends
  EXPECT_GT(workspace(16, 12, 12, 64, 640, false), one_split(16, 12, 12, 64)); // 192 blocks
  attn::DecodeAttentionTuning split_only;
  split_only.short_heads = false;
  const ScopedTuning tuned(split_only);
  EXPECT_GT(workspace(1, 12, 12, 64, 640, false), one_split(1, 12, 12, 64));
  run_decode_case({KVCacheDType::BF16, true, 12, 12, 64, 640, {639}}, Launch::Stream);
  run_decode_case({KVCacheDType::BF16, true, 4, 4, 64, 640, {640, 1, 17, 300}}, Launch::Graph);
}

// The CUDA-core split kernel (fp32 activations use it; DecodeAttentionTuning::tensor_cores =
// false forces it for bf16 activations, the benchmark's --cuda-cores) on grouped heads and on
// 8-bit MHA (16-byte loads, 16 columns a lane).
TEST(DecodeAttentionCudaCores, MatchesFloat64Reference) {
  SKIP_WITHOUT_GPU();
  attn::DecodeAttentionTuning cuda_cores;
  cuda_cores.tensor_cores = false;
  const ScopedTuning tuned(cuda_cores);
  run_decode_case({KVCacheDType::BF16, true, 12, 4, 64, 4100, {4097, 17}}, Launch::Stream);
  run_decode_case({KVCacheDType::INT8, true, 6, 1, 128, 1100, {1000, 1}}, Launch::Stream);
  run_decode_case({KVCacheDType::FP8_E4M3, true, 4, 4, 64, 4100, {4097, 17, 1}}, Launch::Stream);
}

// Both ways the splits' partials are merged, whatever the plan picks for the shape: by the last
// block of each head group (DecodeAttentionTuning::in_kernel_merge_bytes huge; its done counts
// must be back at zero for the graph's replay) and by the combine kernel (0), on both split
// kernels, with lengths that leave some splits empty.
TEST(DecodeAttentionMerge, BothMergesMatchFloat64Reference) {
  SKIP_WITHOUT_GPU();
  for (long bytes : {0L, 1L << 40}) {
    for (bool tensor_cores : {true, false}) {
      SCOPED_TRACE("in_kernel_merge_bytes " + std::to_string(bytes) + (tensor_cores ? ", tensor cores" : ", cuda cores"));
      attn::DecodeAttentionTuning t;
      t.in_kernel_merge_bytes = bytes;
      t.tensor_cores = tensor_cores;
      const ScopedTuning tuned(t);
      run_decode_case({KVCacheDType::BF16, true, 12, 1, 64, 4100, {4097, 1, 1000}}, Launch::Graph);
      run_decode_case({KVCacheDType::INT8, true, 8, 8, 128, 2000, {1999, 17}}, Launch::Graph);
      run_decode_case({KVCacheDType::FP8_E4M3, true, 12, 4, 64, 32768, {32768}}, Launch::Stream);
    }
  }
}

// The newest rows appended by the call (DecodeAttentionParams::append_at): in the split kernel
// (bf16 MHA: one split a head as at B = 32, many splits, one-token sequences, D = 128) and by
// the kv_cache_write it launches first everywhere else (GQA and MQA on tensor cores, 8-bit
// caches, fp32 activations).
TEST(DecodeAttentionAppend, MatchesFloat64ReferenceAndWritesTheRows) {
  SKIP_WITHOUT_GPU();
  struct AppendCase {
    DecodeCase c;
    bool fused;
  };
  const std::vector<AppendCase> cases = {
      {{KVCacheDType::BF16, true, 12, 12, 64, 700, std::vector<int>(40, 640)}, true},
      {{KVCacheDType::BF16, true, 12, 12, 64, 4100, {4097, 1, 17, 1000}}, true},
      {{KVCacheDType::BF16, true, 4, 4, 64, 300, {1}}, true},
      {{KVCacheDType::BF16, true, 8, 8, 128, 1100, {1000, 2, 65}}, true},
      {{KVCacheDType::BF16, true, 12, 4, 64, 1100, {1000, 1}}, false},
      {{KVCacheDType::BF16, true, 6, 1, 128, 700, {700, 33}}, false},
      {{KVCacheDType::INT8, true, 4, 4, 64, 1100, {1000, 1}}, false},
      {{KVCacheDType::FP8_E4M3, true, 8, 2, 128, 700, {5, 699}}, false},
      {{KVCacheDType::FP32, false, 4, 4, 64, 700, {699, 1}}, false},
      {{KVCacheDType::BF16, false, 4, 4, 64, 700, {699, 1}}, false},
  };
  for (const AppendCase& a : cases) {
    SCOPED_TRACE(std::string(dtype_name(a.c.dtype)) + " H " + std::to_string(a.c.H) + " Hkv " + std::to_string(a.c.Hkv) +
                 " D " + std::to_string(a.c.D) + " lengths " + ::testing::PrintToString(a.c.lengths));
    attn::DecodeAttentionParams p;
    p.act_bf16 = a.c.act_bf16;
    p.shape = {(int)a.c.lengths.size(), a.c.Hkv, a.c.max_len, a.c.D, a.c.dtype};
    p.H = a.c.H;
    p.append_at = reinterpret_cast<const int32_t*>(16);  // (only its presence matters to the plan)
    EXPECT_EQ(attn::decode_attention_fuses_append(p), a.fused);
    run_decode_case(a.c, Launch::Stream, /*append=*/true);
  }
}

TEST(DecodeAttentionDefaultStream, MatchesFloat64Reference) {
  SKIP_WITHOUT_GPU();
  run_decode_case({KVCacheDType::INT8, true, 8, 2, 128, 2000, {1999, 3}}, Launch::DefaultStream);
  run_decode_case({KVCacheDType::FP32, false, 4, 4, 64, 1000, {1000, 17}}, Launch::DefaultStream);
}

TEST(DecodeAttentionErrors, RefusesUnsupportedShapes) {
  SKIP_WITHOUT_GPU();
  attn::DecodeAttentionParams p;
  p.shape = {1, 2, 16, 96, KVCacheDType::BF16};
  p.H = 4;
  try {
    attn::decode_attention_workspace_bytes(p);
    ADD_FAILURE() << "D = 96 accepted";
  } catch (const attn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("96"), std::string::npos) << e.what();
  }
  p.shape.D = 64;
  p.H = 3;
  EXPECT_THROW(attn::decode_attention_workspace_bytes(p), attn::Error) << "H = 3 with Hkv = 2 accepted";
}

}  // namespace
