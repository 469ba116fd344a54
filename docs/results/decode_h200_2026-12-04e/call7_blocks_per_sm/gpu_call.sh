#!/usr/bin/env bash
# Session 5, call 7: the decode tensor-core plan at 1 and 2 blocks per SM against the default (half a wave).
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p final && tar xzf build-carry/final/bins.tgz -C final
S=""
for s in 1,12,4,64,32768,bf16 32,12,4,64,4096,bf16 1,12,4,64,32768,int8 1,32,8,128,32768,bf16 1,32,8,128,32768,fp8 \
         1,12,1,64,32768,bf16 1,12,1,64,32768,fp8; do S="$S --shape $s"; done
for i in 1 2; do
  final/bench_decode_attention $S --reps 40 > $W/def_$i.jsonl 2>&1
  final/bench_decode_attention $S --reps 40 --blocks-per-sm 1 > $W/b1_$i.jsonl 2>&1
  final/bench_decode_attention $S --reps 40 --blocks-per-sm 2 > $W/b2_$i.jsonl 2>&1
done
python3 .gpucall/show_decode.py $W/def_1.jsonl $W/b1_1.jsonl $W/b2_1.jsonl $W/def_2.jsonl $W/b1_2.jsonl $W/b2_2.jsonl
tar czf "$O/w.tgz" -C "$W" .
