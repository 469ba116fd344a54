#!/usr/bin/env bash
# Session 25, call A: m/ main 0a008e1, n/ branch s25-bwd-persistent (the flash backward's persistent
# blocks for short key blocks, D = 64). Tests of n/, the sanitizers on the persistent kernel, then
# bench_flash_attention m/ against n/ (alternated) on issue 14's shapes and the window. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w25a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-570}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s25a.tgz.part" -C "$W" . && mv "$O/s25a.tgz.part" "$O/s25a.tgz"; }
trap pack EXIT
tar xzf build-carry/s25a/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
# 1. the new test, then the flash suites
timeout 150 n/attn_gpu_tests --gtest_filter='FlashVariantsPersistentBackward*' > "$W/t_persistent.log" 2>&1
echo "persistent test exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_persistent.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
grep -E 'bf16-pers|FAILED|differ' "$W/t_persistent.log" | head -40
# 2. racecheck and memcheck on the persistent kernel: 2 blocks, many key blocks each
SAN="--bwd-schedule persistent:2 --reps 1 --warmup-ms 0"
for tool in racecheck memcheck; do
  for args in "--shape 1,4,2,1025,64 --window 100 --softcap 3" "--shape 2,4,2,777,64" "--shape 1,4,1,1025,64 --full"; do
    timeout 60 compute-sanitizer --tool $tool --error-exitcode 1 n/bench_flash_attention $args $SAN > "$W/san.log" 2>&1
    rc=$?; echo "$tool [$args] exit $rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$W/san.log" | tr '\n' ' ')" | tee -a "$W/sanitize.txt"
    [ $rc -ne 0 ] && cp "$W/san.log" "$W/san_${tool}_fail.log"
  done
done
echo "sanitizers ($((SECONDS - t0)) s)"; pack
# 3. speed: m/ and n/ alternated, two rounds; n/ with each schedule forced on the short shapes
B="--warmup-ms 800"
{
for r in 1 2; do
  for who in m n; do
    echo "== round $r $who issue14"; timeout 60 $who/bench_flash_attention $B
    echo "== round $r $who window1024"; timeout 30 $who/bench_flash_attention $B --shape 1,12,12,16384,64 --window 1024
    echo "== round $r $who short"; timeout 30 $who/bench_flash_attention $B --shape 8,12,12,1024,64 --shape 32,12,12,512,64 --full --shape 16,12,12,1024,64
  done
done
echo "== n forced blocks (window, short)"; timeout 30 n/bench_flash_attention $B --bwd-schedule blocks --shape 1,12,12,16384,64 --window 1024
echo "== n forced persistent (long causal D=64)"; timeout 30 n/bench_flash_attention $B --bwd-schedule persistent --shape 4,12,12,4096,64 --shape 1,12,12,16384,64
} > "$W/flash.txt" 2>&1
echo "bench ($((SECONDS - t0)) s)"; pack
grep -E '^==|ours|causal|full' "$W/flash.txt" | head -5
# 4. the rest of the flash suites, while time remains
timeout $(( $(left) - 10 )) n/attn_gpu_tests --gtest_filter='FlashAttention*:FlashVariants*:-FlashVariantsPersistentBackward*' > "$W/t_flash.log" 2>&1
echo "flash tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_flash.log" | tr '\n' ' ')"
echo "total $((SECONDS - t0)) s"
