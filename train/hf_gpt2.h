// Conversion between our checkpoints and HF transformers' GPT2LMHeadModel format.
//
//   attnlab export-hf CKPT_DIR OUT_DIR    ->  OUT_DIR/model.safetensors   fp32, HF tensor names
//                                              OUT_DIR/config.json         GPT2Config
//                                              OUT_DIR/tokenizer.json      ours (not GPT-2's)
//                                              OUT_DIR/attnlab_config.toml the run's config
//                                              OUT_DIR/README.txt
//   attnlab import-hf HF_DIR OUT_RUN_DIR  ->  OUT_RUN_DIR/checkpoints/step_000000/ (params only)
//
// The two models compute the same function: ours is GPT-2 with tied embeddings, tanh
// GELU ("gelu_new"), LayerNorm eps 1e-5, biases everywhere, learned positions. What
// differs is storage:
//   - names: ours "h.3.attn.c_attn.weight" = HF "transformer.h.3.attn.c_attn.weight"
//     (HF hub files often drop "transformer."; both are read);
//   - HF's Conv1D stores weights (in, out) and computes y = x W + b; ours are nn.Linear's
//     (out, in) with y = x W^T + b, so every matrix of a block is transposed;
//   - our wte has padded_vocab rows (vocab_pad_to); HF's has exactly vocab_size
//     (the padding rows are never read: their logits are excluded from the softmax);
//   - HF may store lm_head.weight; with tied embeddings it must equal wte.
// What GPT-2 cannot express (GQA/MQA, ALiBi, soft-capping, sliding windows, document
// masks, non-causal attention) is refused on export naming the config key.
#pragma once
#include <string>

namespace attn {

struct HfExportSummary {
  int vocab_size = 0, n_layer = 0, n_head = 0, n_embd = 0, n_positions = 0;
  size_t num_parameters = 0;  // as HF counts them (wte counted once)
};

// Writes OUT_DIR (created if missing). ckpt may be a run directory or a checkpoint.
HfExportSummary export_hf_gpt2(const std::string& ckpt, const std::string& out_dir);

// Reads HF_DIR/config.json and HF_DIR/model.safetensors and writes a params-only
// checkpoint under out_run_dir (a run directory: eval/sample --checkpoint out_run_dir).
// The tokenizer is `tokenizer_path` if given, else HF_DIR/tokenizer.json when it is one of
// ours or GPT-2's family (HF's format), else HF_DIR's vocab.json + merges.txt (GPT-2's
// vocabulary files, saved as our gpt2 tokenizer); without one the checkpoint is written but eval/sample will ask for it.
// The base config is HF_DIR/attnlab_config.toml when present (our own export), else the
// defaults; the model section comes from config.json. Returns the checkpoint directory.
std::string import_hf_gpt2(const std::string& hf_dir, const std::string& out_run_dir,
                           const std::string& tokenizer_path);

}  // namespace attn
