#!/usr/bin/env bash
# Session 18, call K (carry ["build-carry/s18g", "build-carry/s18m", ".gpucall"]): call H's comparison on an H200, cut to the
# device time left: bench_decode_attention main (m/) / s18-interleave (n/) alternated m n n m ..., then bench-generate twice.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w18k; mkdir -p "$W" n m; t0=$SECONDS
tar xzf build-carry/s18g/bins.tgz -C n && tar xzf build-carry/s18m/bins.tgz -C m || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
SH=""; for s in 1,12,12,64,32768,bf16 1,12,12,64,32768,fp8 1,12,12,64,32768,int8 32,12,12,64,4096,bf16 32,12,12,64,4096,fp8 \
  32,12,12,64,4096,int8 1,16,16,128,32768,bf16 1,16,16,128,32768,fp8 1,16,16,128,32768,int8 8,16,16,128,4096,int8 32,8,8,128,2048,fp8 \
  1,12,4,64,32768,bf16 32,12,4,64,4096,bf16 1,32,8,128,32768,fp8 1,12,12,64,640,bf16 1,12,12,64,640,int8; do SH="$SH --shape $s"; done
for b in m n n m m n n m m n n m; do timeout 60 $b/bench_decode_attention $SH 2>>"$W/err.txt" | python3 -c "
import json,sys
for l in sys.stdin:
  if not l.startswith('{'): continue
  d=json.loads(l)
  if d.get('what')=='decode': print('$b', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d.get('us'),d.get('read_us'),d.get('frac_copy'))
"; done > "$W/decode.txt"; wc -l < "$W/decode.txt"
for r in 1 2; do for b in n m; do for c in bf16 int8; do echo "$b $c $(timeout 60 ./$b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache $c --no-baseline --batches 1,8 --out runs/g 2>&1 | grep -o '[0-9.]* ms/step' | tr '\n' ' ')"; done; done; done | tee "$W/generate.txt"
echo "total $((SECONDS - t0)) s"
