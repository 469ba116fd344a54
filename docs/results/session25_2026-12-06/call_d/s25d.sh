#!/usr/bin/env bash
# Session 25, call D: m/ main 1b08bff (0a008e1's code), c/ branch s25-bwd-smem (the bf16 backward's shared memory
# without slack, static barriers or, for the plain kinds, key ranges: D = 64 plain kinds fit the 164 KB carveout,
# L1 60 -> 92 KB). Tests of c/, the sanitizers, then bench_flash_attention m/ against c/ (alternated). Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w25d; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-570}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s25d.tgz.part" -C "$W" . && mv "$O/s25d.tgz.part" "$O/s25d.tgz"; }
trap pack EXIT
tar xzf build-carry/s25d/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
timeout 200 c/attn_gpu_tests --gtest_filter='FlashVariants*:FlashAttention*' > "$W/t_flash.log" 2>&1
echo "flash tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_flash.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
grep -E 'FAILED' "$W/t_flash.log" | head -20
SAN="--reps 1 --warmup-ms 0"
for tool in racecheck memcheck; do
  for args in "--shape 2,4,2,777,64" "--shape 1,4,2,1025,128 --full" "--shape 1,4,2,1025,64 --window 100 --det"; do
    timeout 60 compute-sanitizer --tool $tool --error-exitcode 1 c/bench_flash_attention $args $SAN > "$W/san.log" 2>&1
    rc=$?; echo "$tool [$args] exit $rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$W/san.log" | tr '\n' ' ')" | tee -a "$W/sanitize.txt"
    [ $rc -ne 0 ] && cp "$W/san.log" "$W/san_${tool}_fail.log"
  done
done
echo "sanitizers ($((SECONDS - t0)) s)"; pack
B="--warmup-ms 800"
{
for r in 1 2; do
  for who in m c; do
    echo "== round $r $who issue14"; timeout 60 $who/bench_flash_attention $B
    echo "== round $r $who full D=64 and window"; timeout 30 $who/bench_flash_attention $B --full --shape 16,12,12,1024,64 --shape 4,12,12,4096,64
    echo "== round $r $who window1024"; timeout 30 $who/bench_flash_attention $B --shape 1,12,12,16384,64 --window 1024
  done
done
} > "$W/flash.txt" 2>&1
echo "bench ($((SECONDS - t0)) s)"; pack
echo "total $((SECONDS - t0)) s"
