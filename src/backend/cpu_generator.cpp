// The CPU generator: one routine runs any set of (sequence, position, token) rows through the
// model against the cache, which serves both prefill (all prompt positions) and decode (one
// row per sequence). Per layer:
//   h = ln_1(x);  [q k v] = h W_qkv + b;  K[b, g, pos] = k;  V[b, g, pos] = v   (every row first)
//   o_h = sum_{t in keys(pos)} softmax_t(q_h . K[b, g(h), t] / sqrt(D)) V[b, g(h), t]
//   keys(pos): prefill, the prompt's variant mask [key_lo(pos), key_hi(pos)] (causal: [0, pos]);
//   decode, [0, pos] (the registry allows only variants whose decode rows see every cached key)
//   x += o W_proj + b;  x += gelu(ln_2(x) W_fc + b) W_fcproj + b
// and logits = ln_f(x) wte^T for the rows asked for. Writing every row's K/V before any
// attention is what makes prefill causal-correct: a row at pos reads only t <= pos.
#include "backend/cpu_generator.h"

#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/aligned_vector.h"
#include "attention/cpu_attention.h"
#include "core/error.h"
#include "model/cpu_layers.h"

namespace attn {

namespace {

// Nearest fp8 e4m3 value (round half to even; |x| <= 448 after scaling): 3 mantissa bits,
// normal exponents down to 2^-6, subnormal step 2^-9.
double round_e4m3(double x) {
  const double a = std::fabs(x);
  if (a == 0) return x;
  const int e = std::max(static_cast<int>(std::floor(std::log2(a))), -6);
  const double step = std::ldexp(1.0, e - 3);
  return std::min(std::nearbyint(a / step) * step, 448.0) * (x < 0 ? -1 : 1);
}

double round_bf16(double x) {
  const float f = static_cast<float>(x);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;  // round to nearest even on the top 16 bits
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

template <typename S>
void round_vector(S* x, int D, KVCacheDType t) {
  if (t == KVCacheDType::FP32) return;
  if (t == KVCacheDType::BF16) {
    for (int d = 0; d < D; ++d) x[d] = static_cast<S>(round_bf16(x[d]));
    return;
  }
  double amax = 0;
  for (int d = 0; d < D; ++d) amax = std::max(amax, std::fabs(static_cast<double>(x[d])));
  const double qmax = t == KVCacheDType::INT8 ? 127.0 : 448.0;
  const float scale = amax == 0 ? 1.0f : static_cast<float>(amax / qmax);  // stored in fp32
  for (int d = 0; d < D; ++d) {
    const double y = static_cast<double>(x[d]) / scale;
    const double q = t == KVCacheDType::INT8 ? std::clamp(std::nearbyint(y), -127.0, 127.0) : round_e4m3(y);
    x[d] = static_cast<S>(q * scale);
  }
}

template <typename S>
class CpuGenerator final : public Generator {
 public:
  CpuGenerator(const CpuGPT<S>& model, const GeneratorOptions& opt) : model_(model), opt_(opt) {
    const GPTConfig& c = model.config();
    opt_.max_len = resolved_max_len(c, opt);
    const size_t formula = kv_cache_bytes(c, opt_.batch, opt_.max_len, KVCacheDType::FP32) / 4 * sizeof(S);
    struct sysinfo si {};
    const size_t free_ram = sysinfo(&si) == 0 ? static_cast<size_t>(si.freeram + si.bufferram) * si.mem_unit : SIZE_MAX;
    check_kv_cache_fits(formula, free_ram, c, opt_, "the host (free RAM)");
    per_layer_ = static_cast<size_t>(opt_.batch) * c.n_kv_head * opt_.max_len * c.head_dim();
    k_.assign(per_layer_ * c.n_layer, S(0));
    v_.assign(per_layer_ * c.n_layer, S(0));
    lengths_.assign(opt_.batch, 0);
  }

  int batch() const override { return opt_.batch; }
  int max_len() const override { return opt_.max_len; }
  int vocab_size() const override { return model_.config().vocab_size; }
  KVCacheDType cache_dtype() const override { return opt_.cache; }
  size_t cache_bytes() const override { return (k_.size() + v_.size()) * sizeof(S); }
  int length(int b) const override { return lengths_.at(b); }

  void prefill(const int32_t* tokens, const int* lengths, int T, float* logits) override {
    std::vector<Row> rows;
    std::vector<int> wanted;
    for (int b = 0; b < opt_.batch; ++b) {
      ATTN_CHECK(lengths[b] >= 1 && lengths[b] <= T && lengths[b] <= opt_.max_len,
                 "prompt {} has length {}: it must be in [1, {}] (padded width {}, cache length {})", b, lengths[b],
                 std::min(T, opt_.max_len), T, opt_.max_len);
      // The prompt's attention mask (the variants', kernels/attention_variant.h): every prompt row's
      // K/V is cached before any attention, so a row may read keys after it (prefix-LM).
      const int L = lengths[b];
      std::vector<std::vector<int32_t>> counts;
      const VariantArgs args = host_variant_args(model_.attention(), tokens + static_cast<size_t>(b) * T, 1, L, counts);
      const VariantMask mask(args, 0, L);
      for (int t = 0; t < L; ++t)
        rows.push_back({b, t, tokens[static_cast<size_t>(b) * T + t], mask.key_lo(t), mask.key_hi(t)});
      wanted.push_back(static_cast<int>(rows.size()) - 1);
      lengths_[b] = lengths[b];
    }
    run(rows, wanted, logits);
  }

  void decode(const int32_t* tokens, float* logits) override {
    std::vector<Row> rows;
    std::vector<int> wanted;
    for (int b = 0; b < opt_.batch; ++b) {
      ATTN_CHECK(lengths_[b] >= 1, "decode before prefill (sequence {} is empty)", b);
      ATTN_CHECK(lengths_[b] < opt_.max_len, "sequence {} is full: the cache holds {} positions", b, opt_.max_len);
      rows.push_back({b, lengths_[b], tokens[b], 0, lengths_[b]});  // decodable variants: every cached key
      wanted.push_back(b);
      ++lengths_[b];
    }
    run(rows, wanted, logits);
  }

 private:
  struct Row {
    int b, pos;
    int32_t token;
    int key_lo, key_hi;  // the cached positions it attends to
  };

  S* cache_at(AlignedVector<S>& c, int l, int b, int g, int t) {
    const GPTConfig& cfg = model_.config();
    return c.data() + l * per_layer_ + ((static_cast<size_t>(b) * cfg.n_kv_head + g) * opt_.max_len + t) * cfg.head_dim();
  }

  // Runs the rows through the model; logits (wanted.size(), vocab) of the rows in `wanted`.
  void run(const std::vector<Row>& rows, const std::vector<int>& wanted, float* logits) {
    const GPTConfig& cfg = model_.config();
    const ParamLayout& lay = model_.layout();
    const int N = static_cast<int>(rows.size()), C = cfg.n_embd, QKV = cfg.qkv_dim(), H = cfg.n_head;
    const int Hkv = cfg.n_kv_head, D = cfg.head_dim(), V = cfg.vocab_size;
    const size_t NC = static_cast<size_t>(N) * C;
    const S* P = model_.params();
    auto W = [&](int idx) { return P + lay.get(idx).offset; };
    for (const Row& r : rows)
      ATTN_CHECK(r.token >= 0 && r.token < V, "token id {} of sequence {} is outside the vocabulary [0, {})", r.token,
                 r.b, V);

    AlignedVector<S> x(NC), h(NC), qkv(static_cast<size_t>(N) * QKV), y(NC), branch(NC), fc(NC * 4),
        mean(N), rstd(N);
    for (int i = 0; i < N; ++i)
      for (int c = 0; c < C; ++c)
        x[static_cast<size_t>(i) * C + c] =
            W(lay.wte())[static_cast<size_t>(rows[i].token) * C + c] + W(lay.wpe())[static_cast<size_t>(rows[i].pos) * C + c];

    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    for (int l = 0; l < cfg.n_layer; ++l) {
      const LayerParams& lp = lay.layer(l);
      layernorm_forward(h.data(), mean.data(), rstd.data(), x.data(), W(lp.ln1_w), W(lp.ln1_b), N, C);
      matmul_forward(qkv.data(), h.data(), W(lp.qkv_w), W(lp.qkv_b), N, C, QKV);
      for (int i = 0; i < N; ++i)  // K and V of every row into the cache, rounded as stored
        for (int g = 0; g < Hkv; ++g) {
          const S* row = qkv.data() + static_cast<size_t>(i) * QKV;
          S* k = cache_at(k_, l, rows[i].b, g, rows[i].pos);
          S* v = cache_at(v_, l, rows[i].b, g, rows[i].pos);
          std::copy(row + (H + g) * D, row + (H + g + 1) * D, k);
          std::copy(row + (H + Hkv + g) * D, row + (H + Hkv + g + 1) * D, v);
          round_vector(k, D, opt_.cache);
          round_vector(v, D, opt_.cache);
        }
#pragma omp parallel for schedule(static) if (N * H > 8)
      for (int ih = 0; ih < N * H; ++ih) {
        const int i = ih / H, hh = ih % H, g = hh / (H / Hkv), lo = rows[i].key_lo, len = rows[i].key_hi + 1;
        const S* q = qkv.data() + static_cast<size_t>(i) * QKV + hh * D;
        std::vector<double> s(len, 0.0);
        double mx = -INFINITY;
        for (int t = lo; t < len; ++t) {
          const S* k = cache_at(k_, l, rows[i].b, g, t);
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += static_cast<double>(q[d]) * k[d];
          s[t] = dot * scale;
          mx = std::max(mx, s[t]);
        }
        double sum = 0;
        for (int t = lo; t < len; ++t) sum += s[t] = std::exp(s[t] - mx);
        std::vector<double> o(D, 0.0);
        for (int t = lo; t < len; ++t) {
          const S* v = cache_at(v_, l, rows[i].b, g, t);
          for (int d = 0; d < D; ++d) o[d] += s[t] * v[d];
        }
        S* out = y.data() + static_cast<size_t>(i) * C + hh * D;
        for (int d = 0; d < D; ++d) out[d] = static_cast<S>(o[d] / sum);
      }
      matmul_forward(branch.data(), y.data(), W(lp.attproj_w), W(lp.attproj_b), N, C, C);
      residual_forward(x.data(), x.data(), branch.data(), NC);
      layernorm_forward(h.data(), mean.data(), rstd.data(), x.data(), W(lp.ln2_w), W(lp.ln2_b), N, C);
      matmul_forward(fc.data(), h.data(), W(lp.fc_w), W(lp.fc_b), N, C, 4 * C);
      gelu_forward(fc.data(), fc.data(), NC * 4);
      matmul_forward(branch.data(), fc.data(), W(lp.fcproj_w), W(lp.fcproj_b), N, 4 * C, C);
      residual_forward(x.data(), x.data(), branch.data(), NC);
    }
    const int M = static_cast<int>(wanted.size());
    AlignedVector<S> last(static_cast<size_t>(M) * C), lnf(static_cast<size_t>(M) * C), out(static_cast<size_t>(M) * V);
    for (int j = 0; j < M; ++j)
      std::copy_n(x.data() + static_cast<size_t>(wanted[j]) * C, C, last.data() + static_cast<size_t>(j) * C);
    layernorm_forward(lnf.data(), mean.data(), rstd.data(), last.data(), W(lay.lnf_w()), W(lay.lnf_b()), M, C);
    lm_head_forward(out.data(), lnf.data(), W(lay.wte()), M, C, V, V);
    for (size_t j = 0; j < out.size(); ++j) logits[j] = static_cast<float>(out[j]);
  }

  const CpuGPT<S>& model_;
  GeneratorOptions opt_;
  size_t per_layer_ = 0;
  AlignedVector<S> k_, v_;  // (layer, B, Hkv, max_len, D)
  std::vector<int> lengths_;
};

}  // namespace

void round_like_kv_cache(float* x, int D, KVCacheDType t) { round_vector(x, D, t); }
void round_like_kv_cache(double* x, int D, KVCacheDType t) { round_vector(x, D, t); }

template <typename S>
std::unique_ptr<Generator> make_cpu_generator(const CpuGPT<S>& model, const GeneratorOptions& opt) {
  return std::make_unique<CpuGenerator<S>>(model, opt);
}
template std::unique_ptr<Generator> make_cpu_generator(const CpuGPT<float>&, const GeneratorOptions&);
template std::unique_ptr<Generator> make_cpu_generator(const CpuGPT<double>&, const GeneratorOptions&);

}  // namespace attn
