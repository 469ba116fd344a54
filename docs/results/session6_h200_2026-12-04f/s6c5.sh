#!/usr/bin/env bash
# Session 6, call 5: v5 (the forward's running maximum kept until it lags by 2^8: O rescale
# skipped) against v4 (main before it): flash tests on v5; issue 14's seven shapes, alternated
# v4/v5, each series after 1000 ms of warm-up (power-limited steady state); variants on v5.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p v4 v5 && tar xzf build-carry/v4/bins.tgz -C v4 && tar xzf build-carry/v5/bins.tgz -C v5
t0=$SECONDS
v5/attn_gpu_tests --gtest_filter='Flash*:*BackendVsCpu*:*VsCpu*' > $W/tests_v5.log 2>&1; echo "v5 flash tests rc=$? ($((SECONDS-t0)) s)"
grep -E "^\[  PASSED|^\[  FAILED" $W/tests_v5.log | head; grep -B2 -A6 "Failure" $W/tests_v5.log | head -30
WU=1000
for sh in "16,12,12,1024,64" "4,12,12,4096,64" "1,12,12,16384,64" "8,16,16,2048,128" "2,16,16,8192,128" \
          "2,16,16,8192,128 --full" "4,32,8,4096,128"; do
  for who in v4 v5 v4 v5; do
    echo "$sh $who: $($who/bench_flash_attention --warmup-ms $WU --reps 20 --shape $sh 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $2, $4, $6}')"
  done
done | tee $W/ab.txt
for f in "" "--alibi" "--softcap 30" "--alibi --softcap 30" "--window 1024"; do
  echo "v5 16384 $f: $(v5/bench_flash_attention --warmup-ms $WU --reps 20 --shape 1,12,12,16384,64 $f 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $2, $4, $6}')"
done | tee $W/variants.txt
tar czf "$O/w.tgz" -C "$W" .
