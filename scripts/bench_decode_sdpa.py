#!/usr/bin/env python3
"""PyTorch peers of tests/gpu/bench_decode_attention.cu: decode attention (one query token per
sequence) over a bf16 KV cache through F.scaled_dot_product_attention with each SDPA backend
(cuDNN, flash, efficient, math), and flash_attn_with_kvcache when the flash_attn package is
importable. Same timing as ours: the L2 cache flushed before every timed call (--flush read,
the default: a read of a buffer of 2x the L2 size, leaving clean lines; --flush write: a fill
of it, whose dirty lines are then written back inside the timed call), then a GPU spin so that launch overhead is not timed, both outside the events),
CUDA events around the call alone, median of --reps; the same bandwidth formula (cache bytes read = 2 * B * H * ctx * D * 2) against the device-to-device
copy bandwidth (a 1 GiB copy, read + write bytes) measured in the same process.
A backend that refuses a shape is reported ("error"), not fatal. Prints JSON lines.

usage: python3 scripts/bench_decode_sdpa.py [--reps N] [--shape B,H,D,ctx ...]
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SPIN_CYCLES = 400_000  # ~0.2 ms at H100 clocks
SHAPES = [(1, 12, 64, 32768), (32, 12, 64, 4096)]
BACKENDS = {
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}


def copy_gbps():
    n = 1 << 30
    src = torch.ones(n, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ts = []
    for i in range(12):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        dst.copy_(src)
        e1.record()
        e1.synchronize()
        if i >= 2:
            ts.append(e0.elapsed_time(e1))
    del src, dst
    return 2 * n / (statistics.median(ts) * 1e-3) / 1e9


def time_flushed(fn, reps, flush, by_write):
    for _ in range(3):
        fn()
    ts = []
    for i in range(reps):
        if by_write:
            flush.fill_(i & 0xFF)  # evict the cache from L2
        else:
            flush.max()  # evict the cache from L2, leaving no dirty lines
        torch.cuda._sleep(SPIN_CYCLES)  # keeps the GPU busy while Python enqueues: events time GPU work only
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        ts.append(e0.elapsed_time(e1))
    return statistics.median(ts) * 1e-3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--flush", choices=["read", "write"], default="read")
    ap.add_argument("--shape", action="append", help="B,H,D,ctx")
    args = ap.parse_args()
    shapes = [tuple(int(x) for x in s.split(",")) for s in args.shape] if args.shape else SHAPES
    copy = copy_gbps()
    print(json.dumps({"what": "copy", "who": "torch", "device": torch.cuda.get_device_name(), "gbps": round(copy, 1)}),
          flush=True)
    flush = torch.ones(2 * torch.cuda.get_device_properties(0).L2_cache_size, dtype=torch.uint8, device="cuda")
    try:
        from flash_attn import flash_attn_with_kvcache  # optional
    except Exception:
        flash_attn_with_kvcache = None

    for B, H, D, ctx in shapes:
        # (B, H, T, D) caches as SDPA takes them; q is one token.
        q = torch.randn(B, H, 1, D, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(B, H, ctx, D, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(B, H, ctx, D, device="cuda", dtype=torch.bfloat16)
        nbytes = 2 * B * H * ctx * D * 2
        runs = {name: (lambda: F.scaled_dot_product_attention(q, k, v)) for name in BACKENDS}
        if flash_attn_with_kvcache is not None:
            kc, vc = k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous()  # (B, T, H, D)
            qf = q.transpose(1, 2).contiguous()
            seqlens = torch.full((B,), ctx, dtype=torch.int32, device="cuda")
            runs["flash_attn_kvcache"] = lambda: flash_attn_with_kvcache(qf, kc, vc, cache_seqlens=seqlens)
        for name, fn in runs.items():
            row = {"what": "decode", "who": f"torch-{name}", "B": B, "H": H, "Hkv": H, "D": D, "ctx": ctx, "cache": "bf16",
                   "flush": args.flush}
            try:
                with torch.no_grad(), sdpa_kernel([BACKENDS.get(name, SDPBackend.MATH)]):
                    t = time_flushed(fn, args.reps, flush, args.flush == "write")
                gbps = nbytes / t / 1e9
                row.update(us=round(t * 1e6, 2), bytes=nbytes, gbps=round(gbps, 1), copy_gbps=round(copy, 1),
                           frac_copy=round(gbps / copy, 3))
            except Exception as e:  # a backend that refuses the shape
                row["error"] = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            print(json.dumps(row), flush=True)
        del q, k, v
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
