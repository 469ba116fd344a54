#!/usr/bin/env bash
# Session 34, call J (carry ["build-carry/s34j", ".gpucall/s34j.sh"]): r/bench_decode_attention of main + the bulk-copy
# read floor (read_bulk_us: 16 KB cp.async.bulk chunks, 8 stages a block, a block an SM) beside the plain read (read_us),
# at issue 17's rows. Any GPU.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w34j; mkdir -p "$W"
tar xzf build-carry/s34j/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
timeout 60 r/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 1,12,12,64,32768,fp8 \
  --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 > "$W/decode.jsonl" 2>&1
python3 - "$W/decode.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try: o = json.loads(line)
    except Exception: print(line.strip()[:200]); continue
    if "B" in o:
        f = lambda us: o['bytes'] / (us * 1e-6) / 1e9 / o['copy_gbps']
        print(f"B={o['B']:2d} H={o['H']:2d}/{o['Hkv']:2d} D={o['D']:3d} ctx={o['ctx']:5d} {o['cache']:5s} {o['us']:7.2f} us ({o['frac_copy']:.3f} of copy)"
              f" | read {o['read_us']:6.2f} us ({f(o['read_us']):.3f}) | bulk {o['read_bulk_us']:6.2f} us ({f(o['read_bulk_us']):.3f})")
PY
