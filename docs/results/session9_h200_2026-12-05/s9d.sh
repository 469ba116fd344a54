#!/usr/bin/env bash
# Session 9, last call. Carry ["build-carry/s9d", "build-carry/s9c", "build-carry/qdata", ".gpucall"].
# s9d = s9c + the fc's bias in the GELU casts. 1. s9d's suite; 2. fp8 s9d / s9c and bf16 at 350M
# and 124M, twice; 3. issue 21's quality runs on s9d (124M, 6-layer); 4. profiles if time is left.
set -uo pipefail
O=${OUT:-/tmp/out}; mkdir -p "$O"
for v in s9d s9c; do mkdir -p ${v}bins && tar xzf build-carry/$v/bins.tgz -C ${v}bins || { echo "untar $v failed"; exit 1; }; done
echo "s9d $(cat build-carry/s9d/COMMIT) s9c $(cat build-carry/s9c/COMMIT)"; t0=$SECONDS
timeout 200 s9dbins/attn_gpu_tests > "$O/suite.log" 2>&1; echo "suite rc=$? ($((SECONDS-t0)) s)"
grep -E "^\[  PASSED|^\[  FAILED|^\[  SKIPPED" "$O/suite.log" | head -20
grep -B2 -A8 "Failure" "$O/suite.log" | head -40
gzip -f "$O/suite.log"
bench() { timeout 45 "$1"/attnlab bench -c configs/$2.toml --attention.impl=\"flash\" --device.precision=\"$3\" ${4:-} 2>&1; }
for rep in 1 2; do for C in gpt2_350m gpt2_124m; do for V in "s9d fp8" "s9c fp8" "s9d bf16"; do set -- $V
  [ $((SECONDS-t0)) -gt 300 ] && { echo "out of time"; break 3; }
  echo "$C $2 $1 rep $rep: $(bench ${1}bins $C $2 | grep -E '^bench:|error') ($((SECONDS-t0)) s)"
done; done; done | tee "$O/bench.txt"
for m in 124m sh; do [ $((SECONDS-t0)) -lt 330 ] && MODEL=$m bash .gpucall/s9qd.sh  # (s9qd.sh: s9q.sh with s9c replaced by s9d) | grep -E "largest|nan|^[0-9a-f]{7}"; done
for run in "gpt2_350m fp8" "gpt2_124m bf16"; do set -- $run
  [ $((SECONDS-t0)) -gt 350 ] && break
  bench s9dbins $1 $2 --profile > "$O/prof_$1_$2.log"; echo "profile $1 $2 ($((SECONDS-t0)) s)"
done
echo "total $((SECONDS-t0)) s"
