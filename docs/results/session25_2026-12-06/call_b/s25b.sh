#!/usr/bin/env bash
# Session 25, call B: m/ main 0a008e1, b/ branch s25-bwd-masks (the general backward with masks only
# computes P^T while dP^T runs, as the plain kinds do). Tests of b/, the sanitizers on the changed
# kernels, then bench_flash_attention m/ against b/ (alternated) on masked shapes. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w25b; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-570}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s25b.tgz.part" -C "$W" . && mv "$O/s25b.tgz.part" "$O/s25b.tgz"; }
trap pack EXIT
tar xzf build-carry/s25b/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
# 1. the flash suites (variants: every mask alone and combined, bitwise general = plain, deterministic)
timeout 200 b/attn_gpu_tests --gtest_filter='FlashVariants*:FlashAttention*' > "$W/t_flash.log" 2>&1
echo "flash tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_flash.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
grep -E 'FAILED|differ' "$W/t_flash.log" | head -20
# 2. racecheck and memcheck on the changed (general, masks only) kernels, both head dims and modes
SAN="--reps 1 --warmup-ms 0"
for tool in racecheck memcheck; do
  for args in "--shape 1,4,2,1025,64 --window 100" "--shape 2,4,2,777,128 --doc-len 100" "--shape 1,4,2,1025,64 --window 100 --det"; do
    timeout 60 compute-sanitizer --tool $tool --error-exitcode 1 b/bench_flash_attention $args $SAN > "$W/san.log" 2>&1
    rc=$?; echo "$tool [$args] exit $rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$W/san.log" | tr '\n' ' ')" | tee -a "$W/sanitize.txt"
    [ $rc -ne 0 ] && cp "$W/san.log" "$W/san_${tool}_fail.log"
  done
done
echo "sanitizers ($((SECONDS - t0)) s)"; pack
# 3. speed: m/ and b/ alternated, two rounds
B="--warmup-ms 800"
{
for r in 1 2; do
  for who in m b; do
    echo "== round $r $who causal (plain kernel, same code)"; timeout 30 $who/bench_flash_attention $B --shape 1,12,12,16384,64
    echo "== round $r $who window1024"; timeout 30 $who/bench_flash_attention $B --shape 1,12,12,16384,64 --shape 2,16,16,8192,128 --window 1024
    echo "== round $r $who docs512"; timeout 30 $who/bench_flash_attention $B --shape 4,12,12,4096,64 --shape 2,16,16,8192,128 --doc-len 512
    echo "== round $r $who window=T (general kernel, causal visibility)"; timeout 30 $who/bench_flash_attention $B --shape 16,12,12,1024,64 --shape 4,12,12,4096,64 --window 4096
    echo "== round $r $who deterministic causal"; timeout 30 $who/bench_flash_attention $B --det --shape 4,12,12,4096,64 --shape 8,16,16,2048,128
  done
done
} > "$W/flash.txt" 2>&1
echo "bench ($((SECONDS - t0)) s)"; pack
echo "total $((SECONDS - t0)) s"
