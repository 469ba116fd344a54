// attn_dump_reference OUTDIR: writes tiny random GPTs run through CpuGPT<double> for the
// PyTorch cross-check (tests/torch_reference.py):
//   OUTDIR/manifest.json  per case: config, attention options, B, T, inputs, targets,
//                         loss, the parameter layout (name, shape, offset) and its .bin
//   OUTDIR/<case>.bin     float64 little-endian: params (layout.total()), then the
//                         gradients d(mean loss)/d(params) (layout.total())
// The cases cover GQA and MQA, T not a power of two, a padded vocabulary, ignored
// targets, and the attention options (ALiBi, soft-capping, window, document mask).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/gpt_cpu.h"

namespace {

struct Case {
  std::string name;
  attn::GPTConfig cfg;
  attn::AttentionOptions attention;
  int B, T;
};

attn::GPTConfig config(int V, int Vp, int block, int L, int H, int Hkv, int C) {
  attn::GPTConfig c;
  c.vocab_size = V, c.padded_vocab_size = Vp, c.block_size = block;
  c.n_layer = L, c.n_head = H, c.n_kv_head = Hkv, c.n_embd = C;
  return c;
}

void run_case(const Case& k, std::mt19937_64& rng, const std::string& dir, nlohmann::json& out) {
  attn::CpuGPT<double> m(k.cfg, k.attention);
  std::normal_distribution<double> nd(0.0, 1.0);
  for (const attn::ParamTensor& t : m.layout().tensors())
    for (size_t i = 0; i < t.numel; ++i) {
      double& x = m.params()[t.offset + i];
      switch (t.kind) {
        case attn::ParamKind::NormWeight: x = 1.0 + 0.2 * nd(rng); break;
        case attn::ParamKind::Matrix:
        case attn::ParamKind::Embedding: x = 0.3 * nd(rng); break;
        default: x = 0.1 * nd(rng); break;
      }
    }
  const int N = k.B * k.T, V = k.cfg.vocab_size;
  std::vector<int32_t> inputs(N), targets(N);
  for (auto& t : inputs) t = static_cast<int32_t>(rng() % V);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % V);
  targets[1] = -1;
  targets[N - 2] = -1;
  if (k.attention.document_mask) {  // a few end-of-text tokens in every row
    for (int b = 0; b < k.B; ++b) {
      inputs[b * k.T + 3 + b] = k.attention.eot_token;
      inputs[b * k.T + k.T / 2 + b] = k.attention.eot_token;
    }
  }
  m.zero_grad();
  const double loss = m.forward(inputs.data(), targets.data(), k.B, k.T, attn::StepContext{0, 0, 0, false});
  m.backward(1.0);

  const std::string bin = k.name + ".bin";
  std::ofstream f(dir + "/" + bin, std::ios::binary);
  f.write(reinterpret_cast<const char*>(m.params()), static_cast<std::streamsize>(m.num_scalars() * sizeof(double)));
  f.write(reinterpret_cast<const char*>(m.grads()), static_cast<std::streamsize>(m.num_scalars() * sizeof(double)));
  ATTN_CHECK(f.good(), "cannot write {}/{}", dir, bin);

  nlohmann::json tensors = nlohmann::json::array();
  for (const attn::ParamTensor& t : m.layout().tensors())
    tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"offset", t.offset}});
  const attn::GPTConfig& c = k.cfg;
  const attn::AttentionOptions& a = k.attention;
  out.push_back({{"name", k.name},
                 {"bin", bin},
                 {"total", m.num_scalars()},
                 {"config",
                  {{"vocab_size", c.vocab_size}, {"padded_vocab_size", c.padded_vocab_size},
                   {"block_size", c.block_size}, {"n_layer", c.n_layer}, {"n_head", c.n_head},
                   {"n_kv_head", c.n_kv_head}, {"n_embd", c.n_embd}}},
                 {"attention",
                  {{"causal", a.causal}, {"sliding_window", a.sliding_window}, {"document_mask", a.document_mask},
                   {"eot_token", a.eot_token}, {"alibi", a.alibi}, {"softcap", a.softcap}}},
                 {"B", k.B},
                 {"T", k.T},
                 {"inputs", inputs},
                 {"targets", targets},
                 {"loss", loss},
                 {"tensors", tensors}});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    return 2;
  }
  try {
    const std::string dir = argv[1];
    const uint64_t seed = std::random_device{}();
    std::mt19937_64 rng(seed);
    std::vector<Case> cases;
    cases.push_back({"gqa", config(37, 48, 24, 2, 4, 2, 32), {}, 3, 13});
    attn::AttentionOptions all;
    all.alibi = true, all.softcap = 4.0f, all.sliding_window = 5, all.document_mask = true, all.eot_token = 0;
    cases.push_back({"mqa_alibi_softcap_window_docs", config(29, 32, 20, 2, 4, 1, 16), all, 2, 19});
    attn::AttentionOptions nc;
    nc.causal = false, nc.alibi = true;
    cases.push_back({"mha_noncausal_alibi_h3", config(31, 64, 16, 1, 3, 3, 24), nc, 2, 9});
    nlohmann::json manifest = {{"seed", seed}, {"cases", nlohmann::json::array()}};
    for (const Case& k : cases) run_case(k, rng, dir, manifest["cases"]);
    std::ofstream(dir + "/manifest.json") << manifest.dump(1);
    std::printf("wrote %zu cases to %s (seed %llu)\n", cases.size(), dir.c_str(),
                static_cast<unsigned long long>(seed));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
