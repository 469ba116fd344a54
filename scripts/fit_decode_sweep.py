#!/usr/bin/env python3
"""Fit a decode sweep (bench_decode_attention at several contexts): per kernel kind (heads, kv heads, cache dtype), the time as a
fixed part plus a part per byte, us = a + b * MB, for the kernel and for a plain read of the same
bytes. The gap a_kernel - a_read is the kernel's own fixed cost (split start, merge, tail); b says
whether the kernel streams as fast as the read.
usage: scripts/fit_decode_sweep.py sweep.jsonl   (scripts/gpu_check.sh decodesweep writes one)"""
import json
import sys
from collections import defaultdict


def fit(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    worst = max(abs(a + b * x - y) for x, y in zip(xs, ys))
    return a, b, worst


def main(path):
    rows = defaultdict(list)
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if "us" not in r or "ctx" not in r:
            continue
        rows[(r["H"], r["Hkv"], r["D"], r["cache"])].append(r)
    print("| H/Hkv, D, cache | contexts | kernel a (us) | kernel b (us/MB) | read a | read b | worst residual (us) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for key in sorted(rows):
        rs = sorted(rows[key], key=lambda r: r["ctx"])
        if len(rs) < 2:
            continue
        mb = [r["bytes"] / 1e6 for r in rs]
        ka, kb, kw = fit(mb, [r["us"] for r in rs])
        ra, rb, rw = fit(mb, [r["read_us"] for r in rs])
        H, Hkv, D, cache = key
        ctxs = ",".join(str(r["ctx"]) for r in rs)
        print(f"| {H}/{Hkv}, {D}, {cache} | {ctxs} | {ka:.2f} | {kb:.4f} | {ra:.2f} | {rb:.4f} | {max(kw, rw):.2f} |")


if __name__ == "__main__":
    main(sys.argv[1])
