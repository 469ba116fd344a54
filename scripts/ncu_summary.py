#!/usr/bin/env python3
"""Per-kernel table from Nsight Compute's `--print-summary per-kernel` output with the
gpu__time_duration.sum metric (scripts/gpu_check.sh llmc, NCU=1):

  ncu_summary.py NCU_TXT [--top 25]     # kernel | calls | mean us | total ms, most time first
"""
import argparse, re

ap = argparse.ArgumentParser()
ap.add_argument("path")
ap.add_argument("--top", type=int, default=25)
args = ap.parse_args()

rows, name, calls = [], None, 0
for line in open(args.path, errors="replace"):
    m = re.match(r"^  (\S.*?) \(\d+, \d+, \d+\)x\(\d+, \d+, \d+\).*Invocations (\d+)", line)
    if m:
        name, calls = m.group(1), int(m.group(2))
        continue
    m = re.match(r"^\s+gpu__time_duration\.sum\s+(\S+)\s+([\d.,]+)\s+([\d.,]+)\s+([\d.,]+)", line)
    if m and name:
        unit, mean = m.group(1), float(m.group(4).replace(",", ""))  # min, max, average
        mean_us = mean * {"ns": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3, "nsecond": 1e-3}.get(unit, 1.0)
        short = re.sub(r"\(.*", "", name)[:70]
        rows.append((short, calls, mean_us, calls * mean_us / 1e3))
        name = None
total = sum(r[3] for r in rows)
print(f"{'kernel':70s} {'calls':>6s} {'mean us':>9s} {'total ms':>9s} {'share':>6s}")
for r in sorted(rows, key=lambda r: -r[3])[: args.top]:
    print(f"{r[0]:70s} {r[1]:6d} {r[2]:9.2f} {r[3]:9.3f} {100 * r[3] / total:5.1f}%")
print(f"{'all kernels':70s} {sum(r[1] for r in rows):6d} {'':9s} {total:9.3f}")
