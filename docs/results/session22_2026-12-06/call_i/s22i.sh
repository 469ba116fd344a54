#!/usr/bin/env bash
# Session 22 call I (carry ["build-carry/s22i", "build-carry/s22a", ".gpucall/s22i.sh"]): s22-warps' final rule (f/: 8 warps at
# D = 128 when B Hkv <= SMs and 1024+ cache rows per SM) beside main (m/f/), alternated; then the decode kernel tests.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w22i; mkdir -p "$W"; t0=$SECONDS
tar xzf build-carry/s22i/bins.tgz && mkdir -p m && tar xzf build-carry/s22a/bins.tgz -C m || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
row() { python3 -c "import json,sys; [print(d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us']) for d in map(json.loads, sys.stdin)]"; }
R="--shape 1,32,8,128,32768,fp8 --shape 1,32,8,128,32768,int8 --shape 1,32,8,128,4096,fp8 --shape 8,32,8,128,4096,fp8 --shape 32,32,8,128,4096,int8 --shape 16,32,8,128,4096,int8 --shape 1,32,8,128,640,bf16"
for r in 1 2; do for b in m/f f; do echo "== $r $b"; timeout 30 $b/bench_decode_attention $R 2>/dev/null | grep '"decode"' | row; done; done | tee "$W/warps.txt"
timeout 120 f/attn_gpu_tests --gtest_filter='Decode*' > "$W/tests.log" 2>&1; echo "decode tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests.log" | tr '\n' ' ')"
echo "total $((SECONDS - t0)) s"
