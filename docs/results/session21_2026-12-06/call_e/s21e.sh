#!/usr/bin/env bash
# Session 21, call E (carry as call D): the two rows where n (s21-all2) was not ahead of main in call D, with the
# merge forced either way: --merge-bytes 1000000000 (the last block merges), 0 (the combine kernel); alternated.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w21e; mkdir -p "$W"
tar xzf build-carry/s20c/bins.tgz && for t in build-carry/s21d/*.tgz; do tar xzf "$t"; done
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
R="--shape 1,16,16,128,32768,bf16 --shape 8,12,12,64,1024,bf16 --shape 1,16,16,128,32768,fp8 --shape 1,12,12,64,640,bf16 --shape 16,12,12,64,2048,bf16"
row() { python3 -c "import json,sys; [print('$1', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us']) for d in map(json.loads, sys.stdin)]"; }
for r in 1 2 3 4; do
  for v in "f" "n" "n --merge-bytes 1000000000" "n --merge-bytes 0"; do
    set -- $v; b=$1; shift
    timeout 30 $b/bench_decode_attention --reps 100 "$@" $R 2>/dev/null | grep '"decode"' | row "$(echo $v | tr ' ' '_')"
  done
done | tee "$W/rows.txt"
tar czf "$O/s21e.tgz" -C "$W" .
