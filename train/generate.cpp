#include "train/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace attn {

int32_t sample_token(const float* logits, int vocab, const SamplingOptions& opt, uint64_t key, uint64_t index) {
  if (opt.temperature <= 0) return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
  std::vector<int32_t> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  int keep = opt.top_k > 0 ? std::min(opt.top_k, vocab) : vocab;
  std::vector<double> p(keep);
  const double mx = logits[ids[0]];
  double sum = 0;
  for (int i = 0; i < keep; ++i) sum += p[i] = std::exp((logits[ids[i]] - mx) / opt.temperature);
  if (opt.top_p < 1.0) {  // smallest prefix whose probability reaches top_p
    double acc = 0;
    int n = 0;
    while (n < keep && acc < opt.top_p * sum) acc += p[n++];
    keep = std::max(n, 1);
    sum = acc;
  }
  const double u = random_uniform(key, index) * sum;
  double acc = 0;
  for (int i = 0; i < keep; ++i) {
    acc += p[i];
    if (u < acc) return ids[i];
  }
  return ids[keep - 1];
}

std::vector<std::vector<int32_t>> generate(Backend& model, const std::vector<int32_t>& prompt, int rows,
                                           const SamplingOptions& opt,
                                           const std::function<void(int, int32_t)>& on_token) {
  const GPTConfig& g = model.layout().config();
  ATTN_CHECK(!prompt.empty(), "sampling needs a prompt of at least one token");
  std::vector<std::vector<int32_t>> seqs(rows, prompt);
  std::vector<bool> done(rows, false);
  std::vector<float> logits(static_cast<size_t>(rows) * g.vocab_size);
  for (int n = 0; n < opt.max_new_tokens; ++n) {
    // All rows have the same length: feed the last min(len, block_size) tokens.
    const int len = static_cast<int>(seqs[0].size());
    const int T = std::min(len, g.block_size);
    std::vector<int32_t> ctx(static_cast<size_t>(rows) * T);
    for (int r = 0; r < rows; ++r) std::copy(seqs[r].end() - T, seqs[r].end(), ctx.begin() + static_cast<ptrdiff_t>(r) * T);
    model.last_logits(ctx.data(), rows, T, logits.data());
    bool all_done = true;
    for (int r = 0; r < rows; ++r) {
      const int32_t tok = sample_token(logits.data() + static_cast<size_t>(r) * g.vocab_size, g.vocab_size, opt,
                                       stream_key(opt.seed, 0x5A3D, static_cast<uint64_t>(r)), static_cast<uint64_t>(n));
      seqs[r].push_back(tok);
      if (done[r]) continue;
      if (tok == opt.stop_token) {
        done[r] = true;
        continue;
      }
      if (on_token) on_token(r, tok);
      all_done = false;
    }
    if (all_done) break;
  }
  for (auto& s : seqs) {  // drop the prompt and anything after a stop token
    s.erase(s.begin(), s.begin() + static_cast<ptrdiff_t>(prompt.size()));
    if (auto it = std::find(s.begin(), s.end(), opt.stop_token); opt.stop_token >= 0 && it != s.end()) s.erase(it, s.end());
  }
  return seqs;
}

}  // namespace attn
