#!/usr/bin/env bash
# Session 6, call 2: ScoreMod as raw = a v + b (one FFMA per ALiBi element, the cap in the exponent)
# in the forward, the sm90 backward and the dQ pass, and the forward's per-tile full-visibility range
# (v2) against main before it (mh): flash tests on v2, variants at T=16384 D=64 alternated, then
# the issue-14 table with cuDNN in the same call (gpu_check.sh flash on v2).
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p v2 mh && tar xzf build-carry/v2/bins.tgz -C v2 && tar xzf build-carry/mh/bins.tgz -C mh
t0=$SECONDS
v2/attn_gpu_tests --gtest_filter='Flash*:*BackendVsCpu*:*VsCpu*:*Variant*:*Alibi*:*Softcap*' > $W/tests_v2.log 2>&1; echo "v2 flash tests rc=$? ($((SECONDS-t0)) s)"
grep -E "^\[  PASSED|^\[  FAILED" $W/tests_v2.log | head -20; grep -B2 -A6 "Failure" $W/tests_v2.log | head -40
for who in mh v2 mh v2; do
  for f in "" "--alibi" "--softcap 30" "--alibi --softcap 30" "--window 1024" "--window 16384"; do
    echo "$who $f: $($who/bench_flash_attention --reps 10 --shape 1,12,12,16384,64 $f 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $2, $4, $6}')"
  done
  for f in "" "--alibi" "--softcap 30"; do
    echo "$who D128 $f: $($who/bench_flash_attention --reps 10 --shape 2,16,16,8192,128 $f 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $2, $4, $6}')"
  done
done | tee $W/variants.txt
BUILD=v2 OUT=$W/flash bash scripts/gpu_check.sh flash > $W/flash.log 2>&1; echo "gpu_check flash rc=$?"
grep -E "^(attnlab|cudnn|flash) |^[0-9]+,|non-causal" $W/flash.log | head -40
tar czf "$O/w.tgz" -C "$W" .
