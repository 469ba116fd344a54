#!/usr/bin/env bash
# Branch fp8xt (issue 21): fp8 QKV / fc / fc-proj cast their input once in the forward (x and
# x^T), the layer keeps x^T in place of the bf16 input; the backward's "fp8 cast x^T" remains
# for the attention projection only. Run from a repo root with build-carry/fp8xt/bins.tgz
# (stripped attn_gpu_tests, attnlab at the archive root).
# 1. GPU tests: Fp8*, *TrainStepGraph* (now with an fp8 case), *Backend*, Matmul*;
# 2. GPT-2 124M bench, flash, fp8 and bf16, plain (tokens/s) and --profile (categories, fp8 rows);
# 3. the same for GPT-2 350M (configs/gpt2_350m.toml).
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w_fp8xt; mkdir -p "$W" "$O"
B=fp8xt_bins; mkdir -p "$B" && tar xzf build-carry/fp8xt/bins.tgz -C "$B" || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
t0=$SECONDS
"$B"/attn_gpu_tests --gtest_filter='Fp8*:*TrainStepGraph*:*Backend*:Matmul*' > "$W/tests.log" 2>&1
echo "tests rc=$? ($((SECONDS-t0)) s)"
grep -E "^\[  PASSED|^\[  FAILED|^\[  SKIPPED" "$W/tests.log" | tail -60
grep -B2 -A10 "Failure" "$W/tests.log" | head -100
# the bench line, the category table, the fp8 rows of the op table
show() { grep '^bench:' "$1"; awk '/^category/{p=1} p&&/^$/{p=0} p' "$1"; grep -E '^op \(top|fp8' "$1"; }
for C in gpt2_124m gpt2_350m; do
  [ -f configs/$C.toml ] || { echo "no configs/$C.toml"; continue; }
  for P in fp8 bf16; do
    "$B"/attnlab bench -c configs/$C.toml --attention.impl=\"flash\" --device.precision=\"$P\" \
      > "$W/bench_${C}_$P.log" 2>&1; echo "== bench $C $P rc=$?"
    grep '^bench:' "$W/bench_${C}_$P.log" || tail -5 "$W/bench_${C}_$P.log"
    "$B"/attnlab bench -c configs/$C.toml --attention.impl=\"flash\" --device.precision=\"$P\" --profile \
      > "$W/prof_${C}_$P.log" 2>&1; echo "== profile $C $P rc=$?"
    show "$W/prof_${C}_$P.log"
  done
done
cp "$W"/*.log "$O"/ 2>/dev/null
tar czf "$O/w_fp8xt.tgz" -C "$W" .
