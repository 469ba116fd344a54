#!/usr/bin/env python3
"""Independent check of `attnlab export-hf` / `import-hf` against HF GPT2's math (float64).

usage: hf_gpt2_reference.py PATH/TO/attnlab

No transformers here, so this script implements GPT2LMHeadModel's forward itself, by the
HF tensor names and Conv1D semantics (y = x @ W + b, W stored (in, out)), reading
model.safetensors by hand (8-byte little-endian header length, JSON header, raw data).
  1. export: trains a tiny char model on the CPU (a few steps at a high learning rate so
     that biases and norms move), exports it, checks config.json and every tensor's name
     and shape, and compares the HF-math loss on a val batch with `attnlab loss` on the
     same tokens: relative difference <= 1e-6 (ours is fp32, this is fp64).
  2. import: writes a random HF-style GPT2 file (hub naming: no "transformer." prefix,
     lm_head.weight present, attn.bias mask buffers), imports it with `attnlab import-hf`
     and compares the losses the same way.
Exits 77 (ctest: skipped) when torch is not importable.
"""
import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile

from import_or_skip import import_or_skip

(torch,) = import_or_skip("torch")

# Ours runs in fp32, this in fp64: observed 3e-8..8e-8. 1e-6 (tighter than the 1e-5 asked) because
# erf GELU instead of gelu_new already moves the loss by 2e-6..7e-6 here.
TOL = 1e-6
B, T = 3, 37


def run(*args):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(args)}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, h in header.items():
        assert h["dtype"] == "F32", (name, h["dtype"])
        b, e = h["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float32).reshape(h["shape"])
        out[name] = t.to(torch.float64)
    return out, meta


def write_safetensors(path, tensors):
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, t in tensors.items():
        raw = t.to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_shard(path):
    """Our token shard: 64-byte header (magic, version, dtype 1=u16 2=u32, count), then tokens."""
    with open(path, "rb") as f:
        blob = f.read()
    assert blob[:8] == b"ATTNTOK1", path
    dtype, count = struct.unpack("<IQ", blob[12:24])
    fmt = {1: "H", 2: "I"}[dtype]
    return list(struct.unpack(f"<{count}{fmt}", blob[64:64 + count * struct.calcsize(fmt)]))


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def hf_gpt2_loss(sd, cfg, tokens):
    """GPT2LMHeadModel forward in float64 by the HF names; sd has no 'transformer.' prefix."""
    C, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    D, eps = C // H, cfg["layer_norm_epsilon"]
    rows = torch.tensor([tokens[b * T:b * T + T + 1] for b in range(B)], dtype=torch.long)
    idx, tgt = rows[:, :-1], rows[:, 1:]
    h = sd["wte.weight"][idx] + sd["wpe.weight"][:T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for l in range(L):
        p = f"h.{l}."
        a = layer_norm(h, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], eps)
        qkv = a @ sd[p + "attn.c_attn.weight"] + sd[p + "attn.c_attn.bias"]  # Conv1D
        q, k, v = (z.reshape(B, T, H, D).transpose(1, 2) for z in qkv.split(C, dim=-1))
        s = (q @ k.transpose(-2, -1)) / math.sqrt(D)
        y = torch.softmax(s.masked_fill(~causal, float("-inf")), dim=-1) @ v
        y = y.transpose(1, 2).reshape(B, T, C)
        h = h + y @ sd[p + "attn.c_proj.weight"] + sd[p + "attn.c_proj.bias"]
        m = layer_norm(h, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], eps)
        m = gelu_new(m @ sd[p + "mlp.c_fc.weight"] + sd[p + "mlp.c_fc.bias"])
        h = h + m @ sd[p + "mlp.c_proj.weight"] + sd[p + "mlp.c_proj.bias"]
    h = layer_norm(h, sd["ln_f.weight"], sd["ln_f.bias"], eps)
    logits = h @ sd.get("lm_head.weight", sd["wte.weight"]).T  # tied
    return torch.nn.functional.cross_entropy(logits.reshape(B * T, -1), tgt.reshape(-1)).item()


def ours_loss(attnlab, run_dir, shard):
    out = run(attnlab, "loss", "--checkpoint", run_dir, "--tokens", shard, "--batch", str(B), "--seq", str(T))
    return json.loads(out.strip().splitlines()[-1])["loss"]


def compare(what, ours, ref):
    rel = abs(ours - ref) / abs(ref)
    print(f"{what}: attnlab {ours:.9f}  hf-math(fp64) {ref:.9f}  rel {rel:.2e}")
    if not rel <= TOL:
        sys.exit(f"FAILED: {what}: relative difference {rel:.3e} > {TOL}")


def main():
    attnlab = os.path.abspath(sys.argv[1])
    torch.manual_seed(0)
    rnd = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="hf_gpt2_ref_") as tmp:
        words = ["thee", "thou", "king", "crown", "night", "sword", "love", "death", "speak", "Romeo!", "\n"]
        with open(os.path.join(tmp, "corpus.txt"), "w") as f:
            f.write(" ".join(rnd.choice(words) for _ in range(6000)))
        data = os.path.join(tmp, "data")
        run(attnlab, "prepare", "--input", os.path.join(tmp, "corpus.txt"), "--out", data, "--tokenizer", "char")
        run_dir = os.path.join(tmp, "run")
        # n_embd 48 over 3 heads (head_dim 16), vocab padded to 64: nothing a power of two by accident.
        with open(os.path.join(tmp, "cfg.toml"), "w") as f:
            f.write(f"""
[model]
n_layer = 2
n_head = 3
n_embd = 48
block_size = 40
vocab_pad_to = 64
dropout = 0.1
[data]
dir = "{data}"
tokenizer = "char"
[optimizer]
lr = 1e-2
weight_decay = 0.0
[schedule]
warmup_iters = 0
[training]
batch_size = 4
max_iters = 25
eval_interval = 0
out_dir = "{run_dir}"
[checkpoint]
interval = 0
save_best = false
[logging]
plot = false
progress = false
[device]
backend = "cpu"
threads = 1
""")
        run(attnlab, "train", "-c", os.path.join(tmp, "cfg.toml"))
        tokens = read_shard(os.path.join(data, "val_000.bin"))
        vocab = json.load(open(os.path.join(data, "tokenizer.json"))).get("vocab_size")

        # 1. export
        hf = os.path.join(tmp, "hf")
        run(attnlab, "export-hf", run_dir, hf)
        cfg = json.load(open(os.path.join(hf, "config.json")))
        expect = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_positions": 40, "n_embd": 48,
                  "n_layer": 2, "n_head": 3, "n_inner": 192, "activation_function": "gelu_new",
                  "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True, "resid_pdrop": 0.1, "embd_pdrop": 0.1,
                  "attn_pdrop": 0.1, "bos_token_id": None, "eos_token_id": None, "torch_dtype": "float32"}
        for k, v in expect.items():
            got = cfg.get(k, "<absent>")
            ok = abs(got - v) < 1e-7 if isinstance(v, float) else got == v
            if not ok:
                sys.exit(f"FAILED: config.json {k} = {got!r}, expected {v!r}")
        if vocab is not None and cfg["vocab_size"] != vocab:
            sys.exit(f"FAILED: config.json vocab_size {cfg['vocab_size']} != tokenizer's {vocab}")
        V, C = cfg["vocab_size"], 48
        sd, meta = read_safetensors(os.path.join(hf, "model.safetensors"))
        if meta.get("format") != "pt":
            sys.exit(f"FAILED: safetensors metadata {meta} lacks format=pt (HF refuses such files)")
        shapes = {"transformer.wte.weight": [V, C], "transformer.wpe.weight": [40, C],
                  "transformer.ln_f.weight": [C], "transformer.ln_f.bias": [C]}
        for l in range(2):
            p = f"transformer.h.{l}."
            shapes.update({p + "ln_1.weight": [C], p + "ln_1.bias": [C], p + "ln_2.weight": [C], p + "ln_2.bias": [C],
                           p + "attn.c_attn.weight": [C, 3 * C], p + "attn.c_attn.bias": [3 * C],
                           p + "attn.c_proj.weight": [C, C], p + "attn.c_proj.bias": [C],
                           p + "mlp.c_fc.weight": [C, 4 * C], p + "mlp.c_fc.bias": [4 * C],
                           p + "mlp.c_proj.weight": [4 * C, C], p + "mlp.c_proj.bias": [C]})
        got = {k: list(v.shape) for k, v in sd.items()}
        if got != shapes:
            sys.exit(f"FAILED: tensor names/shapes differ from GPT2LMHeadModel's:\n got {got}\n want {shapes}")
        if sd["transformer.h.0.attn.c_attn.bias"].abs().max() == 0:
            sys.exit("FAILED: the trained biases are all zero; the check would not see a bias mix-up")
        sd = {k[len("transformer."):]: v for k, v in sd.items()}
        compare("export", ours_loss(attnlab, run_dir, os.path.join(data, "val_000.bin")),
                hf_gpt2_loss(sd, cfg, tokens))
        # The exported directory imports back to the same function.
        run(attnlab, "import-hf", hf, os.path.join(tmp, "back"))
        compare("export->import", ours_loss(attnlab, os.path.join(tmp, "back"), os.path.join(data, "val_000.bin")),
                hf_gpt2_loss(sd, cfg, tokens))

        # 2. import a random HF-hub-style file (no prefix, lm_head present, mask buffers).
        Vr, Cr, Hr, Lr, Pr = V, 40, 5, 3, 50
        g = torch.Generator().manual_seed(1)
        rn = lambda *s, std=0.3: torch.randn(*s, generator=g, dtype=torch.float64) * std
        sd = {"wte.weight": rn(Vr, Cr), "wpe.weight": rn(Pr, Cr), "ln_f.weight": 1 + rn(Cr, std=0.2),
              "ln_f.bias": rn(Cr, std=0.1)}
        for l in range(Lr):
            p = f"h.{l}."
            sd.update({p + "ln_1.weight": 1 + rn(Cr, std=0.2), p + "ln_1.bias": rn(Cr, std=0.1),
                       p + "ln_2.weight": 1 + rn(Cr, std=0.2), p + "ln_2.bias": rn(Cr, std=0.1),
                       p + "attn.c_attn.weight": rn(Cr, 3 * Cr), p + "attn.c_attn.bias": rn(3 * Cr, std=0.1),
                       p + "attn.c_proj.weight": rn(Cr, Cr), p + "attn.c_proj.bias": rn(Cr, std=0.1),
                       p + "mlp.c_fc.weight": rn(Cr, 4 * Cr), p + "mlp.c_fc.bias": rn(4 * Cr, std=0.1),
                       p + "mlp.c_proj.weight": rn(4 * Cr, Cr), p + "mlp.c_proj.bias": rn(Cr, std=0.1)})
        sd = {k: v.to(torch.float32).to(torch.float64) for k, v in sd.items()}  # what the fp32 file holds
        file_sd = dict(sd)
        file_sd["lm_head.weight"] = sd["wte.weight"]
        for l in range(Lr):
            file_sd[f"h.{l}.attn.bias"] = torch.ones(1, 1, Pr, Pr).tril()
        src = os.path.join(tmp, "hub")
        os.makedirs(src)
        write_safetensors(os.path.join(src, "model.safetensors"), file_sd)
        rcfg = {"model_type": "gpt2", "vocab_size": Vr, "n_positions": Pr, "n_embd": Cr, "n_layer": Lr, "n_head": Hr,
                "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}
        json.dump(rcfg, open(os.path.join(src, "config.json"), "w"))
        run(attnlab, "import-hf", src, os.path.join(tmp, "imported"), "--tokenizer", os.path.join(data, "tokenizer.json"))
        compare("import", ours_loss(attnlab, os.path.join(tmp, "imported"), os.path.join(data, "val_000.bin")),
                hf_gpt2_loss(sd, rcfg, tokens))
    print("hf_gpt2_reference: OK")


if __name__ == "__main__":
    main()
