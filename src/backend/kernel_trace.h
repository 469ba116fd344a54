// What the device ran, kernel by kernel: a trace of a repeated step, and where its time goes.
//
// KernelTrace records every kernel, memcpy and memset the GPU runs between start() and stop(),
// with its start and end on the device's clock, kernels inside replayed CUDA graphs included.
// It uses CUPTI's activity API, loaded at run time (dlopen: $ATTN_CUPTI, else libcupti.so.13 on the
// loader's path or in CUDA's usual folders), so attnlab neither links nor needs CUPTI unless a
// trace is asked for. A CPU-only build, or one without CUPTI's headers, refuses in one message.
//
// summarise_steps() takes the records of `steps` identical steps (bench-generate's decode step:
// the token upload, the graph's kernels, the ids' download) and splits each step's period into
//   critical_i = end_i - max(start_i, E_{i-1})  (E_{i-1}: the latest end before record i): the
//                time by which record i moved the step's end; with programmatic dependent launch
//                a kernel starts before its predecessor ends, and only the part after counts;
//   idle_i     = max(0, start_i - E_{i-1}): the GPU waited for the launch of record i;
//   host       = the next step's first start - this step's last end: the host's share (its sync,
//                the graph launch's latency).
// For one stream these add up to the period exactly: sum(critical) + sum(idle) + host.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace attn {

struct TraceRecord {
  enum class Kind { Kernel, Memcpy, Memset };
  Kind kind = Kind::Kernel;
  std::string name;  // a kernel's demangled name, shortened (short_kernel_name); "memcpy HtoD" ...
  uint64_t start_ns = 0, end_ns = 0;
};

class KernelTrace {
 public:
  virtual ~KernelTrace() = default;
  // Starts recording (throws attn::Error when CUPTI cannot be loaded or refuses).
  static std::unique_ptr<KernelTrace> start();
  // Waits for the device, stops recording and returns the records sorted by start.
  virtual std::vector<TraceRecord> stop() = 0;
  // Loads CUPTI and the functions a trace calls (no device needed); returns the name it was
  // loaded by. Throws attn::Error when it is not found, or lacks a function.
  static std::string library();
};

// "attn::kern::(anonymous namespace)::gemv_kernel<8, true>(float const*, ...)" -> "gemv_kernel<8, true>":
// the parameter list, the return type and the namespaces dropped, template arguments kept (they
// tell a kernel's variants apart), at most max_chars.
std::string short_kernel_name(const std::string& demangled, size_t max_chars = 72);

// One operation (a name) of the step: the sum over its calls in a step, averaged over the steps.
struct StepTraceRow {
  std::string name;
  TraceRecord::Kind kind = TraceRecord::Kind::Kernel;
  int calls = 0;             // per step
  double own_us = 0;         // sum of end - start (with PDL this includes waiting for the one before)
  double critical_us = 0;    // see above
  double idle_before_us = 0;
};

struct StepTrace {
  int steps = 0;                 // periods measured (the traced steps minus the last)
  int kernels = 0, copies = 0;   // per step (copies: memcpy and memset)
  double period_us = 0;          // first start of step s -> first start of step s+1, mean
  double busy_span_us = 0;       // first start -> last end within a step, mean
  double host_us = 0;            // period - busy span
  std::vector<StepTraceRow> rows;  // by first appearance in the step
  std::vector<TraceRecord> one_step;  // the first step's records, start times relative to its start
};

// records: sorted by start, `steps` >= 2 repetitions of the same sequence of operations. Throws
// attn::Error when they do not split into identical steps (something else ran on the device).
StepTrace summarise_steps(const std::vector<TraceRecord>& records, int steps);

// A markdown table of the rows, with totals that add up to the period.
std::string format_step_trace(const StepTrace& t);

}  // namespace attn
