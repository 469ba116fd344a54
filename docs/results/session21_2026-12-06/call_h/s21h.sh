#!/usr/bin/env bash
# Session 21, call H (carry ["build-carry/s20c", "build-carry/s21g", "build-carry/s21h", ".gpucall/s21h.sh"]): the B = 8
# MHA row where g lost 1% to main in call G. g2 = g with the merge's shared-memory fold serial again; g3 = g with all of
# merge_splits as main's (bench only).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w21h; mkdir -p "$W"
tar xzf build-carry/s20c/bins.tgz && tar xzf build-carry/s21g/g.tgz && tar xzf build-carry/s21h/g23.tgz
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
R="--shape 8,12,12,64,1024,bf16 --shape 16,12,12,64,2048,bf16 --shape 4,12,12,64,2048,bf16 --shape 1,12,12,64,32768,bf16
   --shape 1,12,12,64,640,bf16 --shape 1,12,1,64,32768,bf16 --shape 8,16,16,128,4096,int8 --shape 32,12,12,64,4096,bf16 --shape 8,12,12,64,640,bf16"
row() { python3 -c "import json,sys; [print('$1', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us']) for d in map(json.loads, sys.stdin)]"; }
for b in f g g2 g3 g3 g2 g f f g g2 g3 g g3 f g2; do timeout 30 $b/bench_decode_attention --reps 100 $R 2>/dev/null | grep '"decode"' | row $b; done > "$W/rows.txt"
tar czf "$O/s21h.tgz" -C "$W" .
