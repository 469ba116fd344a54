#!/usr/bin/env bash
# Branch fp8cast (issue 21, fp8 cast speed): new fp8 cast / cast+transpose / bias-sum kernels.
# Run from the repo root with build-carry/fp8cast/bins.tgz (stripped attn_gpu_tests, attnlab).
# 1. the fp8 and matmul GPU tests; 2. the 124M step, fp8 and bf16, --profile (the fp8 cast and
# bias-grad rows: ms per step and GB/s) and plain (tokens/s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w_fp8cast; mkdir -p "$W" "$O"
B=fp8cast_bins; mkdir -p "$B" && tar xzf build-carry/fp8cast/bins.tgz -C "$B" || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
t0=$SECONDS
"$B"/attn_gpu_tests --gtest_filter='Fp8*:Matmul*' > "$W/tests.log" 2>&1; echo "tests rc=$? ($((SECONDS-t0)) s)"
grep -E "^\[  PASSED|^\[  FAILED|^\[  SKIPPED|^\[       OK|^\[  FAILED" "$W/tests.log" | tail -60
grep -B2 -A8 "Failure" "$W/tests.log" | head -80
for P in fp8 bf16; do
  "$B"/attnlab bench -c configs/gpt2_124m.toml --attention.impl=\"flash\" --device.precision=\"$P\" --profile \
    > "$W/prof_$P.log" 2>&1; echo "== profile $P rc=$?"
  grep -iE "fp8|cast|bias" "$W/prof_$P.log" | head -40
  tail -45 "$W/prof_$P.log"
  "$B"/attnlab bench -c configs/gpt2_124m.toml --attention.impl=\"flash\" --device.precision=\"$P\" \
    > "$W/bench_$P.log" 2>&1; echo "== bench $P rc=$?"
  tail -8 "$W/bench_$P.log"
done
tar czf "$O/w_fp8cast.tgz" -C "$W" .
