#include "train/generate.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/argmax_key.h"
#include "core/error.h"
#include "core/rng.h"

namespace attn {

namespace {

// The ids of the `keep` most likely candidates, most likely first (ties: the smaller id), the
// exact prefix of a full sort, by their argmax keys (core/argmax_key.h: the keys sort in that
// order, much faster than ids through a comparator that reads the logits). Fewer than all: one
// pass keeping the best `keep` keys in a min-heap, where most candidates cost one compare against
// the heap's least. sample_token over GPT-2's 50257 logits at top_k 200 (nanoGPT's default), on
// the 2-core CI machine: 0.31 ms a token, against 0.64 with nth_element and 5.1 with the full
// sort of ids through the logits it replaced (0 top_k: 3.4 against 5.3 ms).
std::vector<int32_t> top_candidates(const float* logits, int vocab, int keep) {
  thread_local std::vector<unsigned long long> keys;  // reused: a fresh 400 KB vector a token costs page faults
  keys.clear();
  if (keep < vocab) {
    const auto least_first = std::greater<>();  // a min-heap: front() is the least key kept
    for (int v = 0; v < vocab; ++v) {
      const unsigned long long k = argmax_key(logits[v], v);
      if (static_cast<int>(keys.size()) < keep) {
        keys.push_back(k);
        std::push_heap(keys.begin(), keys.end(), least_first);
      } else if (k > keys.front()) {
        std::pop_heap(keys.begin(), keys.end(), least_first);
        keys.back() = k;
        std::push_heap(keys.begin(), keys.end(), least_first);
      }
    }
  } else {
    for (int v = 0; v < vocab; ++v) keys.push_back(argmax_key(logits[v], v));
  }
  std::sort(keys.begin(), keys.end(), std::greater<>());
  std::vector<int32_t> ids(keep);
  for (int i = 0; i < keep; ++i) ids[i] = argmax_index(keys[i]);
  return ids;
}

}  // namespace

// The candidates in order (logit descending, then id ascending), the first top_k kept; p_i =
// exp((l_i - max) / T) summed in that order; top_p keeps the shortest prefix reaching top_p of
// the sum; the draw is the first candidate whose running sum passes u * sum.
int32_t sample_token(const float* logits, int vocab, const SamplingOptions& opt, uint64_t key, uint64_t index) {
  if (opt.temperature <= 0) return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
  int keep = opt.top_k > 0 ? std::min(opt.top_k, vocab) : vocab;
  const std::vector<int32_t> ids = top_candidates(logits, vocab, keep);
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

std::vector<int32_t> crop_prompt(const std::vector<int32_t>& prompt, int block_size) {
  const size_t keep = std::min(prompt.size(), static_cast<size_t>(std::max(block_size - 1, 1)));
  return std::vector<int32_t>(prompt.end() - static_cast<ptrdiff_t>(keep), prompt.end());
}

std::vector<std::vector<int32_t>> generate(Backend& model, const std::vector<int32_t>& full_prompt, int rows,
                                           const SamplingOptions& opt,
                                           const std::function<void(int, int32_t)>& on_token) {
  const GPTConfig& g = model.layout().config();
  ATTN_CHECK(!full_prompt.empty(), "sampling needs a prompt of at least one token");
  const std::vector<int32_t> prompt = crop_prompt(full_prompt, g.block_size);
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

std::vector<std::vector<int32_t>> generate_cached(Backend& model, const std::vector<std::vector<int32_t>>& prompts,
                                                  const SamplingOptions& opt, KVCacheDType cache,
                                                  const std::function<void(int, int32_t)>& on_token) {
  const GPTConfig& g = model.layout().config();
  const int B = static_cast<int>(prompts.size());
  ATTN_CHECK(B >= 1, "sampling needs at least one prompt");
  ATTN_CHECK(g.block_size >= 2, "model.block_size = {} leaves no room to generate", g.block_size);
  // seqs[b]: the (cropped) prompt and every token fed so far; the cache holds its last positions.
  std::vector<std::vector<int32_t>> seqs;
  int T = 1;
  for (const auto& p : prompts) {
    ATTN_CHECK(!p.empty(), "sampling needs prompts of at least one token");
    seqs.push_back(crop_prompt(p, g.block_size));
    T = std::max(T, static_cast<int>(seqs.back().size()));
  }
  const bool slides = T + opt.max_new_tokens > g.block_size;  // some sequence outgrows the block
  GeneratorOptions go;
  go.batch = B;
  go.max_len = std::min(g.block_size, T + std::max(opt.max_new_tokens, 1));
  go.max_prompt = slides ? g.block_size - 1 : T;
  go.cache = cache;
  std::unique_ptr<Generator> gen = model.make_generator(go);
  // Greedy (temperature 0) after the prompt: the argmax runs where the logits are and gives what
  // sample_token's std::max_element gives. The steps run ahead in runs of up to kGreedyRunAhead
  // (decode_greedy_steps): `ahead` holds a run's ids, row `used` the next; ids past a stop token
  // are dropped, as each sequence's ids depend on its own tokens only.
  const bool greedy = opt.temperature <= 0;
  bool have_next = false;
  std::vector<int32_t> ahead;
  size_t used = 0;

  std::vector<std::vector<int32_t>> out(B);
  std::vector<bool> done(B, false);
  std::vector<float> logits(static_cast<size_t>(B) * g.vocab_size);
  std::vector<int32_t> next(B);
  // (Re)fills the cache with the last block_size - 1 tokens of every sequence: the start, and
  // each step once a sequence's context is a whole block (the window slides by one token).
  auto prefill_windows = [&]() {
    int W = 1;
    for (const auto& s : seqs) W = std::max(W, std::min(static_cast<int>(s.size()), g.block_size - 1));
    std::vector<int32_t> padded(static_cast<size_t>(B) * W, 0);
    std::vector<int> lengths(B);
    for (int b = 0; b < B; ++b) {
      lengths[b] = std::min(static_cast<int>(seqs[b].size()), W);
      std::copy(seqs[b].end() - lengths[b], seqs[b].end(), padded.begin() + static_cast<ptrdiff_t>(b) * W);
    }
    gen->prefill(padded.data(), lengths.data(), W, logits.data());
  };
  prefill_windows();
  for (int n = 0; n < opt.max_new_tokens; ++n) {
    bool all_done = true;
    for (int b = 0; b < B; ++b) {
      if (!have_next)
        next[b] = sample_token(logits.data() + static_cast<size_t>(b) * g.vocab_size, g.vocab_size, opt,
                               stream_key(opt.seed, 0x5A3D, static_cast<uint64_t>(b)), static_cast<uint64_t>(n));
      if (done[b]) continue;
      if (next[b] == opt.stop_token) {
        done[b] = true;
        continue;
      }
      out[b].push_back(next[b]);
      if (on_token) on_token(b, next[b]);
      all_done = false;
    }
    if (all_done || n + 1 == opt.max_new_tokens) break;
    const bool run_on = greedy && used < ahead.size() / B;  // the steps of a run already decoded
    auto room = [&] {  // steps every sequence has room for
      int r = gen->max_len();
      for (int b = 0; b < B; ++b) r = std::min(r, gen->max_len() - gen->length(b));
      return r;
    };
    // Past block_size the model sees the last block_size tokens (nanoGPT's crop): the K and V of
    // a position depend on its absolute position embedding, so the window is computed again.
    if (!run_on && room() == 0) prefill_windows();
    for (int b = 0; b < B; ++b) seqs[b].push_back(next[b]);
    if (greedy) {
      if (!run_on) {  // a run of steps fits the room left and the tokens still wanted
        const int steps = std::min({room(), kGreedyRunAhead, opt.max_new_tokens - 1 - n});
        ahead.resize(static_cast<size_t>(steps) * B);
        gen->decode_greedy_steps(next.data(), steps, ahead.data());
        used = 0;
      }
      std::copy_n(ahead.begin() + static_cast<ptrdiff_t>(used++ * B), B, next.begin());
      have_next = true;
    } else {
      gen->decode(next.data(), logits.data());
    }
  }
  return out;
}

double cached_teacher_forced_loss(Backend& model, const int32_t* inputs, const int32_t* targets, int B, int T,
                                  KVCacheDType cache) {
  const GPTConfig& g = model.layout().config();
  const int V = g.vocab_size;
  ATTN_CHECK(T >= 1 && T <= g.block_size, "sequence length {} must be in [1, model.block_size = {}]", T, g.block_size);
  GeneratorOptions go;
  go.batch = B;
  go.max_len = T;
  go.max_prompt = 1;
  go.cache = cache;
  std::unique_ptr<Generator> gen = model.make_generator(go);
  std::vector<float> logits(static_cast<size_t>(B) * V);
  std::vector<int32_t> col(B);
  std::vector<int> ones(B, 1);
  double sum = 0;
  int64_t count = 0;
  for (int t = 0; t < T; ++t) {
    for (int b = 0; b < B; ++b) col[b] = inputs[static_cast<size_t>(b) * T + t];
    if (t == 0)
      gen->prefill(col.data(), ones.data(), 1, logits.data());
    else
      gen->decode(col.data(), logits.data());
    for (int b = 0; b < B; ++b) {
      const int32_t y = targets[static_cast<size_t>(b) * T + t];
      if (y < 0) continue;
      ATTN_CHECK(y < V, "target id {} at ({},{}) is outside the vocabulary [0, {})", y, b, t, V);
      const float* row = logits.data() + static_cast<size_t>(b) * V;
      const double mx = *std::max_element(row, row + V);
      double z = 0;
      for (int v = 0; v < V; ++v) z += std::exp(static_cast<double>(row[v]) - mx);
      sum += mx + std::log(z) - row[y];
      ++count;
    }
  }
  return count > 0 ? sum / static_cast<double>(count) : 0.0;
}

}  // namespace attn

