#!/usr/bin/env bash
# Session 17, call E (carry ["build-carry/s18c", ".gpucall"]): the least of call C that fits ~60 s of device time:
# bench plain / --interleave, one rep each, four shapes, then (if time is left) the interleaved decode tests.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w18e; mkdir -p "$W"; t0=$SECONDS
mkdir -p v && tar xzf build-carry/s18c/bins.tgz -C v ./i/bench_decode_attention ./i/attn_gpu_tests || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
SH=""; for s in 1,12,12,64,32768,bf16 32,12,12,64,4096,bf16 1,12,4,64,32768,bf16 1,12,12,64,32768,int8; do SH="$SH --shape $s"; done
for m in plain inter; do a=""; [ $m = inter ] && a=--interleave
  timeout 40 v/i/bench_decode_attention --reps 20 $SH $a 2>>"$W/err.txt" | grep '^{"what": "decode"' | sed "s/^/$m /" | tee -a "$W/decode.txt"; done
ATTN_DECODE_INTERLEAVE=1 timeout 40 v/i/attn_gpu_tests --gtest_filter='Decode/DecodeAttention.*' > "$W/tests_interleave.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_interleave.log" | tr '\n' ' ')"
echo "total $((SECONDS - t0)) s"
