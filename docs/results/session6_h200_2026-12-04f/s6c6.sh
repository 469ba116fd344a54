#!/usr/bin/env bash
# Session 6, call 6 (final): main's final binaries (fin): the whole GPU suite; compute-sanitizer on
# the flash kernels (memcheck, racecheck, synccheck: T=77 MQA D=128 causal, T=1025 GQA D=64 full,
# window + ALiBi + softcap); the fp8 and bf16 steps at GPT-2 124M and 350M shapes (B=16, T=1024),
# alternated, with the 124M fp8 profile.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p fin && tar xzf build-carry/fin/bins.tgz -C fin
t0=$SECONDS
fin/attn_gpu_tests > $W/tests_fin.log 2>&1; echo "fin suite rc=$? ($((SECONDS-t0)) s)"
grep -E "^\[  PASSED|^\[  FAILED|^\[  SKIPPED" $W/tests_fin.log | head -20; grep -B2 -A6 "Failure" $W/tests_fin.log | head -40
for P in bf16 fp8 bf16 fp8; do
  for c in gpt2_124m gpt2_350m; do
    echo "$c $P: $(fin/attnlab bench -c configs/$c.toml --attention.impl=\"flash\" --device.precision=\"$P\" 2>&1 | grep '^bench:')"
  done
done | tee $W/fp8_bench.txt
fin/attnlab bench -c configs/gpt2_124m.toml --attention.impl=\"flash\" --device.precision=\"fp8\" --profile > $W/prof_fp8.log 2>&1
grep -E "^fp8|fp8_cast|^matmul|^step" $W/prof_fp8.log | head -20
filter='Cases/FlashAttention.MatchesFloat64Reference/T77_H4_Hkv1_D128_causal:Cases/FlashAttention.MatchesFloat64Reference/T1025_H4_Hkv2_D64_full:FlashVariants/FlashVariants.MatchesFloat64Reference/window_alibi_softcap'
for tool in memcheck synccheck racecheck; do
  t0=$SECONDS
  timeout 110 compute-sanitizer --tool $tool --error-exitcode 1 fin/attn_gpu_tests --gtest_filter="$filter" > $W/san_$tool.log 2>&1
  echo "$tool exit $? ($((SECONDS-t0)) s): $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $W/san_$tool.log | tail -1) $(grep -cE '^\[       OK' $W/san_$tool.log) tests OK"
done
tar czf "$O/w.tgz" -C "$W" .
