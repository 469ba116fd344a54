// One captured CUDA graph: the calls `enqueue` makes on a stream, recorded once
// (cudaStreamBeginCapture ... cudaGraphInstantiate) and replayed with one cudaGraphLaunch.
// A graph keeps every kernel argument and pointer as they were at capture: what changes
// between replays must live in device memory (core/device_value.h), and a new shape or
// buffer needs a new capture (reset()). Used by decode (cuda_generator.cu) and the training
// step (cuda_backend.cu). Nothing may synchronise inside a capture; cuBLASLt's algorithm
// choice and other first-call set-up must have run once uncaptured before.
#pragma once
#include <cuda_runtime.h>

#include <vector>

#include "core/cuda_check.h"

namespace attn {

class CudaGraph {
 public:
  CudaGraph() = default;
  ~CudaGraph() { reset(); }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  bool captured() const { return exec_ != nullptr; }

  // Records enqueue() on `stream` (which must be idle of other captures); on an exception the
  // capture is ended and dropped, leaving the stream usable, and the exception goes on.
  template <typename F>
  void capture(cudaStream_t stream, F&& enqueue) {
    reset();
    CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    try {
      enqueue();
    } catch (...) {
      cudaGraph_t broken = nullptr;
      cudaStreamEndCapture(stream, &broken);
      if (broken) cudaGraphDestroy(broken);
      throw;
    }
    CUDA_CHECK(cudaStreamEndCapture(stream, &graph_));
    CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0));
  }

  void launch(cudaStream_t stream) const { CUDA_CHECK(cudaGraphLaunch(exec_, stream)); }
  // Kernel nodes of the captured graph (0 before a capture): the kernels one replay launches.
  int kernel_nodes() const {
    if (!graph_) return 0;
    size_t n = 0;
    CUDA_CHECK(cudaGraphGetNodes(graph_, nullptr, &n));
    std::vector<cudaGraphNode_t> nodes(n);
    CUDA_CHECK(cudaGraphGetNodes(graph_, nodes.data(), &n));
    int kernels = 0;
    for (cudaGraphNode_t node : nodes) {
      cudaGraphNodeType type;
      CUDA_CHECK(cudaGraphNodeGetType(node, &type));
      kernels += type == cudaGraphNodeTypeKernel;
    }
    return kernels;
  }

  void reset() {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
    exec_ = nullptr, graph_ = nullptr;
  }

 private:
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace attn
