#!/usr/bin/env bash
# Session 6, call 7 (final, lean: little device time left): main's final binaries (fin, 4ae2d6f):
# the whole GPU suite; the fp8 and bf16 steps at GPT-2 124M and 350M shapes (B=16, T=1024) and the
# 124M fp8 profile; compute-sanitizer memcheck on the flash kernels. Logs straight into $OUT.
set -uo pipefail
O=${OUT:-/tmp/out}; mkdir -p "$O"
mkdir -p fin && tar xzf build-carry/fin/bins.tgz -C fin
t0=$SECONDS
fin/attn_gpu_tests > $O/tests_fin.log 2>&1; echo "fin suite rc=$? ($((SECONDS-t0)) s)"
grep -E "^\[  PASSED|^\[  FAILED|^\[  SKIPPED" $O/tests_fin.log | head -20; grep -B2 -A6 "Failure" $O/tests_fin.log | head -40
for c in gpt2_124m gpt2_350m; do
  for P in bf16 fp8; do
    echo "$c $P: $(fin/attnlab bench -c configs/$c.toml --attention.impl=\"flash\" --device.precision=\"$P\" 2>&1 | grep '^bench:')"
  done
done | tee $O/fp8_bench.txt
fin/attnlab bench -c configs/gpt2_124m.toml --attention.impl=\"flash\" --device.precision=\"fp8\" --profile > $O/prof_fp8.log 2>&1
grep -E "^fp8 |^matmul|^fp8_cast|^step" $O/prof_fp8.log | head -20
filter='Cases/FlashAttention.MatchesFloat64Reference/T77_H4_Hkv1_D128_causal:Cases/FlashAttention.MatchesFloat64Reference/T1025_H4_Hkv2_D64_full:FlashVariants/FlashVariants.MatchesFloat64Reference/window_alibi_softcap'
t0=$SECONDS
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 1 fin/attn_gpu_tests --gtest_filter="$filter" > $O/san_memcheck.log 2>&1
echo "memcheck exit $? ($((SECONDS-t0)) s): $(grep -E 'ERROR SUMMARY' $O/san_memcheck.log | tail -1) $(grep -cE '^\[       OK' $O/san_memcheck.log) tests OK"
