#!/usr/bin/env bash
# Session 21, call G (carry ["build-carry/s20c", "build-carry/s21g", ".gpucall/s21g.sh"]): f = main 830a808; g = s21-all2's
# head (batched merge sized to the splits left, conflict-free O rows of the tensor-core kernel, the 8-bit MHA pair step at
# D = 64, the last block merges only with one partial a thread). Its GPU tests, then f and g rotated, then the decode step.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w21g; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-400}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s21g.tgz.part" -C "$W" . && mv "$O/s21g.tgz.part" "$O/s21g.tgz"; }
trap pack EXIT
tar xzf build-carry/s20c/bins.tgz && tar xzf build-carry/s21g/g.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
DT='Decode*:KVCache*:Generate*:PrefixLm*:KernelTrace*'
timeout 150 g/attn_gpu_tests --gtest_filter="$DT" > "$W/tests_g.log" 2>&1; summary "g tests" $? "$W/tests_g.log"
echo "($((SECONDS - t0)) s)"; pack
R="--shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,bf16
   --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 --shape 1,12,4,64,32768,int8 --shape 1,12,1,64,32768,bf16
   --shape 1,12,1,64,32768,fp8 --shape 1,32,8,128,32768,bf16 --shape 1,32,8,128,32768,fp8 --shape 32,12,4,64,4096,bf16
   --shape 32,12,1,64,4096,bf16 --shape 1,16,16,128,32768,bf16 --shape 1,16,16,128,32768,fp8 --shape 1,12,12,64,640,bf16
   --shape 1,12,4,64,640,bf16 --shape 32,16,16,128,2048,int8 --shape 8,16,16,128,4096,int8 --shape 8,12,12,64,1024,bf16
   --shape 2,12,12,64,4096,bf16 --shape 4,12,12,64,2048,bf16 --shape 16,12,12,64,2048,bf16 --shape 1,12,12,64,8192,bf16 --shape 8,32,8,128,4096,bf16"
row() { python3 -c "import json,sys; [print('$1', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d['read_us']) for d in map(json.loads, sys.stdin)]"; }
for b in f g g f g f f g; do timeout 40 $b/bench_decode_attention $R 2>/dev/null | grep '"decode"' | row $b; done > "$W/rows.txt"
echo "rows $(wc -l < "$W/rows.txt") ($((SECONDS - t0)) s)"; pack
timeout 40 python3 scripts/bench_decode_sdpa.py --shape 1,12,64,32768 --shape 32,12,64,4096 > "$W/decode_sdpa.txt" 2>&1
for b in f g f g; do [ "$(left)" -ge 100 ] || break
  timeout 50 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8,32 --out runs/g_$b 2>&1 | grep -E "^cached" | sed "s/^/$b /" | cut -c1-120
done | tee "$W/generate.txt"; pack
if [ "$(left)" -ge 80 ]; then timeout $(( $(left) - 15 )) g/attn_gpu_tests --gtest_filter="-$DT:Flash*:Cases/Flash*:FlashVariants/*:DataParallel*:Nccl*" > "$W/tests_rest.log" 2>&1; summary "g other tests" $? "$W/tests_rest.log"; fi
echo "total $((SECONDS - t0)) s"
