#!/usr/bin/env bash
# Session 21, call D (carry ["build-carry/s20c", "build-carry/s21d", ".gpucall/s21d.sh"]): f = main 830a808; mp = call C's
# candidate (s21-all: batched merge of 8, conflict-free O rows, 8-bit MHA pair step; bench only); n = s21-all2 = mp + merge
# batches sized to the splits left + the last block merges only when that is one batch a thread (else the combine kernel).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w21d; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-400}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s21d.tgz.part" -C "$W" . && mv "$O/s21d.tgz.part" "$O/s21d.tgz"; }
trap pack EXIT
tar xzf build-carry/s20c/bins.tgz || { echo "untar failed"; exit 1; }
for t in build-carry/s21d/*.tgz; do tar xzf "$t" || { echo "untar $t failed"; exit 1; }; done
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
DT='Decode*:KVCache*:Generate*:PrefixLm*:KernelTrace*'
timeout 150 n/attn_gpu_tests --gtest_filter="$DT" > "$W/tests_n.log" 2>&1; summary "n tests" $? "$W/tests_n.log"
echo "($((SECONDS - t0)) s)"; pack
R="--shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,bf16
   --shape 32,12,12,64,4096,fp8 --shape 1,12,4,64,32768,bf16 --shape 1,12,4,64,32768,int8 --shape 1,12,1,64,32768,bf16
   --shape 1,12,1,64,32768,fp8 --shape 1,32,8,128,32768,bf16 --shape 1,32,8,128,32768,fp8 --shape 32,12,4,64,4096,bf16
   --shape 32,12,1,64,4096,bf16 --shape 1,16,16,128,32768,bf16 --shape 1,16,16,128,32768,fp8 --shape 1,12,12,64,640,bf16
   --shape 1,12,4,64,640,bf16 --shape 32,16,16,128,2048,int8 --shape 8,16,16,128,4096,int8 --shape 8,12,12,64,1024,bf16"
row() { python3 -c "import json,sys; [print('$1', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d['read_us']) for d in map(json.loads, sys.stdin)]"; }
for b in f mp n n mp f mp f n; do timeout 40 $b/bench_decode_attention $R 2>/dev/null | grep '"decode"' | row $b; done | tee "$W/rows.txt"
echo "($((SECONDS - t0)) s)"; pack
G="--shape 1,12,1,64,32768,bf16 --shape 1,12,1,64,32768,fp8 --shape 1,12,4,64,32768,bf16 --shape 1,12,4,64,32768,int8
   --shape 1,32,8,128,32768,bf16 --shape 1,32,8,128,32768,fp8 --shape 32,12,4,64,4096,bf16 --shape 32,12,1,64,4096,bf16
   --shape 1,12,4,64,640,bf16 --shape 8,32,8,128,4096,bf16"
for k in "" "--mma-warps 8" "" "--mma-warps 8"; do [ "$(left)" -ge 150 ] || break
  echo "== $k"; timeout 40 n/bench_decode_attention $k $G 2>/dev/null | grep '"decode"' | row n
done | tee "$W/knobs.txt"; pack
for b in f n f n; do [ "$(left)" -ge 100 ] || break
  timeout 40 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8 --out runs/g_$b 2>&1 | grep -E "^cached" | sed "s/^/$b /" | cut -c1-110
done | tee "$W/generate.txt"; pack
if [ "$(left)" -ge 80 ]; then timeout $(( $(left) - 15 )) n/attn_gpu_tests --gtest_filter="-$DT:Flash*:Cases/Flash*:FlashVariants/*:DataParallel*:Nccl*" > "$W/tests_rest.log" 2>&1; summary "n other tests" $? "$W/tests_rest.log"; fi
echo "total $((SECONDS - t0)) s"
