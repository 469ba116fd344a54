// Kernel traces (backend/kernel_trace.h): the step summary, and the recorder on CUPTI's activity API.
#include "backend/kernel_trace.h"

#include <cxxabi.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>

#include <fmt/format.h>

#include "core/error.h"

namespace attn {

// ---- names ---------------------------------------------------------------------------------------
namespace {

// Index of the '(' that opens the parenthesised group ending at s[close] (a ')'), or npos.
size_t matching_open(const std::string& s, size_t close) {
  int depth = 0;
  for (size_t i = close + 1; i-- > 0;) {
    if (s[i] == ')') ++depth;
    if (s[i] == '(' && --depth == 0) return i;
  }
  return std::string::npos;
}

// The last space outside every <...> and (...) group: it ends the return type, if there is one.
size_t last_top_level_space(const std::string& s) {
  int depth = 0;
  size_t found = std::string::npos;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<' || s[i] == '(') ++depth;
    if (s[i] == '>' || s[i] == ')') --depth;
    if (depth == 0 && s[i] == ' ') found = i;
  }
  return found;
}

void erase_all(std::string& s, const std::string& what) {
  for (size_t at; (at = s.find(what)) != std::string::npos;) s.erase(at, what.size());
}

bool identifier_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

}  // namespace

std::string short_kernel_name(const std::string& raw, size_t max_chars) {
  std::string s = raw;
  if (s.rfind("_Z", 0) == 0) {
    int status = 0;
    char* d = abi::__cxa_demangle(s.c_str(), nullptr, nullptr, &status);
    if (status == 0 && d) s = d;
    std::free(d);
  }
  if (!s.empty() && s.back() == ')') {  // the parameter list
    const size_t open = matching_open(s, s.size() - 1);
    if (open != std::string::npos && open > 0) s.erase(open);
  }
  if (const size_t space = last_top_level_space(s); space != std::string::npos) s.erase(0, space + 1);
  erase_all(s, "(anonymous namespace)::");
  for (size_t at; (at = s.find("::")) != std::string::npos;) {  // every qualifier, template arguments' too
    size_t from = at;
    while (from > 0 && identifier_char(s[from - 1])) --from;
    s.erase(from, at + 2 - from);
  }
  if (s.size() > max_chars && max_chars > 3) s = s.substr(0, max_chars - 3) + "...";
  return s;
}

// ---- the step summary ----------------------------------------------------------------------------
StepTrace summarise_steps(const std::vector<TraceRecord>& r, int steps) {
  ATTN_CHECK(steps >= 2, "kernel trace: {} traced steps; a step's period needs at least 2", steps);
  ATTN_CHECK(!r.empty() && r.size() % static_cast<size_t>(steps) == 0,
             "kernel trace: {} records do not split into {} equal steps (did something else run on the device?)",
             r.size(), steps);
  const size_t per = r.size() / static_cast<size_t>(steps);
  for (size_t s = 1; s < static_cast<size_t>(steps); ++s)
    for (size_t i = 0; i < per; ++i) {
      const TraceRecord& a = r[s * per + i];
      ATTN_CHECK(a.name == r[i].name && a.kind == r[i].kind,
                 "kernel trace: step {} differs from the first at record {} ({} against {})", s, i, a.name, r[i].name);
    }

  StepTrace t;
  t.steps = steps - 1;  // the last step has no next start, hence no period
  std::map<std::string, size_t> row_of;
  for (size_t i = 0; i < per; ++i) {
    const TraceRecord& a = r[i];
    auto [it, added] = row_of.try_emplace(a.name, t.rows.size());
    if (added) t.rows.push_back(StepTraceRow{a.name, a.kind});
    ++t.rows[it->second].calls;
    (a.kind == TraceRecord::Kind::Kernel ? t.kernels : t.copies) += 1;
  }
  const uint64_t t0 = r[0].start_ns;
  for (size_t i = 0; i < per; ++i) {
    TraceRecord a = r[i];
    a.start_ns -= t0, a.end_ns -= t0;
    t.one_step.push_back(a);
  }

  const double n = t.steps;
  for (size_t s = 0; s + 1 < static_cast<size_t>(steps); ++s) {
    const TraceRecord* step = &r[s * per];
    uint64_t latest_end = step[0].start_ns;
    for (size_t i = 0; i < per; ++i) {
      const TraceRecord& a = step[i];
      const uint64_t from = std::max(a.start_ns, latest_end);
      StepTraceRow& row = t.rows[row_of.at(a.name)];
      row.own_us += (a.end_ns - a.start_ns) / 1e3 / n;
      row.critical_us += (a.end_ns > from ? a.end_ns - from : 0) / 1e3 / n;
      row.idle_before_us += (a.start_ns > latest_end ? a.start_ns - latest_end : 0) / 1e3 / n;
      latest_end = std::max(latest_end, a.end_ns);
    }
    t.busy_span_us += (latest_end - step[0].start_ns) / 1e3 / n;
    t.period_us += (static_cast<double>(r[(s + 1) * per].start_ns) - static_cast<double>(step[0].start_ns)) / 1e3 / n;
  }
  t.host_us = t.period_us - t.busy_span_us;
  return t;
}

std::string format_step_trace(const StepTrace& t) {
  auto share = [&](double us) { return t.period_us > 0 ? fmt::format("{:.1f}%", 100 * us / t.period_us) : "-"; };
  std::string s =
      "| # | operation | calls/step | us per call | critical us | idle before us | of the step |\n"
      "| ---: | --- | ---: | ---: | ---: | ---: | ---: |\n";
  double critical = 0, idle = 0;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const StepTraceRow& row = t.rows[i];
    s += fmt::format("| {} | {} | {} | {:.2f} | {:.2f} | {:.2f} | {} |\n", i + 1, row.name, row.calls,
                     row.calls ? row.own_us / row.calls : 0.0, row.critical_us, row.idle_before_us,
                     share(row.critical_us + row.idle_before_us));
    critical += row.critical_us, idle += row.idle_before_us;
  }
  s += fmt::format("| | on the GPU: {} kernels, {} copies | {} | | {:.2f} | {:.2f} | {} |\n", t.kernels, t.copies,
                   t.kernels + t.copies, critical, idle, share(critical + idle));
  s += fmt::format("| | on the host, between steps (graph launch, any sync) | | | | {:.2f} | {} |\n", t.host_us,
                   share(t.host_us));
  s += fmt::format("| | step period, mean of {} | | | | | {:.2f} us |\n", t.steps, t.period_us);
  return s;
}

}  // namespace attn

// ---- the recorder ---------------------------------------------------------------------------------
#if defined(ATTN_WITH_CUDA) && defined(ATTN_WITH_CUPTI)
#include <cuda_runtime.h>
#include <cupti_activity.h>
#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <mutex>

#include "core/cuda_check.h"

namespace attn {
namespace {

// The CUPTI functions the recorder calls, from the library loaded at run time.
struct Cupti {
  std::string loaded_as;  // the name dlopen took
  decltype(&cuptiActivityRegisterCallbacks) register_callbacks = nullptr;
  decltype(&cuptiActivityEnable) enable = nullptr;
  decltype(&cuptiActivityDisable) disable = nullptr;
  decltype(&cuptiActivityFlushAll) flush_all = nullptr;
  decltype(&cuptiActivityGetNextRecord) next_record = nullptr;
  decltype(&cuptiActivityGetNumDroppedRecords) dropped_records = nullptr;
  decltype(&cuptiGetResultString) result_string = nullptr;
  decltype(&cuptiFinalize) finalize = nullptr;
};

const Cupti& cupti() {
  static const Cupti api = [] {
    // $ATTN_CUPTI first, then the loader's search path (attnlab's RUNPATH holds CUDA's lib folder),
    // then where toolkits keep it, then where this build found it
    const std::string soname = fmt::format("libcupti.so.{}", CUDART_VERSION / 1000);
    std::vector<std::string> names;
    if (const char* env = std::getenv("ATTN_CUPTI"); env && *env) names.push_back(env);
    names.insert(names.end(), {soname, "libcupti.so"});
    for (const char* dir : {"/usr/local/cuda/extras/CUPTI/lib64/", "/usr/local/cuda/lib64/", "/usr/local/cuda/lib/",
                            "/usr/local/cuda/targets/x86_64-linux/lib/"})
      names.push_back(dir + soname);
#ifdef ATTN_CUPTI_LIBRARY
    names.push_back(ATTN_CUPTI_LIBRARY);
#endif
    void* lib = nullptr;
    std::string tried, loaded_as;
    for (const std::string& n : names) {
      if ((lib = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL))) {
        loaded_as = n;
        break;
      }
      tried += fmt::format("{}{} ({})", tried.empty() ? "" : ", ", n, dlerror());
    }
    ATTN_CHECK(lib, "kernel trace: cannot load CUPTI, which traces the device's kernels (set ATTN_CUPTI to its "
               "libcupti.so); tried {}", tried);
    auto sym = [&](const char* name) {
      void* f = dlsym(lib, name);
      ATTN_CHECK(f, "kernel trace: the loaded CUPTI lacks {}", name);
      return f;
    };
    Cupti c;
    c.loaded_as = loaded_as;
    c.register_callbacks = reinterpret_cast<decltype(c.register_callbacks)>(sym("cuptiActivityRegisterCallbacks"));
    c.enable = reinterpret_cast<decltype(c.enable)>(sym("cuptiActivityEnable"));
    c.disable = reinterpret_cast<decltype(c.disable)>(sym("cuptiActivityDisable"));
    c.flush_all = reinterpret_cast<decltype(c.flush_all)>(sym("cuptiActivityFlushAll"));
    c.next_record = reinterpret_cast<decltype(c.next_record)>(sym("cuptiActivityGetNextRecord"));
    c.dropped_records = reinterpret_cast<decltype(c.dropped_records)>(sym("cuptiActivityGetNumDroppedRecords"));
    c.result_string = reinterpret_cast<decltype(c.result_string)>(sym("cuptiGetResultString"));
    c.finalize = reinterpret_cast<decltype(c.finalize)>(sym("cuptiFinalize"));
    return c;
  }();
  return api;
}

std::string cupti_error(CUptiResult r) {
  const char* s = nullptr;
  if (cupti().result_string(r, &s) != CUPTI_SUCCESS || !s) return fmt::format("CUPTI error {}", static_cast<int>(r));
  return s;
}

#define CUPTI_CHECK(call)                                                                         \
  do {                                                                                            \
    const CUptiResult cupti_result_ = (call);                                                     \
    ATTN_CHECK(cupti_result_ == CUPTI_SUCCESS, "kernel trace: {} failed: {}", #call, cupti_error(cupti_result_)); \
  } while (0)

constexpr CUpti_ActivityKind kTracedKinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                               CUPTI_ACTIVITY_KIND_MEMSET};
constexpr size_t kBufferBytes = 8u << 20;
constexpr size_t kBufferAlign = 8;  // CUPTI's required alignment of activity buffers

// What the buffer callbacks (plain C functions, no user data) deliver to.
struct Collected {
  std::mutex mutex;
  std::vector<TraceRecord> records;
  size_t dropped = 0;
};
Collected& collected() {
  static Collected c;
  return c;
}

const char* memcpy_name(uint8_t kind) {
  switch (kind) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD: return "memcpy HtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH: return "memcpy DtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD: return "memcpy DtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOH: return "memcpy HtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP: return "memcpy PtoP";
    default: return "memcpy";
  }
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(kBufferAlign, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;  // as many as fit
}

// " [grid 288, 25664 B smem]": blocks (x, then y and z when not 1) and dynamic shared memory.
std::string launch_shape(const CUpti_ActivityKernel10& k) {
  std::string grid = std::to_string(k.gridX);
  if (k.gridY != 1 || k.gridZ != 1) grid += fmt::format("x{}x{}", k.gridY, k.gridZ);
  return fmt::format(" [grid {}, {} B smem]", grid, k.dynamicSharedMemory);
}

void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t* buffer, size_t, size_t valid) {
  std::vector<TraceRecord> got;
  CUpti_Activity* rec = nullptr;
  while (cupti().next_record(buffer, valid, &rec) == CUPTI_SUCCESS) {
    TraceRecord t;
    if (rec->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || rec->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
      const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
      // The launch shape is part of the name: one kernel launched for several jobs (the decode
      // step's GEMVs: qkv, projections, LM head) then gets a row per job.
      t = {TraceRecord::Kind::Kernel, short_kernel_name(k->name ? k->name : "?") + launch_shape(*k), k->start, k->end};
    } else if (rec->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(rec);
      t = {TraceRecord::Kind::Memcpy, memcpy_name(m->copyKind), m->start, m->end};
    } else if (rec->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(rec);
      t = {TraceRecord::Kind::Memset, "memset", m->start, m->end};
    } else {
      continue;
    }
    got.push_back(std::move(t));
  }
  size_t dropped = 0;
  cupti().dropped_records(ctx, stream, &dropped);
  std::free(buffer);
  Collected& c = collected();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.records.insert(c.records.end(), got.begin(), got.end());
  c.dropped += dropped;
}

std::atomic<bool> g_tracing{false};

class CuptiKernelTrace final : public KernelTrace {
 public:
  CuptiKernelTrace() {
    ATTN_CHECK(!g_tracing.exchange(true), "kernel trace: a trace is already recording");
    try {
      CUDA_CHECK(cudaDeviceSynchronize());  // nothing from before the trace
      {
        Collected& c = collected();
        std::lock_guard<std::mutex> lock(c.mutex);
        c.records.clear(), c.dropped = 0;
      }
      CUPTI_CHECK(cupti().register_callbacks(buffer_requested, buffer_completed));
      for (CUpti_ActivityKind k : kTracedKinds) CUPTI_CHECK(cupti().enable(k));
    } catch (...) {  // a kind enabled before the refusal must not keep recording
      disable_all();
      g_tracing = false;
      throw;
    }
  }
  ~CuptiKernelTrace() override {
    if (!stopped_) {  // an exception before stop() finished: stop recording all the same
      disable_all();
      g_tracing = false;
    }
  }

  std::vector<TraceRecord> stop() override {
    ATTN_CHECK(!stopped_, "kernel trace: stop() called twice");
    CUDA_CHECK(cudaDeviceSynchronize());  // (throws with the trace still on: the destructor stops it)
    stopped_ = true;
    struct Release {
      ~Release() { g_tracing = false; }
    } release;
    // Stop recording, then hand over every buffer, incomplete ones too; then detach, so that what
    // runs after the trace runs as if there had been none.
    const CUptiResult disabled = disable_all();
    const CUptiResult flushed = cupti().flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    std::vector<TraceRecord> out;
    size_t dropped = 0;
    {
      Collected& c = collected();
      std::lock_guard<std::mutex> lock(c.mutex);
      out.swap(c.records), dropped = c.dropped;
    }
    // Not fatal: the records are complete; only later timings in this process would carry CUPTI's hooks.
    if (const CUptiResult r = cupti().finalize(); r != CUPTI_SUCCESS)
      std::fprintf(stderr, "warning: kernel trace: CUPTI did not detach (%s); later timings in this process run with it\n",
                   cupti_error(r).c_str());
    ATTN_CHECK(disabled == CUPTI_SUCCESS, "kernel trace: CUPTI refused to stop recording: {}", cupti_error(disabled));
    ATTN_CHECK(flushed == CUPTI_SUCCESS, "kernel trace: CUPTI refused to hand over its records: {}", cupti_error(flushed));
    ATTN_CHECK(dropped == 0, "kernel trace: CUPTI dropped {} records (its buffers were full)", dropped);
    for (const TraceRecord& r : out)
      ATTN_CHECK(r.start_ns > 0 && r.end_ns >= r.start_ns,
                 "kernel trace: CUPTI returned an incomplete record ({}: start {} ns, end {} ns)", r.name, r.start_ns,
                 r.end_ns);
    std::stable_sort(out.begin(), out.end(),
                     [](const TraceRecord& a, const TraceRecord& b) { return a.start_ns < b.start_ns; });
    return out;
  }

 private:
  // Every traced kind disabled, even when one refuses; the first refusal is returned.
  static CUptiResult disable_all() noexcept {
    CUptiResult first = CUPTI_SUCCESS;
    for (CUpti_ActivityKind k : kTracedKinds)
      if (const CUptiResult r = cupti().disable(k); r != CUPTI_SUCCESS && first == CUPTI_SUCCESS) first = r;
    return first;
  }

  bool stopped_ = false;
};

}  // namespace

std::unique_ptr<KernelTrace> KernelTrace::start() { return std::make_unique<CuptiKernelTrace>(); }
std::string KernelTrace::library() { return cupti().loaded_as; }

}  // namespace attn

#else  // no CUDA, or no CUPTI headers, in this build

namespace attn {
namespace {
[[noreturn]] void built_without_tracer() {
#if defined(ATTN_WITH_CUDA)
  fail("kernel trace: this binary was built without CUPTI's headers (cupti_activity.h), which a trace needs; "
       "rebuild on a CUDA toolkit that has them");
#else
  fail("kernel trace: this binary was built without CUDA; a trace records the device's kernels");
#endif
}
}  // namespace
std::unique_ptr<KernelTrace> KernelTrace::start() { built_without_tracer(); }
std::string KernelTrace::library() { built_without_tracer(); }
}  // namespace attn

#endif
