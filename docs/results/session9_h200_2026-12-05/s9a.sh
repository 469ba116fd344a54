#!/usr/bin/env bash
# Session 9, call 1. Carry ["build-carry/s9b", "build-carry/s9", "build-carry/s8", ".gpucall"].
# s8 = 9040415 + fixes; s9 = s8 + the fp8 casts' fast tanh; s9b = s9 + the fp8 LM head.
# 1. s9b's whole GPU suite; 2. fp8 s9b / s9 / s8 and bf16 at 124M and 350M, alternated, twice;
# 3. profiles at 350M (fp8 s9b, bf16) and 124M (fp8 s9b).
set -uo pipefail
O=${OUT:-/tmp/out}; mkdir -p "$O"
for v in s9b s9 s8; do mkdir -p ${v}bins && tar xzf build-carry/$v/bins.tgz -C ${v}bins || { echo "untar $v failed"; exit 1; }; done
echo "s9b $(cat build-carry/s9b/COMMIT) s9 $(cat build-carry/s9/COMMIT) s8 $(cat build-carry/s8/COMMIT)"; t0=$SECONDS
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$O/gpu.txt"
timeout 250 s9bbins/attn_gpu_tests > "$O/suite.log" 2>&1; echo "suite rc=$? ($((SECONDS-t0)) s)"
grep -E "^\[  PASSED|^\[  FAILED|^\[  SKIPPED|FastTanh:" "$O/suite.log" | head -20
grep -B2 -A8 "Failure" "$O/suite.log" | head -50
gzip -f "$O/suite.log"
bench() { timeout 45 "$1"/attnlab bench -c configs/$2.toml --attention.impl=\"flash\" --device.precision=\"$3\" ${4:-} 2>&1; }
for rep in 1 2; do for C in gpt2_124m gpt2_350m; do for V in "s9b fp8" "s9 fp8" "s8 fp8" "s9b bf16"; do set -- $V
  [ $((SECONDS-t0)) -gt 500 ] && { echo "out of time"; break 3; }
  echo "$C $2 $1 rep $rep: $(bench ${1}bins $C $2 | grep -E '^bench:|error') ($((SECONDS-t0)) s)"
done; done; done | tee "$O/bench.txt"
for run in "gpt2_350m fp8" "gpt2_350m bf16" "gpt2_124m fp8"; do set -- $run
  [ $((SECONDS-t0)) -gt 540 ] && break
  bench s9bbins $1 $2 --profile > "$O/prof_$1_$2.log"
  echo "profile $1 $2 ($((SECONDS-t0)) s)"; sed -n '/^category/,$p' "$O/prof_$1_$2.log" | head -34
done
