#!/usr/bin/env bash
# Session 40, call C (trimmed to ~150 s as s40d), any card: the tensor-core decode kernel's ring for 8-bit caches. m/ = main's bench (s38b carry,
# the same decode kernels as main); n/ = branch s40-8bit-stages (6 stages for 8-bit where they fit 160 KiB, 5 tiles
# in flight); w/ = n plus 4 stages for bf16 where they fit 160 KiB. Session 40's sweep fit: the 8-bit kernels stream
# 9% slower per byte than a plain read of their bytes (bf16: as fast), their fixed cost is bf16's.
# 1. n's decode tests; 2. m / n / w interleaved on issue 17's rows, then the B = 1 sweep.
# Carry ["build-carry/s40c", "build-carry/s38b", ".gpucall/s40c.sh"].
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w40c
LIM=${LIM:-200}; over() { [ $((SECONDS - t0)) -gt "$LIM" ]; }; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s40c.tgz.part" -C "$W" . && mv "$O/s40c.tgz.part" "$O/s40c.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
tar xzf build-carry/s40c/bins.tgz && tar xzf build-carry/s38b/bins.tgz || { echo "untar failed"; exit 1; }
timeout 90 n/attn_gpu_tests --gtest_filter='Decode*:KVCache*:GenerateCacheDtype*' > "$W/tests.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$W/tests.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|Failure' "$W/tests.log" | head -10; pack
rows=(); for c in bf16 int8 fp8; do rows+=(--shape 1,12,12,64,32768,$c --shape 32,12,12,64,4096,$c --shape 1,32,8,128,32768,$c); done
rows+=(--shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16)
for round in 1 2; do for v in m n w; do
  timeout 60 $v/bench_decode_attention "${rows[@]}" 2>&1 | sed "s/^{/{\"v\": \"$v\", \"round\": $round, /" >> "$W/rows.jsonl"
done; done; echo "rows done ($((SECONDS - t0)) s)"; pack
over && exit 0
sw=(); for c in 640 2048 8192 32768; do for d in bf16 int8 fp8; do sw+=(--shape 1,12,12,64,$c,$d); done; done
for v in m n w; do timeout 60 $v/bench_decode_attention "${sw[@]}" 2>&1 | sed "s/^{/{\"v\": \"$v\", /" >> "$W/sweep.jsonl"; done
echo "sweep done ($((SECONDS - t0)) s)"
over && exit 0
# The plan's knobs on m and n (B = 1 MHA, bf16 and int8, ctx 8192 and 32768): warps per block, blocks per SM, where
# the split merge runs (0: the combine pass; large: the last block).
kn=(--shape 1,12,12,64,8192,bf16 --shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,8192,int8 --shape 1,12,12,64,32768,int8)
for f in "" "--mma-warps 4" "--mma-warps 8" "--merge-bytes 0" "--merge-bytes 100000000"; do
  for v in m n; do timeout 30 $v/bench_decode_attention $f "${kn[@]}" 2>&1 | sed "s/^{/{\"v\": \"$v\", \"flags\": \"$f\", /" >> "$W/knobs.jsonl"; done
done; echo "knobs done ($((SECONDS - t0)) s)"
