#!/usr/bin/env bash
# Session 28, prepared and NOT RUN (too little device time was left). Build bench_decode_attention from main, strip it,
# pack it as f/bench_decode_attention into build-carry/s28a/bins.tgz, copy this to .gpucall/s28c.sh, carry
# ["build-carry/s28a", ".gpucall/s28c.sh"]. Main's decode kernels. The batch-32 step's attention shape (ctx 640, where the
# step's split kernel reads at 87% of copy) against the plan's knobs: blocks per SM (more splits), the tensor-core MHA
# kernel, the CUDA-core kernel; two rounds.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w28c; mkdir -p "$W"; t0=$SECONDS
tar xzf build-carry/s28a/bins.tgz f/bench_decode_attention || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
S="--shape 32,12,12,64,640,bf16 --shape 32,12,12,64,1024,bf16 --shape 16,12,12,64,640,bf16"
for r in 1 2; do
  for k in "" "--blocks-per-sm 8" "--blocks-per-sm 10" "--blocks-per-sm 15" "--mha-tensor-cores" "--cuda-cores"; do
    echo "== round $r knobs '$k'" >> "$W/decode.txt"
    timeout 30 f/bench_decode_attention $S $k >> "$W/decode.txt" 2>&1
  done
done
python3 - "$W/decode.txt" <<'PY'
import json, sys
knob = ""
for line in open(sys.argv[1]):
    if line.startswith("=="): knob = line.strip()[3:]; continue
    try: o = json.loads(line)
    except Exception: continue
    if o.get("what") == "decode": print(f"{knob:40s} B={o['B']:2d} ctx={o['ctx']:5d} {o['us']:8.2f} us {o['frac_copy']:.3f} of copy")
PY
echo "total $((SECONDS - t0)) s"
