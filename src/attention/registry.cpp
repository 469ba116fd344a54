// The attention registry (registry.h): the implementations, and the one validation of the
// `attention` options. The variants' own rules come from their structs (kernels/variants/*.h,
// listed in kernels/attention_variant.h); nothing here names a variant.
#include "attention/registry.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#if ATTN_WITH_CUDA
#include "attention/cuda_attention.h"
#endif

namespace attn {

const char* device_name(AttentionDevice d) { return d == AttentionDevice::cpu ? "cpu" : "cuda"; }

const std::vector<AttentionImpl>& attention_impls() {
  static const std::vector<AttentionImpl> impls = [] {
    std::vector<AttentionImpl> v;
    // The float64/float reference of the full math (cpu_attention.h).
    v.push_back({"naive", AttentionDevice::cpu, kNeedsMask | kNeedsScoreMod, true, true, {}, {DType::F32}});
    // Batched GEMMs + a softmax kernel, P kept for backward (cuda_naive_attention.cu);
    // in device.precision = "tf32" its GEMMs use TF32 tensor cores.
    v.push_back({"naive", AttentionDevice::cuda, kNeedsNothing, true, true, {}, {DType::F32, DType::BF16}});
    // Our FlashAttention kernels (cuda_flash_attention.cu, kernels/flash_attention*.cu).
    // fp32: 3xTF32 tensor-core products (fp32 accuracy); device.precision = "tf32": 1xTF32.
    v.push_back({"flash", AttentionDevice::cuda, kNeedsMask | kNeedsScoreMod, true, true, {64, 128},
                 {DType::F32, DType::BF16}});
#if ATTN_WITH_CUDA
    v[1].make_cuda = make_cuda_naive_attention;
    v[2].make_cuda = make_cuda_flash_attention;
#endif
    return v;
  }();
  return impls;
}

namespace {

std::string impl_label(const AttentionImpl& i) { return fmt::format("{} on {}", i.name, device_name(i.device)); }

// "naive on cpu, flash on cuda": every implementation for which `ok` holds.
template <class Pred>
std::string supporters(Pred ok) {
  std::string out;
  for (const AttentionImpl& i : attention_impls())
    if (ok(i)) out += (out.empty() ? "" : ", ") + impl_label(i);
  return out.empty() ? "none" : out;
}

[[noreturn]] void refuse(const std::string& what, const AttentionImpl& impl, const std::string& supported) {
  fail("{} is not supported by attention.impl = \"{}\" on {} (supported by: {})", what, impl.name,
       device_name(impl.device), supported);
}

template <class T>
bool contains(const std::vector<T>& v, T x) {
  return v.empty() || std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

OptionProblem attention_option_problem(const AttentionOptions& opts) {
  const bool known = std::any_of(attention_impls().begin(), attention_impls().end(),
                                 [&](const AttentionImpl& i) { return opts.impl == i.name; });
  if (!known) {
    std::string names;
    for (const AttentionImpl& i : attention_impls())
      if (names.find(fmt::format("\"{}\"", i.name)) == std::string::npos)
        names += (names.empty() ? "" : " or ") + fmt::format("\"{}\"", i.name);
    return {"attention.impl", fmt::format("must be {} (got \"{}\")", names, opts.impl)};
  }
  OptionProblem p;
  for_each_variant([&]<class V>() {
    if (!p.key.empty()) return;
    const std::string problem = V::invalid(opts);
    if (!problem.empty()) p = {V::kKey, problem};
  });
  return p;
}

std::vector<std::pair<std::string, std::string>> variants_on(const AttentionOptions& opts) {
  std::vector<std::pair<std::string, std::string>> on;
  for_each_variant([&]<class V>() {
    if (V::on(opts)) on.emplace_back(V::kKey, V::value(opts));
  });
  return on;
}

const AttentionImpl& check_attention(const AttentionOptions& opts, const AttentionUse& use) {
  if (const OptionProblem p = attention_option_problem(opts); !p.key.empty()) fail("{} {}", p.key, p.problem);
  const AttentionImpl* impl = nullptr;
  for (const AttentionImpl& i : attention_impls())
    if (i.name == opts.impl && i.device == use.device) impl = &i;
  if (impl == nullptr)
    fail("attention.impl = \"{}\" is not available on {} (available: {})", opts.impl, device_name(use.device),
         supporters([&](const AttentionImpl& i) { return i.name == opts.impl; }));
  for_each_variant([&]<class V>() {
    if (!V::on(opts)) return;
    const std::string what = fmt::format("{} = {}", V::kKey, V::value(opts));
    if ((impl->variants & V::kNeeds) != V::kNeeds)
      refuse(what, *impl, supporters([](const AttentionImpl& i) { return (i.variants & V::kNeeds) == V::kNeeds; }));
    if (use.decode && !V::kDecode)
      fail("{} is not supported by cached generation (attention.impl = \"{}\" on {}); use --no-cache", what,
           impl->name, device_name(impl->device));
  });
  if (use.dropout > 0.0f && !impl->dropout)
    refuse(fmt::format("model.attn_dropout = {}", use.dropout), *impl,
           supporters([](const AttentionImpl& i) { return i.dropout; }));
  if (use.n_kv_head > 0 && use.n_kv_head < use.n_head && !impl->gqa)
    refuse(fmt::format("model.n_kv_head = {} (grouped-query attention)", use.n_kv_head), *impl,
           supporters([](const AttentionImpl& i) { return i.gqa; }));
  if (use.head_dim > 0 && !contains(impl->head_dims, use.head_dim))
    refuse(fmt::format("head dim {} (model.n_embd / model.n_head)", use.head_dim), *impl,
           supporters([&](const AttentionImpl& i) { return contains(i.head_dims, use.head_dim); }));
  if (use.precision && !contains(impl->precisions, *use.precision))
    refuse(fmt::format("device.precision = \"{}\"", dtype_name(*use.precision)), *impl,
           supporters([&](const AttentionImpl& i) { return contains(i.precisions, *use.precision); }));
  return *impl;
}

}  // namespace attn
