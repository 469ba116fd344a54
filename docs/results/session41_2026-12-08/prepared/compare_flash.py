#!/usr/bin/env python3
"""Call A's flash.txt as one table: per shape and flags, each build's fwd / bwd / f+b ms over its rounds, and each
branch's f+b against main's (best round against best round; a branch wins a shape only if every round of it beats
every round of main).

  compare_flash.py flash.txt        # "== v flags" headers, then bench_flash_attention's rows
  compare_flash.py variants.txt     # also: each flag set's f+b against the same build's plain run, per shape
                                    # (issue 14's "ALiBi and soft-capping within 10% of plain causal")
"""
import re, sys
from collections import defaultdict

rows = defaultdict(lambda: defaultdict(list))  # (flags, shape) -> build -> [(fwd, bwd, fb)]
build, flags = None, ""
for line in open(sys.argv[1]):
    if line.startswith("=="):
        parts = line.split(None, 2)
        build, flags = parts[1], (parts[2].strip() if len(parts) > 2 else "")
        flags = re.sub(r"--shape \S+ ?", "", flags).strip()
        continue
    m = re.match(r"^(\d+,\d+,\d+,\d+,\d+)\s+([\d.]+)\s+[\d.]+\s+([\d.]+)\s+[\d.]+\s+([\d.]+)", line)
    if m and build:
        rows[(flags, m.group(1))][build].append(tuple(float(m.group(i)) for i in (2, 3, 4)))

print(f"{'flags':22s} {'shape':20s} {'build':5s} {'fwd ms':>15s} {'bwd ms':>15s} {'f+b ms':>15s}  vs main")
for (flags, shape), by in rows.items():
    main = by.get("m", [])
    for b, rs in by.items():
        col = lambda i: " / ".join(f"{r[i]:.3f}" for r in rs)
        verdict = ""
        if b != "m" and main:
            best, best_m = min(r[2] for r in rs), min(r[2] for r in main)
            wins = max(r[2] for r in rs) < min(r[2] for r in main)
            verdict = f"{best / best_m:.3f}x {'WIN' if wins else ''}"
        print(f"{flags:22s} {shape:20s} {b:5s} {col(0):>15s} {col(1):>15s} {col(2):>15s}  {verdict}")

# Each build's variants against its own plain runs (flags "" on the same shape): best f+b against best f+b.
plain = {(b, shape): min(r[2] for r in rs) for (flags, shape), by in rows.items() if flags == "" for b, rs in by.items()}
ratios = [(flags, shape, b, min(r[2] for r in rs) / plain[(b, shape)])
          for (flags, shape), by in rows.items() if flags for b, rs in by.items() if (b, shape) in plain]
if ratios:
    print(f"\n{'flags':22s} {'shape':20s} {'build':5s} f+b against plain (best rounds; issue 14 asks <= 1.10)")
    for flags, shape, b, r in ratios:
        if "--window" in flags:  # issue 14: the window 1024 at least 7x faster than causal
            print(f"{flags:22s} {shape:20s} {b:5s} {r:.3f}x (causal / window {1 / r:.2f}x, 7x asked)")
        else:
            print(f"{flags:22s} {shape:20s} {b:5s} {r:.3f}x {'ok' if r <= 1.10 else 'OVER'}")
