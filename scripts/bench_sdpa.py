#!/usr/bin/env python3
"""PyTorch SDPA baselines for tests/gpu/bench_flash_attention.cu: same shapes, same timing
(CUDA events, warm-up, median of N, inputs rotated over several sets), same table.

FLOPs: forward 4*B*H*T*T*D (halved when causal); backward 2.5x forward.
Extra MB: peak memory of forward+backward over inputs, output and gradients.

usage: python3 scripts/bench_sdpa.py [--full] [--reps N] [--warmup-ms MS] [--backends flash,cudnn,efficient,math]
       [--dtype bf16|fp32|tf32] [--shapes B,H,T,D[,Hkv] ...]
       [--accuracy]   (also: error of the flash backend vs float64 on random inputs)
  --shapes: a fifth number Hkv < H runs grouped-query attention (K and V with Hkv heads,
          SDPA's enable_gqa=True), the row named B,H,Hkv,T,D as bench_flash_attention names it.
  --warmup-ms: run each call for MS ms before its timed series (bench_flash_attention's flag: the
          H200 lowers its clock at its power limit, so both sides should be timed in that steady state).
  --dtype fp32: fp32 inputs with TF32 off (torch.backends.cuda.matmul.allow_tf32 = False, as
          cudnn's); tf32: fp32 inputs with TF32 allowed. Only the efficient and math backends take
          fp32 (the efficient kernel's fp32 GEMMs are its own, the flag does not reach them).
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = [(16, 12, 1024, 64), (4, 12, 4096, 64), (1, 12, 16384, 64), (8, 16, 2048, 128), (2, 16, 8192, 128)]
BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}


DTYPE = torch.bfloat16  # --dtype


def make_set(B, H, T, D, Hkv):
    # (B, T, H, D) storage, the layout of a packed qkv buffer; SDPA sees (B, H, T, D) views.
    q = torch.randn(B, T, H, D, device="cuda", dtype=DTYPE).requires_grad_()
    k, v = (torch.randn(B, T, Hkv, D, device="cuda", dtype=DTYPE).requires_grad_() for _ in range(2))
    dy = torch.randn(B, T, H, D, device="cuda", dtype=DTYPE)
    return q, k, v, dy


def run_fwd(s, causal):
    q, k, v, _ = s
    gqa = {"enable_gqa": True} if k.shape[2] != q.shape[2] else {}
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal,
                                          **gqa)


WARMUP_MS = 0  # --warmup-ms


def time_it(fn, sets, reps):
    for i in range(3):
        fn(sets[i % len(sets)])
    warm_until = time.monotonic() + WARMUP_MS / 1000.0
    i = 0
    while time.monotonic() < warm_until:
        fn(sets[i % len(sets)])
        torch.cuda.synchronize()
        i += 1
    ts = []
    for i in range(reps):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        fn(sets[i % len(sets)])
        e1.record()
        e1.synchronize()
        ts.append(e0.elapsed_time(e1))
    return statistics.median(ts)


def bench_backend(name, B, H, T, D, Hkv, causal, reps):
    es = torch.finfo(DTYPE).bits // 8
    set_bytes = 2 * B * T * (2 * H + 2 * Hkv) * D * es
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    nrot = max(1, min(6, 3 * l2 // set_bytes + 1))
    sets = [make_set(B, H, T, D, Hkv) for _ in range(nrot)]
    with sdpa_kernel([BACKENDS[name]]):
        with torch.no_grad():
            t_f = time_it(lambda s: run_fwd(s, causal), sets, reps)
        outs = [run_fwd(s, causal) for s in sets]
        by_id = {id(s): o for s, o in zip(sets, outs)}

        def bwd(s):
            torch.autograd.grad(by_id[id(s)], s[:3], s[3].transpose(1, 2), retain_graph=True)

        t_b = time_it(bwd, sets, reps)

        def both(s):
            o = run_fwd(s, causal)
            torch.autograd.grad(o, s[:3], s[3].transpose(1, 2))

        t_fb = time_it(both, sets, reps)
        del outs, by_id
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        s = sets[0]
        o = run_fwd(s, causal)
        g = torch.autograd.grad(o, s[:3], s[3].transpose(1, 2))
        torch.cuda.synchronize()
        kept = o.numel() * es + sum(x.numel() * es for x in g)
        extra = (torch.cuda.max_memory_allocated() - base - kept) / 2**20
    return t_f, t_b, t_fb, extra


def accuracy(reps_unused=None):
    print("\nPyTorch flash backend error vs float64 (rel L2, N(0,1) inputs, B=2 H=4 T=1000):")
    torch.manual_seed(0)
    for D in (64, 128):
        for causal in (False, True):
            B, H, T = 2, 4, 1000
            q, k, v, dy = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16) for _ in range(4))
            res = {}
            for tag, dt, backend in (("ref", torch.float64, SDPBackend.MATH), ("flash", torch.bfloat16, SDPBackend.FLASH_ATTENTION)):
                qq, kk, vv = (x.to(dt).requires_grad_() for x in (q, k, v))
                with sdpa_kernel([backend]):
                    o = F.scaled_dot_product_attention(qq, kk, vv, is_causal=causal)
                    g = torch.autograd.grad(o, (qq, kk, vv), dy.to(dt))
                res[tag] = [o.double()] + [x.double() for x in g]
            errs = [((a - r).norm() / r.norm()).item() for a, r in zip(res["flash"], res["ref"])]
            print(f"  D={D:<3} {'causal' if causal else 'full  '}  O {errs[0]:.2e} dQ {errs[1]:.2e} dK {errs[2]:.2e} dV {errs[3]:.2e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup-ms", type=int, default=0)
    ap.add_argument("--backends", default="flash,cudnn,efficient,math")
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--dtype", choices=("bf16", "fp32", "tf32"), default="bf16")
    ap.add_argument("--shapes", nargs="+", default=None, help="B,H,T,D ... (default: the issue's five)")
    a = ap.parse_args()
    causal = not a.full
    global DTYPE, WARMUP_MS
    DTYPE = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    WARMUP_MS = a.warmup_ms
    torch.backends.cuda.matmul.allow_tf32 = a.dtype == "tf32"
    torch.backends.cudnn.allow_tf32 = a.dtype == "tf32"
    shapes = [tuple(int(x) for x in s.split(",")) for s in a.shapes] if a.shapes else SHAPES
    shapes = [(B, H, T, D, rest[0] if rest else H) for B, H, T, D, *rest in shapes]
    print(f"PyTorch {torch.__version__} SDPA, {torch.cuda.get_device_name(0)}, {a.dtype}, "
          f"{'causal' if causal else 'non-causal'}, median of {a.reps}"
          f"{f', after {a.warmup_ms} ms of warm-up each' if a.warmup_ms else ''}")
    print(f"{'backend':<10} {'B,H,T,D':<18} {'fwd ms':>9} {'TFLOP/s':>7} {'bwd ms':>9} {'TFLOP/s':>7} "
          f"{'f+b ms':>9} {'TFLOP/s':>7} {'extra MB':>9}")
    for B, H, T, D, Hkv in shapes:
        fl = 4.0 * B * H * T * T * D * (0.5 if causal else 1.0)
        label = f"{B},{H},{T},{D}" if Hkv == H else f"{B},{H},{Hkv},{T},{D}"
        for name in a.backends.split(","):
            if name == "math" and B * H * T * T > 2**30:
                continue
            try:
                t_f, t_b, t_fb, extra = bench_backend(name, B, H, T, D, Hkv, causal, a.reps)
                print(f"{name:<10} {label:<18} {t_f:9.3f} {fl / t_f * 1e-9:7.1f} {t_b:9.3f} "
                      f"{2.5 * fl / t_b * 1e-9:7.1f} {t_fb:9.3f} {3.5 * fl / t_fb * 1e-9:7.1f} {extra:9.1f}", flush=True)
            except Exception as e:  # backend not available for this shape
                print(f"{name:<10} {label:<18} unavailable: {str(e).splitlines()[0][:60]}", flush=True)
            torch.cuda.empty_cache()
    if a.accuracy:
        accuracy()


if __name__ == "__main__":
    main()
