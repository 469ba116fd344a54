#!/usr/bin/env bash
# Session 22 call C (carry ["build-carry/s22c", "build-carry/s22a", ".gpucall/s22c.sh"]): branch s22-warps (f/: 8
# warps at D = 128 over 2048+ rows) beside main (m/f/, f03c9d0's machine code).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w22c; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s22c.tgz.part" -C "$W" . && mv "$O/s22c.tgz.part" "$O/s22c.tgz"; }
trap pack EXIT
tar xzf build-carry/s22c/bins.tgz && mkdir -p m && tar xzf build-carry/s22a/bins.tgz -C m || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
row() { python3 -c "import json,sys; [print(d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d['read_us']) for d in map(json.loads, sys.stdin)]"; }
# 1. the warp rule on D = 128 (and D = 64 controls): main, new default, forced 4, forced 8; alternated twice
R=""; for c in 640 1024 2048 4096 32768; do for d in bf16 fp8 int8; do R="$R --shape 1,32,8,128,$c,$d"; done; done
R="$R --shape 8,32,8,128,4096,fp8 --shape 4,32,8,128,2048,bf16 --shape 2,32,8,128,1024,int8 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16"
for r in 1 2; do
  for k in "m/f" "f" "f --mma-warps 4" "f --mma-warps 8"; do
    set -- $k; b=$1; shift
    echo "== $r $k"; timeout 40 $b/bench_decode_attention "$@" $R 2>/dev/null | grep '"decode"' | row
  done
done > "$W/warps.txt"
echo "warps ($((SECONDS - t0)) s)"; pack
# 2. MHA B = 1 split plans: the 8-bit kernel against bf16 (issue 17: 8-bit <= 0.6x bf16)
M="--shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8"
for r in 1 2; do
  for k in "" "--min-split-rows 512" "--min-split-rows 1024" "--min-split-rows 2048" "--waves 0.75" "--waves 1.5" "--waves 2" \
           "--blocks-per-sm 2" "--blocks-per-sm 3" "--merge-bytes 100000000"; do
    echo "== $r $k"; timeout 30 f/bench_decode_attention $k $M 2>/dev/null | grep '"decode"' | row
  done
done > "$W/mha_plans.txt"
echo "plans ($((SECONDS - t0)) s)"; pack
# 3. the decode tests
DT='Decode*:KVCache*:Generate*:PrefixLm*:KernelTrace*'
timeout 200 f/attn_gpu_tests --gtest_filter="$DT" > "$W/tests.log" 2>&1; summary "decode tests" $? "$W/tests.log"
echo "total $((SECONDS - t0)) s"
