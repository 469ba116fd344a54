#!/usr/bin/env bash
# Session 8, first call when a machine came late: the GPU suite of s7integ (build-carry/s7/COMMIT),
# then issue 21's fp8 bench (s7c_fp8.sh's runs, the profile), all in one call.
# Carry ["build-carry/s7", "build-carry/s7old", "build-carry/fin", ".gpucall"].
set -uo pipefail
O=${OUT:-/tmp/out}; mkdir -p "$O"
B=s7bins; F=finbins; D=s7oldbins; mkdir -p "$B" "$F" "$D"
tar xzf build-carry/s7/bins.tgz -C "$B" && tar xzf build-carry/fin/bins.tgz -C "$F" && \
  tar xzf build-carry/s7old/bins.tgz -C "$D" || { echo "untar failed"; exit 1; }
cat build-carry/s7/COMMIT
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$O/gpu.txt"
t0=$SECONDS
timeout 260 "$B"/attn_gpu_tests > "$O/suite.log" 2>&1; echo "suite rc=$? ($((SECONDS-t0)) s)"
grep -E "^\[  PASSED|^\[  FAILED|^\[  SKIPPED" "$O/suite.log" | head -30
grep -B2 -A8 "Failure" "$O/suite.log" | head -60
gzip -f "$O/suite.log"
bench() {  # size precision who
  local bin=$B; [ $3 = fin ] && bin=$F; [ $3 = s7old ] && bin=$D
  echo "$1 $2 $3: $(timeout 45 "$bin"/attnlab bench -c configs/$1.toml --attention.impl=\"flash\" --device.precision=\"$2\" 2>&1 | grep -E '^bench:|error')"
}
for C in gpt2_124m gpt2_350m; do
  for rep in 1 2; do
    for run in "fp8 s7" "fp8 s7old" "fp8 fin" "bf16 s7"; do
      [ $((SECONDS-t0)) -gt 520 ] && { echo "out of time before $C $run"; break 3; }
      echo "rep $rep $(bench $C $run) ($((SECONDS-t0)) s)"
    done
  done | tee -a "$O/fp8_bench.txt"
  if [ $C = gpt2_124m ] && [ $((SECONDS-t0)) -lt 420 ]; then
    timeout 45 "$B"/attnlab bench -c configs/gpt2_124m.toml --attention.impl=\"flash\" --device.precision=\"fp8\" --profile > "$O/prof_fp8_s7.log" 2>&1
    sed -n '/^category/,$p' "$O/prof_fp8_s7.log" | head -32
  fi
done
echo "total $((SECONDS-t0)) s"
