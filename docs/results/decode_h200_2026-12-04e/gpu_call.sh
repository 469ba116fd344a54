#!/usr/bin/env bash
# Session 5, call 9: the decode tensor-core plan at half a wave and at most one split per SM (cap) vs half a wave (final);
# decode and generation tests on cap.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p final cap && tar xzf build-carry/final/bins.tgz -C final && tar xzf build-carry/cap/bins.tgz -C cap
cap/attn_gpu_tests --gtest_filter='Decode*:KVCache*:Generate*:*Generator*' > $W/tests.log 2>&1; echo "rc=$?"
grep -E "^\[  PASSED|^\[  FAILED|Failure" $W/tests.log | head -20
S=""
for s in 1,12,12,64,32768,bf16 1,12,12,64,32768,fp8 1,12,4,64,32768,bf16 32,12,4,64,4096,bf16 1,12,4,64,32768,int8 1,12,4,64,32768,fp8 \
         1,32,8,128,32768,bf16 1,32,8,128,32768,fp8 1,32,8,128,32768,int8 1,12,1,64,32768,bf16 1,12,1,64,32768,fp8 1,12,1,64,32768,int8 \
         32,12,1,64,4096,fp8; do S="$S --shape $s"; done
for i in 1 2; do
  final/bench_decode_attention $S --reps 40 > $W/final_$i.jsonl 2>&1
  cap/bench_decode_attention $S --reps 40 > $W/cap_$i.jsonl 2>&1
done
python3 .gpucall/show_decode.py $W/final_1.jsonl $W/cap_1.jsonl $W/final_2.jsonl $W/cap_2.jsonl
tar czf "$O/w.tgz" -C "$W" .
