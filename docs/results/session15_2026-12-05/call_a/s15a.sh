#!/usr/bin/env bash
# Prepared in session 14 for the next one (carry ["build-carry/s15a", "build-carry/s14c", ".gpucall"]):
# branch s15-softcap-fixedmax (the soft-capped forward with the cap as every row's maximum) against main ab70729 (s14c):
# 1. the flash GPU tests on the branch (FlashVariants* has two new soft-capping cases); 2. plain / softcap 30 on
# issue 14's five shapes, old and new alternated twice; 3. memcheck + racecheck on the new cap-30 case.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w; mkdir -p "$W"; CAP=${CAP:-400}; t0=$SECONDS
left() { echo $((CAP - (SECONDS - t0))); }
pack() { tar czf "$O/s15a.tgz.part" -C "$W" . && mv "$O/s15a.tgz.part" "$O/s15a.tgz"; }
trap pack EXIT
N=new; OLD=old; mkdir -p $N $OLD && tar xzf build-carry/s15a/bins.tgz -C $N && tar xzf build-carry/s15m/bins.tgz -C $OLD || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
timeout 150 $N/attn_gpu_tests --gtest_filter='FlashVariants*:*FlashAttention*:*softcap*:*Softcap*' > "$W/tests.log" 2>&1; echo "tests exit $?"
grep -E "^\[  (PASSED|FAILED)|FAILED  \]|Failure" "$W/tests.log" | head -20; pack
SH="--shape 16,12,12,1024,64 --shape 4,12,12,4096,64 --shape 1,12,12,16384,64 --shape 8,16,16,2048,128 --shape 2,16,16,8192,128"
for rep in 1 2; do for who in $OLD $N; do for v in plain "softcap 30"; do
  a=""; [ "$v" = plain ] || a="--softcap 30"
  $who/bench_flash_attention --warmup-ms 1000 --reps 20 $SH $a 2>&1 | awk -v v="$who $v" '$1 ~ /^[0-9]+,/ {print v, $0}' | tr -s ' '
done; done; done | tee "$W/softcap.txt"; pack
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in memcheck racecheck; do
  [ "$(left)" -ge 40 ] || { echo "skipped $tool"; continue; }
  timeout $(( $(left) - 20 )) $CS --tool $tool $N/attn_gpu_tests --gtest_filter="FlashVariants/FlashVariants.MatchesFloat64Reference/softcap30_far_below_cap" > "$W/san_$tool.log" 2>&1
  echo "$tool exit $? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$W/san_$tool.log" | head -1) $(grep -cE '^\[       OK' "$W/san_$tool.log") ok"
done | tee "$W/sanitize.txt"; pack
echo "total $((SECONDS - t0)) s"
