// The bench-generate grid (train/bench_generate.h). One backend per head layout; per cell a
// fresh generator: prefill of random prompts, then greedy decode steps in runs of
// kGreedyRunAhead (Generator::decode_greedy_steps: the argmax on the device feeds the next step,
// B ids back per run, what `sample` does at temperature 0). The first two decode steps are
// untimed: the first runs kernel by kernel and fixes cuBLASLt's algorithms, the second captures
// the CUDA graph. With --profile the last profile_steps steps run as one run under a kernel trace
// instead of the clock; the profile keeps their kernels (the run's 2-3 copies are left out, so
// the steps are alike). Backends are built for inference only (no gradients, optimizer state or
// fp32 master): the peak is what generation needs.
#include "core/device.h"
#include "train/bench_generate.h"
#if defined(ATTN_WITH_CUDA)
#include "kernels/decode_attention.h"
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/generator.h"
#include "core/error.h"
#include "core/precision.h"
#include "core/rng.h"
#include "distributed/devices.h"
#include "train/environment.h"
#include "train/figures.h"
#include "train/generate.h"
#include "train/report.h"
#include "train/trainer.h"

namespace attn {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kWarmSteps = 2;      // untimed decode steps: the first launched, the second captured
constexpr int kMinTimedSteps = 8;  // with --profile, timed steps left before the traced ones
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

std::vector<int32_t> random_prompts(int B, int T, int V, uint64_t seed) {
  std::vector<int32_t> t(static_cast<size_t>(B) * T);
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int32_t>(random_u64(seed, i) % static_cast<uint64_t>(V));
  return t;
}

// `steps` greedy steps in runs of at most `run` (decode_greedy_steps); next: the tokens fed to the
// first, then the last step's ids.
void greedy_runs(Generator& gen, int steps, int run, std::vector<int32_t>& next) {
  const size_t B = next.size();
  std::vector<int32_t> ids(static_cast<size_t>(std::min(run, std::max(steps, 1))) * B);
  for (int done = 0; done < steps;) {
    const int k = std::min(run, steps - done);
    gen.decode_greedy_steps(next.data(), k, ids.data());
    std::copy_n(ids.begin() + static_cast<ptrdiff_t>((k - 1) * B), B, next.begin());
    done += k;
  }
}

void argmax_rows(const std::vector<float>& logits, int B, int V, std::vector<int32_t>& out) {
  for (int b = 0; b < B; ++b) {
    const float* r = logits.data() + static_cast<size_t>(b) * V;
    out[b] = static_cast<int32_t>(std::max_element(r, r + V) - r);
  }
}

size_t weight_bytes(const Backend& be, const std::string& precision) {
  return be.layout().total() * dtype_size(activation_dtype(parse_precision(precision).value()));
}

// The figures that follow from the timings: decode tokens/s, the whole call's tokens/s (what
// HF's generate() timing covers: prefill, which yields the first token, then new - 1 decode
// steps), the fraction of the weight-read limit, and the backend's peak memory.
void finish_row(GenerateBenchRow& r, const Backend& be, const Config& cfg, const GenerateBenchOptions& o) {
  r.tokens_per_s = r.ms_per_step > 0 ? r.batch * 1000.0 / r.ms_per_step : 0;
  const double call_ms = r.prefill_ms + (r.new_tokens - 1) * r.ms_per_step;
  r.call_tokens_per_s = call_ms > 0 ? r.batch * r.new_tokens * 1000.0 / call_ms : 0;
  const double limit_ms = 1000.0 * static_cast<double>(weight_bytes(be, cfg.device.precision)) / o.hbm_bytes_per_s;
  r.weight_limit_fraction = r.ms_per_step > 0 ? limit_ms / r.ms_per_step : 0;
  const MemoryReport mem = be.memory();
  r.peak_bytes = static_cast<double>(mem.total_peak);
  for (const MemoryCategory& c : mem.categories)
    if (c.peak > 0)
      r.peak_by_category += fmt::format("{}{} {:.1f}", r.peak_by_category.empty() ? "" : ", ", c.name, c.peak / 1048576.0);
  r.peak_by_category += " MiB";
}

GenerateBenchRow cached_cell(Backend& be, const Config& cfg, int prompt, int new_tokens, int B, KVCacheDType dt,
                             const GenerateBenchOptions& o) {
  const GPTConfig& g = be.layout().config();
  GenerateBenchRow r;
  r.mode = "cached", r.cache = kv_cache_dtype_name(dt), r.prompt = prompt, r.new_tokens = new_tokens, r.batch = B;
  r.n_kv_head = g.n_kv_head;
  GeneratorOptions go;
  go.batch = B, go.max_len = prompt + new_tokens, go.max_prompt = prompt, go.cache = dt;
  go.fc_proj_splits = o.fc_proj_splits, go.prefill_graph = o.prefill_graph;
  go.gemv_carveout_from_batch = o.gemv_carveout_from_batch;
  std::unique_ptr<Generator> gen = be.make_generator(go);
  r.cache_bytes = static_cast<double>(gen->cache_bytes());
  r.cache_formula_bytes = static_cast<double>(kv_cache_bytes(g, B, go.max_len, dt));
  const auto tokens = random_prompts(B, prompt, g.vocab_size, 0xBE7C);
  const std::vector<int> lengths(B, prompt);
  std::vector<float> logits(static_cast<size_t>(B) * g.vocab_size);
  std::vector<int32_t> next(B);
  gen->prefill(tokens.data(), lengths.data(), prompt, logits.data());  // warm-up (first-call costs), then timed
  auto t0 = Clock::now();
  gen->prefill(tokens.data(), lengths.data(), prompt, logits.data());
  r.prefill_ms = ms_since(t0);
  argmax_rows(logits, B, g.vocab_size, next);
  const int traced = o.profile_steps;  // checked: leaves at least kMinTimedSteps timed steps
  const int warm = std::min(kWarmSteps, new_tokens - 1), timed = new_tokens - 1 - warm - traced;
  for (int s = 0; s < warm; ++s) gen->decode_greedy(next.data(), next.data());
  t0 = Clock::now();
  greedy_runs(*gen, timed, kGreedyRunAhead, next);
  r.ms_per_step = timed > 0 ? ms_since(t0) / timed : 0;
  r.step_kernels = gen->decode_step_kernels();
  if (traced > 0) {
    std::unique_ptr<KernelTrace> trace = KernelTrace::start();
    greedy_runs(*gen, traced, traced, next);
    std::vector<TraceRecord> kernels = trace->stop();
    std::erase_if(kernels, [](const TraceRecord& a) { return a.kind != TraceRecord::Kind::Kernel; });
    r.trace = summarise_steps(kernels, traced);
  }
  finish_row(r, be, cfg, o);
  return r;
}

// Full recompute per token (Backend::last_logits over the whole context), as `sample --no-cache`.
GenerateBenchRow baseline_cell(Backend& be, const Config& cfg, int prompt, int new_tokens, int B,
                               const GenerateBenchOptions& o) {
  const GPTConfig& g = be.layout().config();
  GenerateBenchRow r;
  // (a std::string, not the literal: GCC 12 at -O3 warns a false -Wrestrict on assigning "-" here)
  r.mode = "no-cache", r.cache = std::string("-"), r.prompt = prompt, r.new_tokens = new_tokens, r.batch = B;
  r.n_kv_head = g.n_kv_head;
  const int total = prompt + new_tokens;
  std::vector<int32_t> seqs = random_prompts(B, total, g.vocab_size, 0xBE7C);  // row b: prompt, then decoded
  std::vector<int32_t> ctx;
  std::vector<float> logits(static_cast<size_t>(B) * g.vocab_size);
  std::vector<int32_t> next(B);
  auto step = [&](int len) {
    ctx.resize(static_cast<size_t>(B) * len);
    for (int b = 0; b < B; ++b)
      std::copy_n(seqs.begin() + static_cast<ptrdiff_t>(b) * total, len, ctx.begin() + static_cast<ptrdiff_t>(b) * len);
    be.last_logits(ctx.data(), B, len, logits.data());
    argmax_rows(logits, B, g.vocab_size, next);
    if (len < total)
      for (int b = 0; b < B; ++b) seqs[static_cast<size_t>(b) * total + len] = next[b];
  };
  auto t0 = Clock::now();
  step(prompt);
  r.prefill_ms = ms_since(t0);
  t0 = Clock::now();
  for (int len = prompt + 1; len < total; ++len) step(len);
  const int timed = new_tokens - 1;
  r.ms_per_step = timed > 0 ? ms_since(t0) / timed : 0;
  finish_row(r, be, cfg, o);
  return r;
}

std::string gib(double b) { return fmt::format("{:.3f}", b / (1ull << 30)); }
std::string mib(double b) { return fmt::format("{:.2f}", b / (1ull << 20)); }

void write_reports(const std::vector<GenerateBenchRow>& rows, const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::ofstream csv(dir + "/results.csv");
  csv << "mode,cache,n_kv_head,batch,prompt,new_tokens,prefill_ms,ms_per_step,step_kernels,tokens_per_s,call_tokens_per_s,"
         "weight_limit_fraction,"
         "cache_bytes,cache_formula_bytes,peak_bytes\n";
  std::ofstream md(dir + "/results.md");
  md << "| mode | cache | n_kv_head | batch | prompt | new | prefill ms | ms/step | kernels/step | tokens/s | tokens/s with prefill | "
        "of weight-read limit | cache MiB (formula) | peak GiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    csv << fmt::format("{},{},{},{},{},{},{:.3f},{:.4f},{},{:.1f},{:.1f},{:.4f},{:.0f},{:.0f},{:.0f}\n", r.mode, r.cache,
                       r.n_kv_head, r.batch, r.prompt, r.new_tokens, r.prefill_ms, r.ms_per_step, r.step_kernels, r.tokens_per_s,
                       r.call_tokens_per_s, r.weight_limit_fraction, r.cache_bytes, r.cache_formula_bytes, r.peak_bytes);
    md << fmt::format("| {} | {} | {} | {} | {} | {} | {:.2f} | {:.3f} | {} | {:.0f} | {:.0f} | {:.1f}% | {} ({}) | {} |\n",
                      r.mode, r.cache, r.n_kv_head, r.batch, r.prompt, r.new_tokens, r.prefill_ms, r.ms_per_step,
                      r.step_kernels, r.tokens_per_s, r.call_tokens_per_s, 100 * r.weight_limit_fraction, mib(r.cache_bytes), mib(r.cache_formula_bytes),
                      gib(r.peak_bytes), r.peak_by_category);
  }
  csv.close();
  md.close();
  ATTN_CHECK(csv.good() && md.good(), "writing {}/results.csv or results.md failed (disk full?)", dir);
  draw_result_figures("generate", dir);  // tokens_per_s.png, cache_memory.png
  write_report(dir, false);
}

std::string cell_title(const GenerateBenchRow& r) {
  return fmt::format("decode step, {} cache, n_kv_head {}, B={}, context {} to {}", r.cache, r.n_kv_head, r.batch,
                     r.prompt + r.new_tokens - r.trace.steps - 1, r.prompt + r.new_tokens - 1);
}

// The traced cells: decode_profile.md (the tables) and decode_profile.json (the rows and one
// step's timeline, start and end in microseconds from the step's first record).
void write_profiles(const std::vector<GenerateBenchRow>& rows, const std::string& dir) {
  std::ofstream md(dir + "/decode_profile.md");
  nlohmann::json cells = nlohmann::json::array();
  for (const auto& r : rows) {
    if (r.trace.steps == 0) continue;
    md << "## " << cell_title(r) << "\n\n" << format_step_trace(r.trace) << "\n";
    nlohmann::json c = {{"cache", r.cache},           {"n_kv_head", r.n_kv_head},     {"batch", r.batch},
                        {"prompt", r.prompt},         {"new_tokens", r.new_tokens},   {"steps", r.trace.steps},
                        {"kernels", r.trace.kernels}, {"copies", r.trace.copies},     {"period_us", r.trace.period_us},
                        {"busy_span_us", r.trace.busy_span_us}, {"host_us", r.trace.host_us},
                        {"untraced_ms_per_step", r.ms_per_step}};
    for (const StepTraceRow& row : r.trace.rows)
      c["rows"].push_back({{"name", row.name}, {"calls", row.calls}, {"own_us", row.own_us},
                           {"critical_us", row.critical_us}, {"idle_before_us", row.idle_before_us}});
    for (const TraceRecord& e : r.trace.one_step)
      c["timeline"].push_back({{"name", e.name}, {"start_us", e.start_ns / 1e3}, {"end_us", e.end_ns / 1e3}});
    cells.push_back(std::move(c));
  }
  md.close();
  std::ofstream js(dir + "/decode_profile.json");
  js << cells.dump(1) << "\n";
  js.close();
  ATTN_CHECK(md.good() && js.good(), "writing {}/decode_profile.md or .json failed (disk full?)", dir);
}

// The longest context of the grid (prompt + new tokens), each cell checked against the model and
// the profile's needs.
int checked_max_context(const GenerateBenchOptions& o, int block_size) {
  int max_ctx = 1;
  for (int p : o.prompt_lens)
    for (int n : o.new_tokens) {
      ATTN_CHECK(p >= 1 && n >= 1, "bench-generate: prompt length {} and new tokens {} must be >= 1", p, n);
      ATTN_CHECK(p + n <= block_size, "bench-generate: prompt {} + new tokens {} exceed model.block_size = {}", p, n,
                 block_size);
      // the timed steps keep their meaning: at least kMinTimedSteps of them before the traced ones
      const int least = o.profile_steps + kWarmSteps + kMinTimedSteps + 1;  // + 1: prefill yields the first token
      ATTN_CHECK(o.profile_steps == 0 || n >= least,
                 "bench-generate --profile traces {} decode steps after the timed ones: --new-tokens {} must be at "
                 "least {}",
                 o.profile_steps, n, least);
      max_ctx = std::max(max_ctx, p + n);
    }
  return max_ctx;
}

// A row as one line on stdout (and its traced step, when profiled).
void print_row(const GenerateBenchRow& r) {
  fmt::print("{:8} {:5} kv_heads={:<3} B={:<4} prompt={:<5} new={:<5} prefill {:8.2f} ms  {:8.3f} ms/step  "
             "{:4} kernels/step  {:10.0f} tokens/s ({:.0f} whole call)  {:5.1f}% of weight-read limit  cache {} MiB "
             "(formula {})  peak {} GiB ({})\n",
             r.mode, r.cache, r.n_kv_head, r.batch, r.prompt, r.new_tokens, r.prefill_ms, r.ms_per_step,
             r.step_kernels, r.tokens_per_s, r.call_tokens_per_s, 100 * r.weight_limit_fraction, mib(r.cache_bytes),
             mib(r.cache_formula_bytes), gib(r.peak_bytes), r.peak_by_category);
  if (r.trace.steps > 0)
    fmt::print("\n{} (traced; untraced {:.2f} us/step):\n{}\n", cell_title(r), 1000 * r.ms_per_step,
               format_step_trace(r.trace));
  std::fflush(stdout);
}

}  // namespace

std::vector<GenerateBenchRow> run_generate_benchmark(const Config& cfg, const GenerateBenchOptions& opts) {
  GenerateBenchOptions o = opts;
  const std::string device = resolve_device(cfg.device.backend);
#if defined(ATTN_WITH_CUDA)
  if (device == "cuda") {  // process-wide, as bench_decode_attention's flags
    DecodeAttentionTuning tune;
    tune.short_heads = o.short_heads;
    set_decode_attention_tuning(tune);
  }
#endif
  if (o.hbm_bytes_per_s <= 0) o.hbm_bytes_per_s = device == "cuda" ? cuda_peak_memory_bytes_per_s() : 3.35e12;
  ATTN_CHECK(o.hbm_bytes_per_s > 0, "bench-generate: the device reports no memory bandwidth; give --hbm-bytes-per-s");
  ATTN_CHECK(o.profile_steps == 0 || device == "cuda",
             "bench-generate --profile traces the CUDA decode step's kernels; device.backend is {} here", device);
  ATTN_CHECK(o.profile_steps == 0 || o.profile_steps >= 2, "bench-generate: {} traced steps; a step's period needs 2",
             o.profile_steps);
  std::vector<int> heads = o.kv_heads;
  const GPTConfig base = make_gpt_config(cfg, o.vocab_size);
  if (heads.empty()) heads.push_back(base.n_kv_head);
  std::vector<KVCacheDType> caches;
  for (const auto& c : o.kv_caches) caches.push_back(kv_cache_dtype_from_name(c));
  if (caches.empty())
    caches.push_back(activation_dtype(parse_precision(cfg.device.precision).value()) == DType::BF16
                         ? KVCacheDType::BF16
                         : KVCacheDType::FP32);
  int max_batch = 1;
  for (int b : o.batches) max_batch = std::max(max_batch, b);
  const int max_ctx = checked_max_context(o, base.block_size);
  if (!o.out_dir.empty()) write_environment(o.out_dir, device);
  fmt::print("weight-read limit at {:.3g} bytes/s\n", o.hbm_bytes_per_s);
  std::vector<GenerateBenchRow> rows;
  for (size_t hi = 0; hi < heads.size(); ++hi) {
    GPTConfig g = base;
    g.n_kv_head = heads[hi];
    // Cached cells use only the backend's weights (the generator has its own buffers); the
    // baseline needs activations for the whole context: its own backend, made when first
    // needed, so that the cached rows' peak does not include them.
    const bool with_baseline = o.baseline && hi == 0;
    std::vector<float> params;  // drawn once per head layout
    auto inference_backend = [&](int batch, int seq) {
      BackendOptions bo = backend_options(cfg, -1, batch, seq);
      bo.inference_only = true;
      auto b = make_backend(g, bo);
      if (params.empty()) {
        params.resize(b->layout().total());
        init_gpt2_params(b->layout(), static_cast<uint64_t>(cfg.training.seed), params.data());
      }
      b->set_params(params.data());
      return b;
    };
    std::unique_ptr<Backend> baseline_be;
    auto report = [&](const GenerateBenchRow& r) {
      print_row(r);
      rows.push_back(r);
    };
    for (int p : o.prompt_lens)
      for (int n : o.new_tokens)
        for (int b : o.batches) {
          // a fresh backend per cell: its peak memory is this cell's alone
          for (KVCacheDType dt : caches) report(cached_cell(*inference_backend(1, 1), cfg, p, n, b, dt, o));
          if (!with_baseline) continue;
          if (!baseline_be) baseline_be = inference_backend(max_batch, max_ctx);
          report(baseline_cell(*baseline_be, cfg, p, n, b, o));
        }
  }
  if (!o.out_dir.empty()) write_reports(rows, o.out_dir);
  if (!o.out_dir.empty() && o.profile_steps > 0) write_profiles(rows, o.out_dir);
  return rows;
}

}  // namespace attn
