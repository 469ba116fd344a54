// Cached generation on the CUDA backend (backend/generator.h).
//
// prefill (prompts right-padded to T, lengths on the device):
//   x = wte[tok] + wpe[t] for all (b, t < T); per layer h = ln_1(x), qkv = h W + b,
//   kv_cache_write(all T positions from 0; padding beyond a prompt is overwritten by decode
//   before it is ever read), y = causal attention (the backend's implementation: naive or
//   flash), x += proj(y), x += mlp(ln_2(x)); then the row at lengths[b] - 1 of each prompt
//   goes through ln_f and the LM head. Each residual add and the layernorm after it (ln_2, the
//   next layer's ln_1) are one kernel (kern::residual_layernorm_forward).
// decode (one token per sequence, everything in device memory so it is captured once):
//   positions = lengths; lengths += 1; x = wte[tok] + wpe[positions]   (kern::start_decode_step)
//   per layer ln_1 -> qkv -> decode_attention over lengths, which appends K/V at positions
//   (DecodeAttentionParams::append_at) -> proj -> residual + ln_2 -> MLP -> residual + (the
//   next ln_1, or ln_f);
//   LM head -> (B, vocab) fp32 logits and next[b] = argmax_v logits[b, v] (greedy ids) in one
//   pass (kern::logits_argmax). With cuBLASLt's matmuls that is 7 kernels a layer at B = 32:
//   88 a step for GPT-2 124M; 137 before the residual adds were fused, 112 before the append
//   moved into decode attention, 100 before c_proj's split-K partials were summed by the
//   layernorm after it instead of cuBLASLt's reduction kernel (H100, sessions 23, 24 and 27:
//   0.660 -> 0.630 -> 0.610 -> 0.591 ms a step, the second with the layernorms on programmatic
//   dependent launch).
// bf16 activations at B <= kern::kGemvMaxRows (the batch-1 step): the matmuls are GEMVs
// (kernels/gemv.h) with everything around them fused in, launched with programmatic dependent
// launch so that each prefetches its weights while the kernel before it finishes:
//   [ln_1 + qkv + bias + K/V append to a bf16 cache] -> (8-bit caches: decode_attention's
//   kv_cache_write) -> decode_attention (one split kernel: the last block of each head merges;
//   a combine pass only for large partials) -> [proj + bias + residual] -> [ln_2 + fc + bias + GELU] ->
//   [fc_proj + bias + residual];  [ln_f + LM head + fp32 logits + argmax]
// (5 kernels a layer with a bf16 cache: 1 + 12 x 5 + 1 = 62 for GPT-2 124M, at B = 1 too since
// decode attention takes short caches as one block a head (kernels/decode_attention_short.cuh);
// 74 where its splits need the combine kernel);
// the same roundings as the unfused path. Larger batches and fp32 keep cuBLASLt.
// The decode step is launched kernel by kernel on the first call (this also settles the
// cuBLASLt algorithm choices), captured into a CUDA graph on the second and replayed after
// (GeneratorOptions::cuda_graph); a prompt length's prefill is captured after its first call and
// replayed (GeneratorOptions::prefill_graph). Only the token upload and the download stay outside the
// decode graph: decode copies the (B, V) logits, decode_greedy only the B argmax ids (into pinned
// memory: a pageable copy would add a staging copy and a host argmax over B x V floats).
// decode_greedy_steps runs ahead: the argmax ids stay on the device as the next step's tokens,
// so the steps of a run are queued back to back, with no upload, download or host wait between
// them (each cost ~14 us of a ~260 us batch-1 step on an H100: session 29's profile).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "attention/cpu_attention.h"
#include "attention/cuda_attention.h"
#include "backend/cuda_graph.h"
#include "backend/cuda_matmul.h"
#include "backend/cuda_model_view.h"
#include "core/cuda_check.h"
#include "core/error.h"
#include "kernels/decode_attention.h"
#include "kernels/document_ids.h"
#include "kernels/gemv.h"
#include "kernels/generation.h"
#include "kernels/kernels.h"

namespace attn {

namespace {

using bf16 = __nv_bfloat16;

template <typename T>
class CudaGenerator final : public Generator {
 public:
  CudaGenerator(const CudaModelView& m, const GeneratorOptions& opt) : m_(m), opt_(opt) {
    const GPTConfig& c = *m.cfg;
    opt_.max_len = resolved_max_len(c, opt);
    B_ = opt_.batch;
    L_ = opt_.max_len;
    ATTN_CHECK(opt_.max_prompt >= 0 && opt_.max_prompt <= L_,
               "generation max_prompt = {} must be in [0, max_len = {}] (0: max_len)", opt_.max_prompt, L_);
    P_ = opt_.max_prompt > 0 ? opt_.max_prompt : L_;
    ATTN_CHECK(opt_.prefill_rows >= 0, "generation prefill_rows = {} must be >= 0", opt_.prefill_rows);
    // rows of one prefill pass: at least one whole prompt, at most the whole batch
    rows_ = std::max(P_, std::min(B_ * P_, opt_.prefill_rows > 0 ? opt_.prefill_rows : kPrefillRows));
    ATTN_CHECK(c.head_dim() == 64 || c.head_dim() == 128,
               "cached generation on the GPU needs a head dim of 64 or 128 (model.n_embd / model.n_head = {}); use --no-cache",
               c.head_dim());
    shape_.B = B_, shape_.Hkv = c.n_kv_head, shape_.max_len = L_, shape_.D = c.head_dim(), shape_.dtype = opt_.cache;
    gemv_ = act_bf16() && B_ <= kern::kGemvMaxRows && c.n_embd % 8 == 0;
    fc_proj_splits_ = choose_fc_proj_splits(c.n_embd);
    const size_t cache = kv_cache_bytes(c, B_, L_, opt_.cache);
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    check_kv_cache_fits(cache, free_b, c, opt_, "the GPU");
    AttentionUse use;
    use.decode = true;
    attention_ = make_cuda_attention(m.attention, m.act, use);
    try {
      allocate();
    } catch (...) {  // the destructor does not run: give back what was taken
      release_all();
      throw;
    }
    const int carveout_from = opt_.gemv_carveout_from_batch > 0 ? opt_.gemv_carveout_from_batch : kGemvCarveoutFromBatch;
    if (gemv_ && opt_.cache == KVCacheDType::BF16 && B_ >= carveout_from)  // (the GEMV appends: no append_at)
      gemv_carveout_ = decode_attention_carveout(decode_params());
  }

  ~CudaGenerator() override {
    cudaStreamSynchronize(m_.stream);
    graph_.reset();
    prefill_graphs_.clear();
    release_all();
  }

  int batch() const override { return B_; }
  int max_len() const override { return L_; }
  int vocab_size() const override { return m_.cfg->vocab_size; }
  KVCacheDType cache_dtype() const override { return opt_.cache; }
  size_t cache_bytes() const override { return cache_bytes_; }
  int length(int b) const override { return lengths_.at(b); }
  int decode_step_kernels() const override { return graph_.kernel_nodes(); }

  void prefill(const int32_t* tokens, const int* lengths, int seq, float* logits) override {
    const GPTConfig& c = *m_.cfg;
    ATTN_CHECK(seq >= 1 && seq <= P_, "prompts padded to {} tokens, but the generator was made for at most {} "
               "(GeneratorOptions::max_prompt, the cache holds {} positions)", seq, P_, L_);
    for (int b = 0; b < B_; ++b) {
      ATTN_CHECK(lengths[b] >= 1 && lengths[b] <= seq, "prompt {} has length {}: it must be in [1, {}]", b, lengths[b], seq);
      lengths_[b] = lengths[b];
    }
    const size_t N = static_cast<size_t>(B_) * seq;
    for (size_t i = 0; i < N; ++i) {
      const bool used = static_cast<int>(i % seq) < lengths[i / seq];
      ATTN_CHECK(!used || (tokens[i] >= 0 && tokens[i] < c.vocab_size),
                 "token id {} of prompt {} is outside the vocabulary [0, {})", tokens[i], i / seq, c.vocab_size);
      host_ints_[i] = used ? tokens[i] : 0;  // padding: any valid id
    }
    for (int b = 0; b < B_; ++b) host_ints_[N + b] = lengths[b];
    check_padding_is_invisible(seq);
    run_prefill(seq);
    if (logits) download_logits(logits);
  }

  // A prompt length's first prefill runs kernel by kernel (cuBLASLt and the attention settle
  // their choices), then is captured for the calls after it (GeneratorOptions::prefill_graph):
  // its ~100 small kernels cost more to launch one by one than to run (H100, session 33, GPT-2
  // 124M, prompt 128: 2.6-3.4 -> 1.6 ms at B = 1, 2.7-4.1 -> 2.1-2.3 ms at B = 8).
  void run_prefill(int seq) {
    cudaStream_t s = m_.stream;
    if (auto graph = prefill_graphs_.find(seq); graph != prefill_graphs_.end()) {
      graph->second.launch(s);
      return;
    }
    enqueue_prefill(seq);
    if (!opt_.cuda_graph || !opt_.prefill_graph || prefill_graphs_.size() >= kPrefillGraphs) return;
    CUDA_CHECK(cudaStreamSynchronize(s));  // the launched prefill ends before the capture begins
    try {
      prefill_graphs_[seq].capture(s, [&] { enqueue_prefill(seq); });
    } catch (...) {  // no half-made graph left for the next call to launch
      prefill_graphs_.erase(seq);
      throw;
    }
  }

  // What a prefill of prompts padded to seq runs on the device, from the uploads of host_ints_
  // (tokens, then lengths) to the logits of each prompt's last row in logits_f_.
  void enqueue_prefill(int seq) {
    cudaStream_t s = m_.stream;
    const size_t N = static_cast<size_t>(B_) * seq;
    CUDA_CHECK(cudaMemcpyAsync(prefill_tokens_, host_ints_, N * sizeof(int32_t), cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaMemcpyAsync(lengths_dev_, host_ints_ + N, B_ * sizeof(int32_t), cudaMemcpyHostToDevice, s));
    for (size_t k = 0; k < counted_.size(); ++k)  // the variants' token counts of the padded prompts
      kern::document_ids(prefill_counts_ + k * static_cast<size_t>(B_) * P_, prefill_tokens_, B_, seq, counted_[k], s);
    // Sequences in passes of at most rows_ rows (B x T activations would otherwise be held
    // for the widest batch): per pass embed, run every layer, keep each prompt's last row.
    const int chunk = std::max(1, std::min(B_, rows_ / seq));
    for (int b0 = 0; b0 < B_; b0 += chunk) prefill_pass(b0, std::min(chunk, B_ - b0), seq);
    lm_head(last_, nullptr);
  }

  void decode(const int32_t* tokens, float* logits) override {
    run_decode_step(tokens);
    download_logits(logits);
  }

  // Prefill runs the attention on prompts right-padded to seq: the variants' masks (e.g.
  // prefix-LM's prefix, capped by the prompt in cached generation) must give every prompt row
  // the keys of its unpadded prompt (the CPU generator's rule), or the pads would be attended.
  void check_padding_is_invisible(int seq) {
    if (!any_variant_active(variant_args(m_.attention)) && counted_.empty()) return;
    std::vector<std::vector<int32_t>> store;
    const VariantArgs padded = host_variant_args(m_.attention, host_ints_, B_, seq, store);
    for (int b = 0; b < B_; ++b) {
      const int L = lengths_[b];
      const VariantArgs own = host_variant_args(m_.attention, host_ints_ + static_cast<size_t>(b) * seq, 1, L, store);
      const VariantMask mp(padded, b, seq), mo(own, 0, L);
      for (int i = 0; i < L; ++i)
        ATTN_CHECK(mp.key_lo(i) == mo.key_lo(i) && mp.key_hi(i) == mo.key_hi(i),
                   "cached generation on the GPU: prompt {} (length {}, padded to {}) would attend to its padding "
                   "under the attention variants ({}); pass prompts of equal length or use --no-cache",
                   b, L, seq, variants_on(m_.attention).empty() ? "" : variants_on(m_.attention)[0].first);
    }
  }

  // Prefill of sequences [b0, b0 + nb) (prompts padded to seq) through all layers; writes their
  // cache rows and their last rows into last_[b0 ..).
  void prefill_pass(int b0, int nb, int seq) {
    const GPTConfig& c = *m_.cfg;
    cudaStream_t s = m_.stream;
    const int C = c.n_embd, QKV = c.qkv_dim(), Ni = nb * seq;
    kern::encoder_forward(x_, prefill_tokens_ + static_cast<size_t>(b0) * seq, P(m_.layout->wte()),
                          P(m_.layout->wpe()), nb, seq, C, DropoutState{}, s);
    AttentionShape ash;
    ash.B = nb, ash.T = seq, ash.n_head = c.n_head, ash.n_kv_head = c.n_kv_head, ash.head_dim = c.head_dim();
    KVCacheShape sub = shape_;  // the cache rows of these sequences: (nb, Hkv, max_len, D) at b0
    sub.B = nb;
    const size_t slots = static_cast<size_t>(b0) * c.n_kv_head * L_;
    const size_t skip = slots * c.head_dim() * kv_cache_element_bytes(opt_.cache);
    layernorm(ln1_into_h(0), x_, Ni);
    for (int l = 0; l < c.n_layer; ++l) {
      const LayerParams& lp = m_.layout->layer(l);
      KVCacheLayer part = layers_[l];
      part.k = static_cast<char*>(part.k) + skip, part.v = static_cast<char*>(part.v) + skip;
      if (part.k_scale) part.k_scale += slots, part.v_scale += slots;
      m_.matmul->forward(qkv_, h_, P(lp.qkv_w), P(lp.qkv_b), Ni, C, QKV);
      kv_cache_write(qkv_, static_cast<int64_t>(seq) * QKV, QKV, act_bf16(), c.n_head, seq, zeros_, part, sub, s);
      if (!counted_.empty()) {
        std::vector<const int32_t*> counts;
        for (size_t k = 0; k < counted_.size(); ++k)
          counts.push_back(prefill_counts_ + k * static_cast<size_t>(B_) * P_ + static_cast<size_t>(b0) * seq);
        attention_->set_token_counts(counts);
      }
      attention_->forward(qkv_, y_, att_saved_, att_scratch_, ash, DropoutState{}, s);
      mlp_and_residuals(l, Ni, l + 1 < c.n_layer ? ln1_into_h(l + 1) : Norm{});
    }
    kern::gather_last_rows(last_ + static_cast<size_t>(b0) * C, x_, lengths_dev_ + b0, nb, seq, C, s);
  }

  void decode_greedy(const int32_t* tokens, int32_t* next) override { decode_greedy_steps(tokens, 1, next); }

  // Step 0 is fed the uploaded tokens; each step's argmax lands in decode_tokens_, which feeds
  // the next one, and start_decode_step logs what each step was fed in fed_ (B, L). So step s's
  // ids are what step s + 1 was fed (fed_ at position start[b] + s + 1), and the last step's are
  // in decode_tokens_: one wait and two copies for the whole run.
  void decode_greedy_steps(const int32_t* tokens, int steps, int32_t* out) override {
    check_room_for_steps(*this, steps);
    const std::vector<int> start = lengths_;
    for (int s = 0; s < steps; ++s) run_decode_step(s == 0 ? tokens : nullptr);
    cudaStream_t st = m_.stream;
    if (steps > 1) {  // the columns [lo, hi) of fed_ that hold some sequence's ids
      const int lo = *std::min_element(start.begin(), start.end()) + 1;
      const int hi = *std::max_element(start.begin(), start.end()) + steps;
      const size_t pitch = static_cast<size_t>(L_) * sizeof(int32_t);
      CUDA_CHECK(cudaMemcpy2DAsync(host_fed_ + lo, pitch, fed_ + lo, pitch, (hi - lo) * sizeof(int32_t), B_,
                                   cudaMemcpyDeviceToHost, st));
    }
    CUDA_CHECK(cudaMemcpyAsync(host_next_, decode_tokens_, B_ * sizeof(int32_t), cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    for (int s = 0; s + 1 < steps; ++s)
      for (int b = 0; b < B_; ++b)
        out[static_cast<size_t>(s) * B_ + b] = host_fed_[static_cast<size_t>(b) * L_ + start[b] + s + 1];
    std::copy_n(host_next_, B_, out + static_cast<size_t>(steps - 1) * B_);
  }

 private:
  // Runs one decode step (graph replay after the first two calls) fed `tokens`, uploaded, or
  // (null) the ids the step before left in decode_tokens_; leaves logits_f_ and, in
  // decode_tokens_, the argmax of each sequence's logits on the device.
  void run_decode_step(const int32_t* tokens) {
    const GPTConfig& c = *m_.cfg;
    for (int b = 0; b < B_; ++b) {
      ATTN_CHECK(lengths_[b] >= 1, "decode before prefill (sequence {} is empty)", b);
      ATTN_CHECK(lengths_[b] < L_, "sequence {} is full: the cache holds {} positions", b, L_);
      ATTN_CHECK(!tokens || (tokens[b] >= 0 && tokens[b] < c.vocab_size),
                 "token id {} of sequence {} is outside the vocabulary [0, {})", tokens ? tokens[b] : 0, b, c.vocab_size);
      if (tokens) host_ints_[b] = tokens[b];
    }
    cudaStream_t s = m_.stream;
    if (tokens) CUDA_CHECK(cudaMemcpyAsync(decode_tokens_, host_ints_, B_ * sizeof(int32_t), cudaMemcpyHostToDevice, s));
    if (!opt_.cuda_graph || decode_calls_ == 0) {
      decode_step();  // first call uncaptured: cuBLASLt picks its algorithms outside the capture
    } else {
      if (!graph_.captured()) graph_.capture(s, [&] { decode_step(); });
      graph_.launch(s);
    }
    ++decode_calls_;
    for (int b = 0; b < B_; ++b) ++lengths_[b];
  }

  bool act_bf16() const { return m_.act == DType::BF16; }
  const T* P(int tensor) const { return static_cast<const T*>(m_.params) + m_.layout->get(tensor).offset; }

  // A layernorm's weights and where it writes: a layer's ln_1 into h_, or ln_f into lnf_ (out
  // null: none). mlp_and_residuals fuses the one that reads a layer's output into its last
  // residual add; the first layer's ln_1 and the prefill's ln_f run alone (layernorm()).
  struct Norm {
    const T *w = nullptr, *b = nullptr;
    T* out = nullptr;
  };
  Norm ln1_into_h(int l) const { return {P(m_.layout->layer(l).ln1_w), P(m_.layout->layer(l).ln1_b), h_}; }
  Norm lnf_into_lnf() const { return {P(m_.layout->lnf_w()), P(m_.layout->lnf_b()), lnf_}; }
  void layernorm(const Norm& norm, const T* in, int rows) {
    kern::layernorm_forward(norm.out, mean_, rstd_, in, norm.w, norm.b, rows, m_.cfg->n_embd, m_.stream);
  }

  // x += proj(y); h = ln_2(x); x += c_proj(gelu(c_fc(h))) for N rows of layer l, then
  // next.out = next(x) when asked: each residual add fused with the layernorm after it
  // (kern::residual_layernorm_forward, the same result as the two kernels).
  // split_k (the decode step, fc_proj_splits_ > 1): c_proj as fp32 partials over K slices, summed
  // by the residual + layernorm after it (kern::residual_layernorm_forward_split_k) instead of
  // cuBLASLt's split-K reduction kernel; the same sum, one kernel fewer a layer.
  void mlp_and_residuals(int l, int N, const Norm& next, bool split_k = false) {
    const GPTConfig& c = *m_.cfg;
    const LayerParams& lp = m_.layout->layer(l);
    const int C = c.n_embd;
    const size_t NC = static_cast<size_t>(N) * C;
    cudaStream_t s = m_.stream;
    m_.matmul->forward(branch_, y_, P(lp.attproj_w), P(lp.attproj_b), N, C, C);
    kern::residual_layernorm_forward(x_, h_, mean_, rstd_, x_, branch_, P(lp.ln2_w), P(lp.ln2_b), N, C, DropoutState{}, s);
    m_.matmul->forward(fc_gelu_, h_, P(lp.fc_w), P(lp.fc_b), N, C, 4 * C, /*pre_gelu=*/fc_);
    if (split_k && next.out) {
      ATTN_CHECK(N <= B_ && fc_proj_splits_ > 1, "split c_proj: {} rows, partials for {}", N, B_);
      m_.matmul->forward_split_k_partials(fc_proj_parts_, fc_gelu_, P(lp.fcproj_w), N, 4 * C, C, fc_proj_splits_);
      kern::residual_layernorm_forward_split_k(x_, next.out, mean_, rstd_, x_, fc_proj_parts_, fc_proj_splits_,
                                               P(lp.fcproj_b), next.w, next.b, N, C, s);
      return;
    }
    m_.matmul->forward(branch_, fc_gelu_, P(lp.fcproj_w), P(lp.fcproj_b), N, 4 * C, C);
    if (next.out)
      kern::residual_layernorm_forward(x_, next.out, mean_, rstd_, x_, branch_, next.w, next.b, N, C, DropoutState{}, s);
    else
      kern::residual_forward(x_, x_, branch_, NC, DropoutState{}, s);
  }

  // logits_f_ (B, V) = ln_f(rows) wte^T for the B rows at `rows`; copied to the host when out.
  void lm_head(const T* rows, float* out) {
    if (gemv_) {
      gemv(lm_head_args(rows));
      if (out) download_logits(out);
      return;
    }
    layernorm(lnf_into_lnf(), rows, B_);
    logits_of_lnf();
    if (out) download_logits(out);
  }

  // logits_f_ (B, V) = float(lnf_ wte^T) and decode_tokens_ = their argmax (one pass over the
  // logits): the greedy ids, which feed the next decode step unless the host sends tokens.
  void logits_of_lnf() {
    const GPTConfig& c = *m_.cfg;
    m_.matmul->forward(logits_, lnf_, P(m_.layout->wte()), nullptr, B_, c.n_embd, c.padded_vocab_size);
    kern::logits_argmax(decode_tokens_, logits_f_, logits_, B_, c.vocab_size, c.padded_vocab_size, argmax_scratch_, m_.stream);
  }

  void download_logits(float* out) {
    const size_t n = static_cast<size_t>(B_) * m_.cfg->vocab_size;
    CUDA_CHECK(cudaMemcpyAsync(out, logits_f_, n * sizeof(float), cudaMemcpyDeviceToHost, m_.stream));
    CUDA_CHECK(cudaStreamSynchronize(m_.stream));
  }

  // One decode step, all on the device (what the graph holds).
  void decode_step() {
    const GPTConfig& c = *m_.cfg;
    const int C = c.n_embd, QKV = c.qkv_dim();
    cudaStream_t s = m_.stream;
    kern::start_decode_step(x_, positions_, lengths_dev_, decode_tokens_, fed_, L_, P(m_.layout->wte()),
                            P(m_.layout->wpe()), B_, C, s);
    if (!gemv_) layernorm(ln1_into_h(0), x_, B_);
    for (int l = 0; l < c.n_layer; ++l) {
      const LayerParams& lp = m_.layout->layer(l);
      bool appended = false;
      if (gemv_)
        appended = gemv_qkv(l);
      else
        m_.matmul->forward(qkv_, h_, P(lp.qkv_w), P(lp.qkv_b), B_, C, QKV);
      DecodeAttentionParams p = decode_params();
      p.cache = layers_[l];
      if (!appended) p.append_at = positions_;  // K/V appended by the attention (in its kernel where it can)
      decode_attention(p, decode_ws_, s);
      if (gemv_) gemv_mlp_and_residuals(l);
      else mlp_and_residuals(l, B_, l + 1 < c.n_layer ? ln1_into_h(l + 1) : lnf_into_lnf(), fc_proj_splits_ > 1);
    }
    if (gemv_) {
      kern::GemvArgs head = lm_head_args(x_);
      head.argmax = decode_tokens_, head.argmax_scratch = argmax_scratch_;
      gemv(head);
    } else {
      logits_of_lnf();
    }
  }

  // ---- the GEMV path (gemv_: bf16 activations, B <= kern::kGemvMaxRows) ----------------------
  // P() as bf16: only called when T is bf16.
  const bf16* W(int tensor) const { return reinterpret_cast<const bf16*>(P(tensor)); }
  static bf16* A(T* p) { return reinterpret_cast<bf16*>(p); }

  // Every GEMV of the generator, at the step's carveout (gemv_carveout_).
  void gemv(const kern::GemvArgs& g) { kern::gemv(g, m_.stream, gemv_carveout_); }

  kern::GemvArgs gemv_args(const T* in, int tensor_w, int tensor_b, int K, int N) const {
    kern::GemvArgs g;
    g.a = reinterpret_cast<const bf16*>(in), g.w = W(tensor_w), g.bias = tensor_b >= 0 ? W(tensor_b) : nullptr;
    g.M = B_, g.N = N, g.K = K;
    return g;
  }

  // qkv = ln_1(x) W + b, K and V appended to a bf16 cache in the same kernel (true), else the
  // caller's kv_cache_write quantizes them.
  bool gemv_qkv(int l) {
    const GPTConfig& c = *m_.cfg;
    const LayerParams& lp = m_.layout->layer(l);
    kern::GemvArgs g = gemv_args(x_, lp.qkv_w, lp.qkv_b, c.n_embd, c.qkv_dim());
    g.ln_w = W(lp.ln1_w), g.ln_b = W(lp.ln1_b), g.out = A(qkv_);
    const bool append = opt_.cache == KVCacheDType::BF16;
    if (append) {
      g.k_cache = static_cast<bf16*>(layers_[l].k), g.v_cache = static_cast<bf16*>(layers_[l].v);
      g.positions = positions_, g.cache_col0 = c.n_head * c.head_dim(), g.Hkv = c.n_kv_head, g.D = c.head_dim();
      g.max_len = L_;
    }
    gemv(g);
    return append;
  }

  // x += proj(y); x += c_proj(gelu(c_fc(ln_2(x)))): three GEMVs, the residuals and ln_2 fused in.
  void gemv_mlp_and_residuals(int l) {
    const GPTConfig& c = *m_.cfg;
    const LayerParams& lp = m_.layout->layer(l);
    const int C = c.n_embd;
    kern::GemvArgs proj = gemv_args(y_, lp.attproj_w, lp.attproj_b, C, C);
    proj.residual = A(x_), proj.out = A(x_);
    gemv(proj);
    kern::GemvArgs fc = gemv_args(x_, lp.fc_w, lp.fc_b, C, 4 * C);
    fc.ln_w = W(lp.ln2_w), fc.ln_b = W(lp.ln2_b), fc.gelu = true, fc.out = A(fc_gelu_);
    gemv(fc);
    kern::GemvArgs fcproj = gemv_args(fc_gelu_, lp.fcproj_w, lp.fcproj_b, 4 * C, C);
    fcproj.residual = A(x_), fcproj.out = A(x_);
    gemv(fcproj);
  }

  // logits_f_ (B, V) = float(bf16(ln_f(rows) wte^T)): the vocabulary rows only (not the padding).
  kern::GemvArgs lm_head_args(const T* rows) const {
    const GPTConfig& c = *m_.cfg;
    kern::GemvArgs g = gemv_args(rows, m_.layout->wte(), -1, c.n_embd, c.vocab_size);
    g.ln_w = W(m_.layout->lnf_w()), g.ln_b = W(m_.layout->lnf_b());
    g.out_f32 = logits_f_, g.ld_f32 = c.vocab_size;
    return g;
  }

  DecodeAttentionParams decode_params() const {
    const GPTConfig& c = *m_.cfg;
    DecodeAttentionParams p;
    p.q = qkv_;
    p.q_batch_stride = c.qkv_dim();
    p.o = y_;
    p.o_batch_stride = c.n_embd;
    p.act_bf16 = act_bf16();
    p.shape = shape_;
    p.lengths = lengths_dev_;
    p.H = c.n_head;
    p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim())));
    return p;
  }

  void release_all() noexcept {
    try {
      for (void* p : owned_) m_.mem->release(p);
    } catch (...) {  // a destructor must not throw; the allocator frees the rest with the backend
    }
    owned_.clear();
    if (host_ints_) cudaFreeHost(host_ints_);
    host_ints_ = nullptr, host_next_ = nullptr, host_fed_ = nullptr;
  }

  void* take(size_t bytes, MemCategory cat) {
    void* p = m_.mem->allocate(bytes, cat);
    owned_.push_back(p);
    return p;
  }

  void allocate() {
    const GPTConfig& c = *m_.cfg;
    // the widest pass is one prefill pass (rows_ rows; decode uses the first B); the tokens of
    // every prompt (B x max_prompt) are uploaded at once
    const size_t N = static_cast<size_t>(std::max(rows_, B_)), C = c.n_embd, QKV = c.qkv_dim(), t = sizeof(T);
    const size_t NT = static_cast<size_t>(B_) * P_;
    // the cache: one allocation per layer and K/V (and their scales)
    const size_t elems = static_cast<size_t>(B_) * c.n_kv_head * L_ * c.head_dim();
    const size_t slots = static_cast<size_t>(B_) * c.n_kv_head * L_;
    const bool scaled = opt_.cache == KVCacheDType::FP8_E4M3 || opt_.cache == KVCacheDType::INT8;
    const size_t eb = kv_cache_element_bytes(opt_.cache);
    layers_.resize(c.n_layer);
    for (KVCacheLayer& layer : layers_) {
      layer.k = take(elems * eb, MemCategory::KVCache);
      layer.v = take(elems * eb, MemCategory::KVCache);
      cache_bytes_ += 2 * elems * eb;
      if (scaled) {
        layer.k_scale = static_cast<float*>(take(slots * sizeof(float), MemCategory::KVCache));
        layer.v_scale = static_cast<float*>(take(slots * sizeof(float), MemCategory::KVCache));
        cache_bytes_ += 2 * slots * sizeof(float);
      }
    }
    // activations for the widest pass (prefill of B x max_len rows)
    ArenaPlan plan;
    const size_t ox = plan.add(N * C * t), oh = plan.add(N * C * t), oq = plan.add(N * QKV * t);
    const size_t oy = plan.add(N * C * t), ob = plan.add(N * C * t), of = plan.add(4 * N * C * t);
    const size_t og = plan.add(4 * N * C * t), om = plan.add(N * sizeof(float)), orr = plan.add(N * sizeof(float));
    const size_t ol = plan.add(B_ * C * t), olnf = plan.add(B_ * C * t);
    const size_t olog = plan.add(static_cast<size_t>(B_) * c.padded_vocab_size * t);
    const size_t olf = plan.add(static_cast<size_t>(B_) * c.vocab_size * sizeof(float));
    const size_t oam = plan.add(kern::argmax_scratch_bytes(B_));
    const size_t oparts = plan.add(fc_proj_splits_ > 1 ? static_cast<size_t>(fc_proj_splits_) * B_ * C * sizeof(float) : 0);
    counted_ = counted_tokens(m_.attention);  // the variants' token counts (NT each)
    const size_t BL = static_cast<size_t>(B_) * L_;
    const size_t n_ints = (1 + counted_.size()) * NT + 4 * static_cast<size_t>(B_) + BL;
    const size_t oints = plan.add(n_ints * sizeof(int32_t));
    char* a = static_cast<char*>(take(plan.bytes(), MemCategory::Activations));
    x_ = reinterpret_cast<T*>(a + ox), h_ = reinterpret_cast<T*>(a + oh), qkv_ = reinterpret_cast<T*>(a + oq);
    y_ = reinterpret_cast<T*>(a + oy), branch_ = reinterpret_cast<T*>(a + ob), fc_ = reinterpret_cast<T*>(a + of);
    fc_gelu_ = reinterpret_cast<T*>(a + og), mean_ = reinterpret_cast<float*>(a + om);
    rstd_ = reinterpret_cast<float*>(a + orr), last_ = reinterpret_cast<T*>(a + ol), lnf_ = reinterpret_cast<T*>(a + olnf);
    logits_ = reinterpret_cast<T*>(a + olog), logits_f_ = reinterpret_cast<float*>(a + olf);
    argmax_scratch_ = reinterpret_cast<unsigned long long*>(a + oam);
    fc_proj_parts_ = fc_proj_splits_ > 1 ? reinterpret_cast<float*>(a + oparts) : nullptr;
    CUDA_CHECK(cudaMemsetAsync(argmax_scratch_, 0, kern::argmax_scratch_bytes(B_), m_.stream));  // zeroed once (grid_argmax.cuh)
    int32_t* ints = reinterpret_cast<int32_t*>(a + oints);
    prefill_tokens_ = ints, decode_tokens_ = ints + NT, lengths_dev_ = ints + NT + B_, positions_ = ints + NT + 2 * B_;
    zeros_ = ints + NT + 3 * B_, fed_ = ints + NT + 4 * B_, prefill_counts_ = fed_ + BL;
    CUDA_CHECK(cudaMemsetAsync(ints, 0, n_ints * sizeof(int32_t), m_.stream));
    // prefill attention (one layer at a time) and the decode partials
    AttentionShape ash;
    // a pass holds nb <= rows_ / seq sequences of seq <= P_ positions: nb * seq <= rows_ and
    // nb * seq^2 <= rows_ * P_, both covered by ceil(rows_ / P_) sequences of P_ (at most B_)
    ash.B = std::min(B_, (rows_ + P_ - 1) / P_), ash.T = P_, ash.n_head = c.n_head, ash.n_kv_head = c.n_kv_head, ash.head_dim = c.head_dim();
    ArenaPlan ap;
    const size_t osaved = ap.add(attention_->saved_bytes(ash)), oscr = ap.add(attention_->scratch_bytes(ash));
    const size_t ows = ap.add(decode_attention_workspace_bytes(decode_params()));
    char* at = static_cast<char*>(take(ap.bytes(), MemCategory::Attention));
    att_saved_ = at + osaved, att_scratch_ = at + oscr, decode_ws_ = at + ows;
    decode_attention_workspace_init(decode_params(), decode_ws_, m_.stream);
    CUDA_CHECK(cudaMallocHost(&host_ints_, (NT + 2 * static_cast<size_t>(B_) + BL) * sizeof(int32_t)));
    host_next_ = host_ints_ + NT + B_, host_fed_ = host_next_ + B_;
    lengths_.assign(B_, 0);
    CUDA_CHECK(cudaStreamSynchronize(m_.stream));
  }

  CudaModelView m_;
  GeneratorOptions opt_;
  // Default rows of one prefill pass: few enough that the prefill activations stay small next
  // to the cache (~100 MiB for GPT-2 124M in bf16). A pass costs ~2 ms whether it has 128 rows or
  // 1024 (H100, session 24), so B = 32 prompts of 128 go in one pass: 8.1 -> 4.2 ms, peak 0.998
  // -> 1.121 GiB (HF's static cache: 1.349). The naive attention's (sequences, H, T, T) scores
  // grow with the pass too: 4 prompts of 1024 are 50 M of them for GPT-2 (flash keeps none).
  static constexpr int kPrefillRows = 4096;
  int B_ = 0, L_ = 0, P_ = 0, rows_ = 0;  // batch, cache positions, longest prompt, rows per prefill pass
  KVCacheShape shape_;
  std::unique_ptr<CudaAttention> attention_;
  std::vector<int> counted_;           // counted_tokens of the attention options
  int32_t* prefill_counts_ = nullptr;  // their counts over the padded prompts, (B, P_) each
  std::vector<void*> owned_;
  std::vector<KVCacheLayer> layers_;
  size_t cache_bytes_ = 0;
  T *x_ = nullptr, *h_ = nullptr, *qkv_ = nullptr, *y_ = nullptr, *branch_ = nullptr, *fc_ = nullptr, *fc_gelu_ = nullptr;
  T *last_ = nullptr, *lnf_ = nullptr, *logits_ = nullptr;
  float *mean_ = nullptr, *rstd_ = nullptr, *logits_f_ = nullptr;
  int32_t *prefill_tokens_ = nullptr, *decode_tokens_ = nullptr, *lengths_dev_ = nullptr, *positions_ = nullptr,
          *zeros_ = nullptr;
  int32_t* fed_ = nullptr;  // (B, L): the token each decode step was fed, at its position (decode_greedy_steps)
  void *att_saved_ = nullptr, *att_scratch_ = nullptr, *decode_ws_ = nullptr;
  bool gemv_ = false;  // the GEMV path of the decode step (see the top of the file)
  int gemv_carveout_ = -1;  // the GEMVs' launch carveout (GeneratorOptions::gemv_carveout_from_batch), -1: none
  // c_proj's K slices in the cuBLASLt decode step (1: unsplit), and their fp32 partials (S, B, C)
  static constexpr int kFcProjSplits = 6;
  // GeneratorOptions::fc_proj_splits, or by default the most slices up to kFcProjSplits that cut
  // K = 4 C into equal multiples of 8; 1 where the step is not the bf16 cuBLASLt one or the fused
  // layernorm cannot hold C (kern::residual_layernorm_split_k_supports).
  int choose_fc_proj_splits(int C) const {
    const int asked = opt_.fc_proj_splits, K = 4 * C;
    ATTN_CHECK(asked >= 0, "generation fc_proj_splits = {} must be >= 0 (0: the default, 1: unsplit)", asked);
    auto cuts = [K](int s) { return CudaMatmul::split_k_cuts(K, s); };
    ATTN_CHECK(asked <= 1 || (asked <= kern::kResidualLayernormMaxSplits && cuts(asked)),
               "generation fc_proj_splits = {} must be at most {} and cut c_proj's K = {} into equal multiples of 8", asked,
               kern::kResidualLayernormMaxSplits, K);
    if (!act_bf16() || gemv_ || !kern::residual_layernorm_split_k_supports<T>(C)) return 1;
    if (asked > 0) return asked;
    int s = kFcProjSplits;
    while (s > 1 && !cuts(s)) --s;
    return s;
  }
  int fc_proj_splits_ = 1;
  float* fc_proj_parts_ = nullptr;
  unsigned long long* argmax_scratch_ = nullptr;  // the greedy argmax's block counter and maxima (grid_argmax.cuh)
  int32_t* host_ints_ = nullptr;  // page-locked: prompt/token upload, then B ids of decode_greedy,
  int32_t *host_next_ = nullptr, *host_fed_ = nullptr;  // then fed_'s (B, L) copy
  std::vector<int> lengths_;
  int64_t decode_calls_ = 0;
  CudaGraph graph_;  // the decode step, captured on its second call
  static constexpr size_t kPrefillGraphs = 8;  // prompt lengths whose prefill is kept as a graph
  std::map<int, CudaGraph> prefill_graphs_;    // by prompt length, captured after its first prefill
};

}  // namespace

std::unique_ptr<Generator> make_cuda_generator(const CudaModelView& model, const GeneratorOptions& opt) {
  if (model.act == DType::BF16) return std::make_unique<CudaGenerator<bf16>>(model, opt);
  return std::make_unique<CudaGenerator<float>>(model, opt);
}

}  // namespace attn
