// The shape of a GPT-2 style model, independent of any backend.
#pragma once
#include <cstdint>
#include <string>

namespace attn {

struct GPTConfig {
  int vocab_size = 0;         // real vocabulary (from the tokenizer); logits beyond it are ignored
  int padded_vocab_size = 0;  // rows of wte: vocab_size rounded up (GPU-friendly), >= vocab_size
  int block_size = 0;         // maximum sequence length (rows of wpe)
  int n_layer = 0;
  int n_head = 0;
  int n_kv_head = 0;          // key/value heads: == n_head (MHA), divides n_head (GQA), 1 (MQA)
  int n_embd = 0;             // C = n_head * head_dim
  float dropout = 0.0f;       // embedding and residual-branch dropout (nanoGPT's `dropout`)
  float attn_dropout = 0.0f;  // dropout on the attention probabilities

  int head_dim() const { return n_embd / n_head; }
  // Width of the fused qkv projection: H query heads + 2 * Hkv key/value heads.
  int qkv_dim() const { return (n_head + 2 * n_kv_head) * head_dim(); }
};

}  // namespace attn
