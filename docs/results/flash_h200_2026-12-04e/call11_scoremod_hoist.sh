#!/usr/bin/env bash
# Session 5, call 11: the score modification built once per tile / head instead of per key block
# (mh) vs final; flash tests on mh; variants at T=16384 D=64 and 2,16,8192,128.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p final mh && tar xzf build-carry/final/bins.tgz -C final && tar xzf build-carry/mh/bins.tgz -C mh
mh/attn_gpu_tests --gtest_filter='Flash*:*BackendVsCpu*' > $W/tests.log 2>&1; echo "rc=$?"
grep -E "^\[  PASSED|^\[  FAILED|Failure" $W/tests.log | head -20
for who in final mh final mh; do
  for f in "" "--alibi" "--softcap 30" "--alibi --softcap 30" "--window 1024"; do
    echo "$who $f: $($who/bench_flash_attention --reps 10 --shape 1,12,12,16384,64 $f 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $2, $4, $6}')"
  done
done | tee $W/variants.txt
tar czf "$O/w.tgz" -C "$W" .
