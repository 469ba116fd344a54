#!/usr/bin/env python3
"""HF transformers' GPT2 on a checkpoint exported by `attnlab export-hf`, for the GPU machine.

  hf_generate.py loss --hf DIR --tokens SHARD --batch B --seq T [--ours FILE.json]
      GPT2LMHeadModel.from_pretrained(DIR) in fp32 (TF32 off); the mean loss over rows
      b = tokens[b*T : b*T+T+1] of our token shard (the rows `attnlab loss` uses), printed
      next to ours (the JSON line `attnlab loss` wrote to FILE.json) with the relative
      difference (issue 9, acceptance 5: <= 1e-3).
  hf_generate.py generate --hf DIR [--batch 1 32] [--prompt 128] [--new 512]
      bf16 greedy generate() of exactly --new tokens (min_new_tokens = max_new_tokens) after a
      random prompt, eager (dynamic cache) and with a static cache +
      torch.compile(model.forward, mode="reduce-overhead", fullgraph=True) (HF's recipe). On
      transformers 5.x the recipe as written does not get CUDA graphs: the static cache is
      allocated lazily inside the compiled forward, so its tensors (and the write counter
      `cumulative_length` it advances in place) are not static addresses, inductor skips CUDA
      graphs ("mutated inputs") and generate() then fails with "accessing tensor output of
      CUDAGraphs that has been overwritten by a subsequent run". So here: the StaticCache is
      made and filled once eagerly (its tensors marked static), reset and passed to every
      generate(); the compiled forward starts a new cudagraph-trees step per call
      (torch.compiler.cudagraph_mark_step_begin) and clones the logits out of the graph's pool;
      generate()'s own auto-compile is off. Fallbacks, each tried only when the one before fails:
      "static-notrees" (the same with inductor's non-tree CUDA graphs) and "static-auto"
      (cache_implementation="static" alone, which generate() compiles itself). Each (mode,
      batch) runs in its own process: a crash is reported as that row's error, and peak memory
      is that run's alone.
      --vocab V grows the exported vocabulary to V (resize_token_embeddings) so that the model has
      the shape `attnlab bench-generate --vocab-size V` times (GPT-2: 50257).
      Best of --repeats after warmup; a fresh model per (mode, batch), so peak_bytes is that run's;
      tokens_per_s = batch * new / seconds of the whole generate() call
      (prefill included), ms_per_token = seconds / new; peak_bytes = max_memory_allocated.
Every result is one JSON line. Without transformers: {"skipped": "transformers not installed"}.
"""
import argparse
import json
import struct
import sys
import time

import torch

try:
    import transformers
    from transformers import GPT2LMHeadModel
except Exception:  # pragma: no cover - depends on the machine
    print(json.dumps({"skipped": "transformers not installed"}))
    sys.exit(0)


def read_shard(path):
    """Our token shard (data/shard.h): 64-byte header (magic, version, dtype 1=u16 2=u32, count)."""
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:8] != b"ATTNTOK1":
        sys.exit(f"error: {path} is not an attnlab token shard")
    dtype, count = struct.unpack("<IQ", blob[12:24])
    np_dtype = {1: torch.int16, 2: torch.int32}[dtype]
    raw = torch.frombuffer(bytearray(blob[64:64 + count * (2 if dtype == 1 else 4)]), dtype=np_dtype)
    return raw.to(torch.int64) & (0xFFFF if dtype == 1 else 0xFFFFFFFF)


def load(hf_dir, dtype):
    try:
        model = GPT2LMHeadModel.from_pretrained(hf_dir, dtype=dtype)
    except TypeError:  # transformers before `dtype` was the name
        model = GPT2LMHeadModel.from_pretrained(hf_dir, torch_dtype=dtype)
    return model.to("cuda" if torch.cuda.is_available() else "cpu").eval()


def cmd_loss(a):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = load(a.hf, torch.float32)
    tokens = read_shard(a.tokens)
    need = a.batch * a.seq + 1
    if tokens.numel() < need:
        sys.exit(f"error: {a.tokens} has {tokens.numel()} tokens, {need} are needed")
    rows = torch.stack([tokens[b * a.seq:b * a.seq + a.seq + 1] for b in range(a.batch)]).to(model.device)
    with torch.no_grad():
        logits = model(input_ids=rows[:, :-1]).logits.float()
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1)).item()
    out = {"who": "hf", "transformers": transformers.__version__, "device": str(model.device), "batch": a.batch,
           "seq": a.seq, "loss": loss}
    if a.ours:
        ours = json.loads(open(a.ours).read().strip().splitlines()[-1])["loss"]
        out.update({"ours": ours, "rel_diff": abs(ours - loss) / abs(loss)})
    print(json.dumps(out))


def time_generate(model, batch, prompt, new, warmup, repeats, cache=None):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (batch, prompt), generator=g).to(model.device)
    kw = dict(attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new, do_sample=False,
              pad_token_id=model.config.eos_token_id if model.config.eos_token_id is not None else 0)
    def run():
        if cache is not None:  # the same static cache every call, emptied in place
            cache.reset()
            kw["past_key_values"] = cache
        return model.generate(ids, **kw)
    with torch.no_grad():
        for _ in range(warmup):
            out = run()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = run()
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
    assert out.shape == (batch, prompt + new), out.shape
    return {"batch": batch, "prompt": prompt, "new_tokens": new, "tokens_per_s": batch * new / best,
            "ms_per_token": 1000 * best / new, "peak_bytes": torch.cuda.max_memory_allocated()}


def compiled_forward(forward):
    """torch.compile(forward, mode="reduce-overhead", fullgraph=True), made safe for generate():
    every call starts a new cudagraph-trees step and returns logits that live outside the
    graph's output pool (a later replay may reuse that memory)."""
    compiled = torch.compile(forward, mode="reduce-overhead", fullgraph=True)

    def step(*args, **kwargs):
        torch.compiler.cudagraph_mark_step_begin()
        out = compiled(*args, **kwargs)
        if getattr(out, "logits", None) is not None:
            out.logits = out.logits.clone()
        return out
    return step


MODE_NAMES = {"eager": "hf eager", "static": "hf static+compile", "static-notrees": "hf static+compile (no cg trees)",
              "static-auto": "hf static (auto-compile)"}
FALLBACK = {"static": "static-notrees", "static-notrees": "static-auto"}


def static_cache(model, batch, max_len):
    """A StaticCache allocated outside torch.compile with every tensor a static address."""
    from transformers import StaticCache
    try:
        cache = StaticCache(config=model.config, max_cache_len=max_len)
    except TypeError:  # transformers 4.x
        cache = StaticCache(config=model.config, max_batch_size=batch, max_cache_len=max_len, device=model.device,
                            dtype=model.dtype)
    with torch.no_grad():  # one eager step allocates the (lazy) layers on the device
        model(input_ids=torch.zeros((batch, 1), dtype=torch.long, device=model.device), past_key_values=cache,
              use_cache=True)
    for layer in getattr(cache, "layers", []):
        for t in vars(layer).values():
            if torch.is_tensor(t) and t.is_cuda:
                torch._dynamo.mark_static_address(t)
    cache.reset()
    return cache


def prepare(hf_dir, mode, batch, max_len, vocab=0):
    """eager: dynamic cache. static: HF's recipe, static cache (static_cache) + torch.compile of
    forward (compiled_forward). static-notrees: the same with inductor's non-tree CUDA graphs.
    static-auto: cache_implementation="static" alone (transformers compile it in generate())."""
    import torch._inductor.config as inductor_config
    inductor_config.triton.cudagraph_trees = mode != "static-notrees"
    model = load(hf_dir, torch.bfloat16)
    if vocab and vocab > model.config.vocab_size:
        # the exported rows, then new ones: the LM head reads as many weights as a model of that vocabulary
        model.resize_token_embeddings(vocab)
    cache = None
    if mode == "static-auto":
        model.generation_config.cache_implementation = "static"
    if mode in ("static", "static-notrees"):
        cache = static_cache(model, batch, max_len)
        if hasattr(model.generation_config, "disable_compile"):
            model.generation_config.disable_compile = True  # we compiled forward ourselves
        model.forward = compiled_forward(model.forward)
    return model, cache, MODE_NAMES[mode]


def run_one(a, mode, batch):
    """One (mode, batch) in this process: its JSON line."""
    try:
        model, cache, _ = prepare(a.hf, mode, batch, a.prompt + a.new, a.vocab)
        warmup = a.warmup + (1 if mode != "eager" else 0)  # the first call compiles
        r = time_generate(model, batch, a.prompt, a.new, warmup, a.repeats, cache)
        return {"who": MODE_NAMES[mode], **r, "vocab": model.config.vocab_size, "transformers": transformers.__version__}
    except Exception as e:
        return {"who": MODE_NAMES[mode], "batch": batch, "error": f"{type(e).__name__}: {e}"[:300]}


def run_child(a, mode, batch):
    """run_one in a fresh process (a segfault or a poisoned CUDA context stays there)."""
    import subprocess
    cmd = [sys.executable, __file__, "generate", "--hf", a.hf, "--batch", str(batch), "--prompt", str(a.prompt),
           "--new", str(a.new), "--vocab", str(a.vocab), "--modes", mode, "--warmup", str(a.warmup), "--repeats", str(a.repeats), "--one"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    except subprocess.TimeoutExpired:
        return {"who": MODE_NAMES[mode], "batch": batch, "error": f"timed out after {a.timeout} s"}
    sys.stderr.write(p.stderr[-4000:])
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    return {"who": MODE_NAMES[mode], "batch": batch,
            "error": f"process exited {p.returncode}: {p.stderr.strip().splitlines()[-1:] or ''}"[:300]}


def cmd_generate(a):
    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device"}))
        return
    if a.one:
        print(json.dumps(run_one(a, a.modes[0], a.batch[0])), flush=True)
        return
    for first_mode in a.modes:
        for batch in a.batch:
            mode = first_mode
            while mode:  # report and go on: one failing mode must not hide the others
                r = run_child(a, mode, batch)
                print(json.dumps(r), flush=True)
                mode = FALLBACK.get(mode) if "error" in r else None  # the next way to compile


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    l = sub.add_parser("loss")
    l.add_argument("--hf", required=True)
    l.add_argument("--tokens", required=True, help="attnlab token shard, e.g. runs/data/x/val_000.bin")
    l.add_argument("--batch", type=int, default=8)
    l.add_argument("--seq", type=int, default=256)
    l.add_argument("--ours", help="file holding the JSON line of `attnlab loss` on the same rows")
    g = sub.add_parser("generate")
    g.add_argument("--hf", required=True)
    g.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    g.add_argument("--prompt", type=int, default=128)
    g.add_argument("--new", type=int, default=512)
    g.add_argument("--modes", nargs="+", default=["eager", "static"], choices=list(MODE_NAMES))
    g.add_argument("--vocab", type=int, default=0,
                   help="grow the vocabulary to this size (new rows random) so the model has GPT-2's shape, e.g. 50257")
    g.add_argument("--warmup", type=int, default=1)
    g.add_argument("--repeats", type=int, default=2)
    g.add_argument("--timeout", type=int, default=400, help="seconds for one (mode, batch) process")
    g.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # run_child's process
    a = p.parse_args()
    cmd_loss(a) if a.cmd == "loss" else cmd_generate(a)


if __name__ == "__main__":
    main()
