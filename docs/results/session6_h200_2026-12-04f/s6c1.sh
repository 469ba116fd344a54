#!/usr/bin/env bash
# Session 6, call 1: the full GPU suite on main (2294924: with_mod_kind dispatch, never run on a GPU);
# the ScoreMod/dropout hoist branch (mh): flash tests + variants at T=16384 D=64 beside main;
# the fp8 and bf16 step profiles (issue 21) to decide what to fuse.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p h6 mh && tar xzf build-carry/h6/bins.tgz -C h6 && tar xzf build-carry/mh/bins.tgz -C mh
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
t0=$SECONDS
h6/attn_gpu_tests > $W/tests_h6.log 2>&1; echo "h6 suite rc=$? ($((SECONDS-t0)) s)"
grep -E "^\[  PASSED|^\[  FAILED|^\[  SKIPPED" $W/tests_h6.log | head -20; grep -B2 -A6 "Failure" $W/tests_h6.log | head -60
t0=$SECONDS
mh/attn_gpu_tests --gtest_filter='Flash*:*BackendVsCpu*:*VsCpu*' > $W/tests_mh.log 2>&1; echo "mh flash rc=$? ($((SECONDS-t0)) s)"
grep -E "^\[  PASSED|^\[  FAILED" $W/tests_mh.log | head -20; grep -B2 -A6 "Failure" $W/tests_mh.log | head -40
for who in h6 mh h6 mh; do
  for f in "" "--alibi" "--softcap 30" "--alibi --softcap 30" "--window 1024"; do
    echo "$who $f: $($who/bench_flash_attention --reps 10 --shape 1,12,12,16384,64 $f 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $2, $4, $6}')"
  done
  echo "$who 2,16,8192,128: $($who/bench_flash_attention --reps 10 --shape 2,16,16,8192,128 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $2, $4, $6}')"
done | tee $W/variants.txt
for P in bf16 fp8; do
  h6/attnlab bench -c configs/gpt2_124m.toml --attention.impl=\"flash\" --device.precision=\"$P\" --profile > $W/prof_$P.log 2>&1; echo "prof $P rc=$?"
  h6/attnlab bench -c configs/gpt2_124m.toml --attention.impl=\"flash\" --device.precision=\"$P\" > $W/bench_$P.log 2>&1; tail -1 $W/bench_$P.log
done
tar czf "$O/w.tgz" -C "$W" .
