#!/usr/bin/env bash
# Session 9, call 3. Carry ["build-carry/s9c", "build-carry/s9b", ".gpucall"].
# s9c = s9b + test fixes + the attention projection's kept x^T + fast accumulation in the fp8
# forwards + balanced LM-head blocks. 1. s9c's fp8/classifier/matmul tests, then the whole suite;
# 2. fp8 s9c / s9b and bf16 at 124M and 350M, twice; 3. the 350M fp8 profile.
set -uo pipefail
O=${OUT:-/tmp/out}; mkdir -p "$O"
for v in s9c s9b; do mkdir -p ${v}bins && tar xzf build-carry/$v/bins.tgz -C ${v}bins || { echo "untar $v failed"; exit 1; }; done
echo "s9c $(cat build-carry/s9c/COMMIT) s9b $(cat build-carry/s9b/COMMIT)"; t0=$SECONDS
timeout 250 s9cbins/attn_gpu_tests > "$O/suite.log" 2>&1; echo "suite rc=$? ($((SECONDS-t0)) s)"
grep -E "^\[  PASSED|^\[  FAILED|^\[  SKIPPED" "$O/suite.log" | head -20
grep -B2 -A8 "Failure" "$O/suite.log" | head -50
grep -E "fp8 LM head|fp8 forward|fp8 dgrad|fp8 wgrad" "$O/suite.log" | head -30
gzip -f "$O/suite.log"
bench() { timeout 45 "$1"/attnlab bench -c configs/$2.toml --attention.impl=\"flash\" --device.precision=\"$3\" ${4:-} 2>&1; }
for rep in 1 2; do for C in gpt2_124m gpt2_350m; do for V in "s9c fp8" "s9b fp8" "s9c bf16"; do set -- $V
  [ $((SECONDS-t0)) -gt 480 ] && { echo "out of time"; break 3; }
  echo "$C $2 $1 rep $rep: $(bench ${1}bins $C $2 | grep -E '^bench:|error') ($((SECONDS-t0)) s)"
done; done; done | tee "$O/bench.txt"
[ $((SECONDS-t0)) -lt 520 ] && { bench s9cbins gpt2_350m fp8 --profile > "$O/prof_350m_fp8.log"; sed -n '/^op (top/,$p' "$O/prof_350m_fp8.log" | head -24; }
echo "total $((SECONDS-t0)) s"
