// The attention registry: every implementation, once, with its factory and what it supports;
// and the one validation of the `attention` options (each variant's own rule, from
// kernels/attention_variant.h, plus what the chosen implementation can run).
//
// Config validation, the backends, cached generation and HF export all ask here; an
// unsupported combination fails with one line naming the key, the implementation and the
// implementations that support it, e.g.
//   attention.alibi = true is not supported by attention.impl = "naive" on cuda
//   (supported by: naive on cpu, flash on cuda)
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "core/dtype.h"

namespace attn {

class CudaAttention;

enum class AttentionDevice { cpu, cuda };
const char* device_name(AttentionDevice d);

struct AttentionImpl {
  const char* name;        // the value of attention.impl
  AttentionDevice device;
  unsigned variants;       // VariantNeeds it can run: kNeedsMask | kNeedsScoreMod
  bool dropout;            // model.attn_dropout > 0
  bool gqa;                // model.n_kv_head < model.n_head
  std::vector<int> head_dims;          // empty: any
  // Activation dtypes. F32 covers device.precision = "fp32" and "tf32" (fp32 storage): in
  // tf32 the cuda naive attention's GEMMs and the flash kernels' products run on TF32 tensor
  // cores (1xTF32; fp32 flash uses 3xTF32), the cpu refuses tf32 (backend).
  std::vector<DType> precisions;
  // CUDA implementations: builds it (null on the cpu: the CPU backend calls the reference,
  // attention/cpu_attention.h, directly).
  // tf32: device.precision = "tf32" (act is F32); an implementation may use TF32 matmuls.
  std::unique_ptr<CudaAttention> (*make_cuda)(const AttentionOptions&, DType act, bool tf32) = nullptr;
};

const std::vector<AttentionImpl>& attention_impls();

// What a caller is about to run, beyond the options. Zero / empty: not known yet (skipped).
struct AttentionUse {
  AttentionDevice device = AttentionDevice::cpu;
  float dropout = 0.0f;  // model.attn_dropout
  int n_head = 0, n_kv_head = 0, head_dim = 0;
  const DType* precision = nullptr;
  bool tf32 = false;     // device.precision = "tf32": fp32 storage, TF32 matmuls where it has them
  bool decode = false;   // cached generation (the decode kernel / CPU cache)
};

// The first problem of the options on their own (a bad value, an unknown impl), as
// {key, "problem"}, or an empty key: config validation prefixes the file it came from.
struct OptionProblem {
  std::string key, problem;
};
OptionProblem attention_option_problem(const AttentionOptions& opts);

// Throws attn::Error, one line, for a bad option or anything `use` asks that the
// implementation attention.impl on use.device lacks. Returns that implementation.
const AttentionImpl& check_attention(const AttentionOptions& opts, const AttentionUse& use);

// Every variant that is on, by its key and value, e.g. {"attention.alibi", "true"}.
std::vector<std::pair<std::string, std::string>> variants_on(const AttentionOptions& opts);

}  // namespace attn
