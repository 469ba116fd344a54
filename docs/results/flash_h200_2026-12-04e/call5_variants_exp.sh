#!/usr/bin/env bash
# Session 5, call 5: the forward's ALiBi bias in the exponent (bounded row max) and soft-capping's
# cap in the exponent (max over tanh), vs c5d8988 (sched); flash tests on the new build.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p sched new && tar xzf build-carry/sched/bins.tgz -C sched && tar xzf build-carry/ax/bins.tgz -C new
t() { echo "[$SECONDS s] $*"; }
t tests
new/attn_gpu_tests --gtest_filter='Flash*:*BackendVsCpu*:VsCpu*:PrefixLm*' > $W/tests.log 2>&1; echo "rc=$?"
grep -E "^\[  PASSED|^\[  FAILED|Failure" $W/tests.log | head -30
t variants
for who in sched new sched new; do
  for V in 1,12,12,16384,64 2,16,16,8192,128; do
    for f in "" "--alibi" "--softcap 30" "--alibi --softcap 30" "--window 1024"; do
      echo "$who $V $f: $($who/bench_flash_attention --reps 10 --shape $V $f 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $2, $4, $6}')"
    done
  done
done | tee $W/variants.txt
t done
tar czf "$O/w.tgz" -C "$W" .
