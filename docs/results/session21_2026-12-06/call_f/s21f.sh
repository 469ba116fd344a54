#!/usr/bin/env bash
# Session 21, call F (carry ["build-carry/s21d", ".gpucall/s21f.sh"]): which merge wins where. n = s21-all2 with the merge
# forced: --merge-bytes 1000000000 (the head group's last block merges) against 0 (the combine kernel), three rounds.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w21f; mkdir -p "$W"
for t in build-carry/s21d/*.tgz; do tar xzf "$t"; done
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
R="--shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 1,16,16,128,32768,bf16
   --shape 1,16,16,128,32768,fp8 --shape 1,12,12,64,640,bf16 --shape 1,12,12,64,640,fp8 --shape 1,12,4,64,640,bf16 --shape 2,12,12,64,4096,bf16
   --shape 4,12,12,64,2048,bf16 --shape 8,12,12,64,1024,bf16 --shape 16,12,12,64,2048,bf16 --shape 32,12,12,64,4096,bf16
   --shape 32,12,12,64,4096,fp8 --shape 8,16,16,128,4096,int8 --shape 1,12,4,64,32768,bf16 --shape 1,12,4,64,32768,int8
   --shape 1,32,8,128,32768,bf16 --shape 32,12,4,64,4096,bf16 --shape 8,32,8,128,4096,bf16 --shape 1,12,12,64,8192,bf16"
row() { python3 -c "import json,sys; [print('$1', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us']) for d in map(json.loads, sys.stdin)]"; }
for r in 1 2 3; do
  for v in "n --merge-bytes 1000000000" "n --merge-bytes 0" "n"; do
    set -- $v; b=$1; shift
    timeout 40 $b/bench_decode_attention "$@" $R 2>/dev/null | grep '"decode"' | row "$(echo $v | tr ' ' '_')"
  done
done > "$W/rows.txt"
tar czf "$O/s21f.tgz" -C "$W" .
