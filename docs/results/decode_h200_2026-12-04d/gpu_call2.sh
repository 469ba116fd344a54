#!/usr/bin/env bash
# Second call: the tensor-core kernel's splits for one block per SM (build-carry/final2) beside the
# first call's tree (build-carry/final); decode and generation GPU tests of the final tree.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p new prev && tar xzf build-carry/final2/bins.tgz -C new && tar xzf build-carry/final/bins.tgz -C prev
new/attn_gpu_tests --gtest_filter='Decode*:KVCache*:Generate*:*Generator*' > $W/gpu_tests2.log 2>&1; echo "tests rc=$?"
grep -E "^\[  PASSED|^\[  FAILED|Failure" $W/gpu_tests2.log | head -20
S=""
for s in 1,12,12,64,32768,bf16 32,12,12,64,4096,bf16 1,12,12,64,32768,fp8 32,12,12,64,4096,fp8 \
         1,12,12,64,32768,int8 32,12,12,64,4096,int8 1,12,4,64,32768,bf16 32,12,4,64,4096,bf16 \
         1,12,4,64,32768,int8 1,32,8,128,32768,bf16 1,32,8,128,32768,fp8 1,32,8,128,32768,int8 \
         1,12,1,64,32768,bf16 1,12,1,64,32768,fp8; do S="$S --shape $s"; done
prev/bench_decode_attention $S --reps 40 > $W/decode_prev2.jsonl 2>&1
new/bench_decode_attention $S --reps 40 > $W/decode_new2.jsonl 2>&1
python3 .gpucall/show_decode.py $W/decode_prev2.jsonl $W/decode_new2.jsonl
cp "$0" $W/ 2>/dev/null
tar czf "$O/w.tgz" -C "$W" .
