#!/usr/bin/env bash
# Session 37 call E: call D (s37d.sh) cut to the device time left. Carry ["build-carry/s37d", ".gpucall/s37e.sh"]
# (m/ = main's kernels, l/ = branch s37-mha-lazy). 0. l's decode and cache tests; 1. bench_decode_attention m / l,
# two rounds; 2. the int8-cache step m / l if time is left. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w37e; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-200}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s37e.tgz.part" -C "$W" . && mv "$O/s37e.tgz.part" "$O/s37e.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
tar xzf build-carry/s37d/bins.tgz || { echo "untar failed"; exit 1; }
timeout 70 l/attn_gpu_tests --gtest_filter='Decode*:KVCache*' > "$W/tests_l.log" 2>&1
echo "l tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$W/tests_l.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|Failure' "$W/tests_l.log" | head -10
SH="--shape 1,12,12,64,32768,bf16 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 \
 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,bf16 --shape 32,12,12,64,4096,int8"
for r in 1 2; do for v in m l; do
  [ "$(left)" -gt 25 ] || break 2
  timeout 30 $v/bench_decode_attention $SH > "$W/bench_${v}_$r.jsonl" 2>&1
  python3 - "$W/bench_${v}_$r.jsonl" "$v" "$r" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try: o = json.loads(line)
    except Exception: continue
    if "B" in o: print(f"{sys.argv[2]} r{sys.argv[3]} {o['B']},{o['H']},{o['Hkv']},{o['D']},{o['ctx']},{o['cache']} {o['us']:8.2f} us {o['frac_copy']:.3f} of copy, read {o['read_us']}")
PY
done; done | tee "$W/bench.txt"; pack
gen() { local b=$1; shift; timeout 30 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-130; }
for v in m l; do [ "$(left)" -gt 30 ] || break; echo "== int8 step $v"; gen $v --kv-cache int8 --batches 1,8; done | tee "$W/step_int8.txt"
echo "total $((SECONDS - t0)) s"
