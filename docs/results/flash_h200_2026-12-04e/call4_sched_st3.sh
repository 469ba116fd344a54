#!/usr/bin/env bash
# Session 5, call 4: the forward scheduled by tile length (sched) and the backward's Q/dO ring at
# 3 stages (st3) vs 2 (sched); full GPU tests on sched, flash tests on st3; cuDNN incl. GQA.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p sched st3 && tar xzf build-carry/sched/bins.tgz -C sched && tar xzf build-carry/st3/bins.tgz -C st3
t() { echo "[$SECONDS s] $*"; }
t tests
sched/attn_gpu_tests > $W/tests_sched.log 2>&1; echo "sched rc=$?"
grep -E "^\[  PASSED|^\[  FAILED|Failure" $W/tests_sched.log | head -20
st3/attn_gpu_tests --gtest_filter='Flash*' > $W/tests_st3.log 2>&1; echo "st3 rc=$?"
grep -E "^\[  PASSED|^\[  FAILED|Failure" $W/tests_st3.log | head -20
t shapes
for who in sched st3 sched st3; do
  echo "== $who"
  $who/bench_flash_attention 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D"'
  $who/bench_flash_attention --full --shape 2,16,16,8192,128 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $0, "full"}'
  $who/bench_flash_attention --shape 4,32,8,4096,128 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $0, "gqa"}'
done | tee $W/shapes.txt
python3 scripts/bench_sdpa.py --backends cudnn --shapes 16,12,1024,64 4,12,4096,64 1,12,16384,64 8,16,2048,128 2,16,8192,128 4,32,4096,128,8 2>&1 | tee $W/sdpa.txt
python3 scripts/bench_sdpa.py --backends cudnn,flash --full --shapes 2,16,8192,128 2>&1 | tail -2 | tee -a $W/sdpa.txt
t variants
V=1,12,12,16384,64
for f in "" "--alibi" "--softcap 30" "--alibi --softcap 30" "--window 1024"; do
  echo "sched $f: $(sched/bench_flash_attention --reps 10 --shape $V $f 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D"')"
done | tee $W/variants.txt
t done
tar czf "$O/w.tgz" -C "$W" .
