#!/usr/bin/env python3
"""PyTorch peer of attnlab's GPT, for ratios measured in the same GPU call.

  torch_gpt.py bench --sdpa math --compile 0 --batch 16 --seq 1024      # GPT-2 124M step benchmark
  torch_gpt.py bench --sdpa efficient --precision fp32                 # eager fp32, TF32 off (tf32: on)
  torch_gpt.py shakespeare --data input.txt --iters 5000               # nanoGPT shakespeare_char run

The model is nanoGPT's GPT-2 (biases on, tied LM head, tanh-GELU, dropout), trained with
fused AdamW and bf16 autocast as nanoGPT does (bench --precision fp32|tf32: no autocast, fp32
weights and activations, with PyTorch's TF32 matmul/cuDNN flags off or on). The attention goes through
scaled_dot_product_attention with the chosen backend, or explicit softmax(QK^T)V ("naive").
"""
import argparse, contextlib, json, math, time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}


class Block(nn.Module):
    def __init__(self, C, H, dropout, attn_kind):
        super().__init__()
        self.H, self.attn_kind, self.dropout = H, attn_kind, dropout
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.drop = nn.Dropout(dropout)

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        p = self.dropout if self.training else 0.0
        if self.attn_kind == "naive":
            s = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            a = F.dropout(F.softmax(s.masked_fill(~mask, float("-inf")), dim=-1), p, self.training)
            y = a @ v
        else:
            with sdpa_kernel(BACKENDS[self.attn_kind]):
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self.drop(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.drop(self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")))


class GPT(nn.Module):
    def __init__(self, vocab, block, L, H, C, dropout, attn_kind):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, C), nn.Embedding(block, C)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList(Block(C, H, dropout, attn_kind) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        self.apply(self._init)
        for n, p in self.named_parameters():
            if n.endswith("c_proj.weight") or n.endswith("mlp_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L))

    def _init(self, m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        T = idx.size(1)
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T, device=idx.device)))
        for b in self.h:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))


def optimizer(model, lr, wd, betas):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=betas, fused=True)


def bench(a):
    torch.manual_seed(0)
    dev = "cuda"
    model = GPT(a.vocab, a.seq, a.n_layer, a.n_head, a.n_embd, 0.0, a.sdpa).to(dev)
    opt = optimizer(model, 6e-4, 0.1, (0.9, 0.95))
    step_fn = torch.compile(model) if a.compile else model
    # bf16: autocast as nanoGPT; fp32/tf32: no autocast, TF32 tensor cores off/on for matmuls and cuDNN
    tf32 = a.precision != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    autocast_dtype = torch.bfloat16 if a.precision == "bf16" else None
    x = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)
    y = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)
    times = []
    torch.cuda.reset_peak_memory_stats()
    for s in range(a.warmup + a.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext():
            loss = step_fn(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if s >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    dt = times[len(times) // 2]
    r = {"who": "pytorch", "attention": a.sdpa, "compile": bool(a.compile), "precision": a.precision,
         "batch": a.batch, "seq_len": a.seq,
         "step_ms": dt * 1e3, "tokens_per_s": a.batch * a.seq / dt,
         "peak_bytes": torch.cuda.max_memory_allocated(), "loss_last": loss.item()}
    # MFU with attnlab bench's estimate: 6 N + 12 L H Q T flops per token, N without wpe
    n_params = sum(p.numel() for p in model.parameters()) - model.wpe.weight.numel()
    flops_per_token = 6 * n_params + 12 * a.n_layer * a.n_embd * a.seq
    r["mfu"] = flops_per_token * r["tokens_per_s"] / (a.peak_tflops * 1e12)
    print(json.dumps(r))


def shakespeare(a):
    """nanoGPT's config/train_shakespeare_char.py, timed from start to end (evals included)."""
    torch.manual_seed(1337)
    dev = "cuda"
    text = open(a.data, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    splits = {"train": data[:n].to(dev), "val": data[n:].to(dev)}
    B, T = a.batch, a.block
    t_start = time.perf_counter()
    model = GPT(len(chars), T, a.n_layer, a.n_head, a.n_embd, a.dropout, a.sdpa).to(dev)
    opt = optimizer(model, a.lr, 0.1, (0.9, 0.99))
    fwd = torch.compile(model) if a.compile else model

    def batch(split):
        d = splits[split]
        ix = torch.randint(len(d) - T, (B,), device=dev)
        off = torch.arange(T, device=dev)
        return d[ix[:, None] + off], d[ix[:, None] + off + 1]

    def lr_at(it):
        if it < a.warmup:
            return a.lr * (it + 1) / (a.warmup + 1)
        r = (it - a.warmup) / (a.iters - a.warmup)
        return a.min_lr + 0.5 * (1 + math.cos(math.pi * min(r, 1.0))) * (a.lr - a.min_lr)

    @torch.no_grad()
    def val_loss():
        model.eval()
        losses = []
        for _ in range(a.eval_iters):
            x, y = batch("val")
            with torch.autocast("cuda", dtype=torch.bfloat16):
                losses.append(fwd(x, y).item())
        model.train()
        return sum(losses) / len(losses)

    last = None
    for it in range(a.iters + 1):
        if it % a.eval_interval == 0 or it == a.iters:
            last = val_loss()
            print(f"step {it} val {last:.4f} ({time.perf_counter() - t_start:.1f}s)", flush=True)
        if it == a.iters:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        x, y = batch("train")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fwd(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    wall = time.perf_counter() - t_start
    print(json.dumps({"who": "pytorch", "run": "shakespeare_char", "val_loss": last, "wall_s": wall,
                      "compile": bool(a.compile), "attention": a.sdpa}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--sdpa", default="math", choices=["naive"] + list(BACKENDS))
    b.add_argument("--compile", type=int, default=0)
    b.add_argument("--precision", default="bf16", choices=["bf16", "tf32", "fp32"])
    b.add_argument("--batch", type=int, default=16)
    b.add_argument("--seq", "--seq-len", dest="seq", type=int, default=1024)
    b.add_argument("--vocab", type=int, default=50304)
    b.add_argument("--n_layer", type=int, default=12)
    b.add_argument("--n_head", type=int, default=12)
    b.add_argument("--n_embd", type=int, default=768)
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--peak-tflops", type=float, default=989.0, help="for MFU (H100 SXM dense bf16, as attnlab bench)")
    s = sub.add_parser("shakespeare")
    s.add_argument("--data", required=True)
    s.add_argument("--sdpa", default="math", choices=["naive"] + list(BACKENDS))
    s.add_argument("--compile", type=int, default=0)
    s.add_argument("--iters", type=int, default=5000)
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--block", type=int, default=256)
    s.add_argument("--n_layer", type=int, default=6)
    s.add_argument("--n_head", type=int, default=6)
    s.add_argument("--n_embd", type=int, default=384)
    s.add_argument("--dropout", type=float, default=0.2)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--min_lr", type=float, default=1e-4)
    s.add_argument("--warmup", type=int, default=100)
    s.add_argument("--eval_interval", type=int, default=250)
    s.add_argument("--eval_iters", type=int, default=200)
    a = ap.parse_args()
    bench(a) if a.cmd == "bench" else shakespeare(a)


if __name__ == "__main__":
    main()
