#!/usr/bin/env bash
# Prepared in session 35, not run: build m from main and y from branch s35-lm-no-ahead (stripped) into build-carry/s35c/bins.tgz; copy this file to .gpucall/s35c.sh.
# Session 35, call C (carry ["build-carry/s35c", ".gpucall/s35c.sh"]): the LM head without its L2 prefetch, built clean.
#   m/ attnlab: main (436d5f7's kernels); y/ attnlab, attn_gpu_tests: branch s35-lm-no-ahead (the multi-tile GEMV's
#   "tile after next into L2" deleted). Call B measured it through a runtime knob, whose loop cost B = 8 ~1.7%.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w35c; mkdir -p "$W"; t0=$SECONDS
tar xzf build-carry/s35c/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
timeout 90 y/attn_gpu_tests --gtest_filter='Gemv*:GenerateGreedy*:Generate*' > "$W/tests_y.log" 2>&1
echo "y tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_y.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|Failure' "$W/tests_y.log" | head -10
gen() { local b=$1; shift; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1,2,4,8 "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c20-110; }
for r in 1 2 3; do for v in m y; do echo "== round $r $v"; gen $v; done; done | tee "$W/step.txt"
echo "total $((SECONDS - t0)) s"
