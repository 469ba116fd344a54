#!/usr/bin/env bash
# Session 15, call D (carry ["build-carry/s15m", ".gpucall"]): decode attention MHA, the plan and kernel sweep
# at B=1 ctx 32768 and B=32 ctx 4096 for bf16 / fp8 / int8 caches (main ce3b67e): the CUDA-core kernel (default)
# against the tensor-core kernel for MHA at 4 / 8 warps and several split plans.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/wd; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s15d.tgz.part" -C "$W" . && mv "$O/s15d.tgz.part" "$O/s15d.tgz"; }
trap pack EXIT
mkdir -p m && tar xzf build-carry/s15m/bins.tgz -C m || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
SH=""; for s in 1,12,12,64,32768,bf16 1,12,12,64,32768,fp8 1,12,12,64,32768,int8 32,12,12,64,4096,bf16 32,12,12,64,4096,fp8 32,12,12,64,4096,int8 1,16,16,128,32768,bf16 1,16,16,128,32768,fp8; do SH="$SH --shape $s"; done
run() { local tag="$1"; shift; timeout 60 m/bench_decode_attention $SH "$@" 2>>"$W/err.txt" | python3 -c "
import json,sys
for l in sys.stdin:
  if not l.startswith('{'): continue
  d=json.loads(l)
  if d.get('what')=='decode': print('$tag', d['B'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d.get('read_us'),d.get('frac_copy'))
"; }
for rep in 1 2; do
  run default
  run cc --cuda-cores
  for w in 4 8; do
    run tc${w} --mha-tensor-cores --mma-warps $w
    run tc${w}_w1 --mha-tensor-cores --mma-warps $w --waves 1
    run tc${w}_b2 --mha-tensor-cores --mma-warps $w --blocks-per-sm 2
  done
  run tc4_b3 --mha-tensor-cores --mma-warps 4 --blocks-per-sm 3
  run tc4_b4 --mha-tensor-cores --mma-warps 4 --blocks-per-sm 4
  run cc_w2 --cuda-cores --waves 2
  [ $((SECONDS - t0)) -lt 250 ] || break
done | tee "$W/sweep.txt"
echo "total $((SECONDS - t0)) s"
