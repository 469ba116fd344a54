#!/usr/bin/env python3
"""Independent check of the CPU GPT-2 against PyTorch (float64).

usage: torch_reference.py PATH/TO/attn_dump_reference

The helper writes tiny random models (params, inputs, targets, its loss and every
gradient) run through CpuGPT<double>; this script rebuilds the same GPT-2 in torch from
the documented parameter layout, written from the math with torch's own ops (layer_norm,
linear, gelu(approximate='tanh'), explicit masked softmax attention, cross_entropy),
and compares the loss and every gradient tensor: max |ours - torch| / max |torch| <= 1e-9.
Exits 77 (ctest: skipped) when torch is not importable.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

from import_or_skip import import_or_skip

np, torch, F = import_or_skip("numpy", "torch", "torch.nn.functional")

TOL = 1e-9


def alibi_slopes(n):
    """The ALiBi paper's reference get_slopes (power of two, else interleaved)."""
    def pow2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]
    if math.log2(n).is_integer():
        return pow2(n)
    closest = 2 ** math.floor(math.log2(n))
    return pow2(closest) + alibi_slopes(2 * closest)[0::2][: n - closest]


def attention(q, k, v, inputs, opt):
    """q: (B, H, T, D); k, v: (B, Hkv, T, D). Returns (B, H, T, D)."""
    B, H, T, D = q.shape
    Hkv = k.shape[1]
    k = k.repeat_interleave(H // Hkv, dim=1)
    v = v.repeat_interleave(H // Hkv, dim=1)
    s = (q @ k.transpose(-2, -1)) / math.sqrt(D)
    i = torch.arange(T).view(T, 1)
    j = torch.arange(T).view(1, T)
    if opt["alibi"]:
        slopes = torch.tensor(alibi_slopes(H), dtype=torch.float64).view(1, H, 1, 1)
        s = s - slopes * (i - j).to(torch.float64)
    if opt["softcap"] > 0:
        cap = opt["softcap"]
        s = cap * torch.tanh(s / cap)
    visible = torch.ones(B, 1, T, T, dtype=torch.bool)
    if opt["causal"]:
        visible &= (j <= i)
    if opt["sliding_window"] > 0:
        visible &= (i - j) < opt["sliding_window"]
    if opt["document_mask"]:
        eot = (inputs == opt["eot_token"]).long()
        doc = torch.cumsum(eot, dim=1) - eot  # eot tokens strictly before t
        visible &= (doc.view(B, 1, T, 1) == doc.view(B, 1, 1, T))
    s = s.masked_fill(~visible, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def gpt_loss(p, inputs, targets, cfg, opt):
    B, T = inputs.shape
    C, H, Hkv, V = cfg["n_embd"], cfg["n_head"], cfg["n_kv_head"], cfg["vocab_size"]
    D = C // H
    x = p["wte"][inputs] + p["wpe"][:T]
    for l in range(cfg["n_layer"]):
        h = f"h.{l}."
        a = F.layer_norm(x, (C,), p[h + "ln_1.weight"], p[h + "ln_1.bias"], eps=1e-5)
        qkv = F.linear(a, p[h + "attn.c_attn.weight"], p[h + "attn.c_attn.bias"])
        q, k, v = qkv.split([H * D, Hkv * D, Hkv * D], dim=-1)
        q = q.view(B, T, H, D).transpose(1, 2)
        k = k.view(B, T, Hkv, D).transpose(1, 2)
        v = v.view(B, T, Hkv, D).transpose(1, 2)
        y = attention(q, k, v, inputs, opt).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, p[h + "attn.c_proj.weight"], p[h + "attn.c_proj.bias"])
        m = F.layer_norm(x, (C,), p[h + "ln_2.weight"], p[h + "ln_2.bias"], eps=1e-5)
        m = F.gelu(F.linear(m, p[h + "mlp.c_fc.weight"], p[h + "mlp.c_fc.bias"]), approximate="tanh")
        x = x + F.linear(m, p[h + "mlp.c_proj.weight"], p[h + "mlp.c_proj.bias"])
    x = F.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], eps=1e-5)
    logits = (x @ p["wte"].T)[..., :V]  # tied head; padded vocabulary columns dropped
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)


def check_case(case, outdir):
    total = case["total"]
    raw = np.fromfile(os.path.join(outdir, case["bin"]), dtype="<f8")
    assert raw.size == 2 * total, f"{case['bin']}: {raw.size} values, expected {2 * total}"
    flat_params, flat_grads = raw[:total], raw[total:]
    params, ours = {}, {}
    for t in case["tensors"]:
        n = int(np.prod(t["shape"]))
        o = t["offset"]
        params[t["name"]] = torch.tensor(flat_params[o:o + n].reshape(t["shape"]), requires_grad=True)
        ours[t["name"]] = flat_grads[o:o + n].reshape(t["shape"])
    B, T = case["B"], case["T"]
    inputs = torch.tensor(case["inputs"], dtype=torch.long).view(B, T)
    targets = torch.tensor(case["targets"], dtype=torch.long).view(B, T)
    loss = gpt_loss(params, inputs, targets, case["config"], case["attention"])
    loss.backward()

    worst = 0.0
    ok = True
    loss_err = abs(case["loss"] - loss.item()) / abs(loss.item())
    print(f"  {case['name']}: loss ours {case['loss']:.15f} torch {loss.item():.15f} rel {loss_err:.1e}")
    ok &= loss_err <= TOL
    for name, p in params.items():
        ref = p.grad.numpy()
        err = np.abs(ours[name] - ref).max() / max(np.abs(ref).max(), 1e-300)
        worst = max(worst, err)
        if not err <= TOL:
            ok = False
            print(f"    MISMATCH {name}: max rel {err:.3e}")
    print(f"  {case['name']}: {len(params)} gradient tensors, max rel error {worst:.2e}")
    return ok


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    torch.set_default_dtype(torch.float64)
    with tempfile.TemporaryDirectory() as outdir:
        subprocess.run([sys.argv[1], outdir], check=True)
        with open(os.path.join(outdir, "manifest.json")) as f:
            manifest = json.load(f)
        ok = True
        for case in manifest["cases"]:
            ok &= check_case(case, outdir)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
