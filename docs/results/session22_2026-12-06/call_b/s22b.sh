#!/usr/bin/env bash
# Session 22 call B (carry ["build-carry/s22b", ".gpucall/s22b.sh"]): branch s22-prefetch's binaries (f/). The
# tensor-core decode kernels prefetch row blocks to L2 ahead of their loads (--prefetch-tiles P; 0 = main's path).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w22b; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s22b.tgz.part" -C "$W" . && mv "$O/s22b.tgz.part" "$O/s22b.tgz"; }
trap pack EXIT
tar xzf build-carry/s22b/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
R="--shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 --shape 1,12,4,64,32768,bf16
   --shape 1,12,4,64,32768,int8 --shape 1,12,1,64,32768,bf16 --shape 1,12,1,64,32768,fp8 --shape 1,32,8,128,32768,bf16
   --shape 1,32,8,128,32768,fp8 --shape 1,32,8,128,32768,int8 --shape 32,12,4,64,4096,bf16 --shape 8,32,8,128,4096,fp8
   --shape 1,12,4,64,640,bf16 --shape 1,12,12,64,640,fp8 --shape 1,32,8,128,640,bf16 --shape 1,32,8,128,640,fp8"
row() { python3 -c "import json,sys; [print(d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d['read_us']) for d in map(json.loads, sys.stdin)]"; }
# 1. prefetch distance x warps, alternated twice
for r in 1 2; do
  for k in "--prefetch-tiles 0" "--prefetch-tiles 4" "--prefetch-tiles 8" "--prefetch-tiles 16" "--prefetch-tiles 64" \
           "--prefetch-tiles 0 --mma-warps 8" "--prefetch-tiles 4 --mma-warps 8" "--prefetch-tiles 8 --mma-warps 8"; do
    echo "== $r $k"; timeout 30 f/bench_decode_attention $k $R 2>/dev/null | grep '"decode"' | row
  done
done > "$W/sweep.txt"
echo "sweep ($((SECONDS - t0)) s)"; pack
# 2. the decode tests (default: 8 tiles ahead), then the decode kernels under memcheck
DT='Decode*:KVCache*:Generate*:PrefixLm*:KernelTrace*:Gemv*'
timeout 150 f/attn_gpu_tests --gtest_filter="$DT" > "$W/tests.log" 2>&1; summary "decode tests" $? "$W/tests.log"
[ "$(left)" -ge 150 ] && { timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 f/attn_gpu_tests \
  --gtest_filter='Decode/DecodeAttention.MatchesFloat64Reference/*bf16_H8_Hkv2*:Decode/DecodeAttention.MatchesFloat64Reference/int8_actbf16_H8_Hkv2*:Decode/DecodeAttention.MatchesFloat64Reference/fp8_actbf16_H4_Hkv4*' > "$W/memcheck.log" 2>&1; echo "memcheck exit $? $(grep -E 'ERROR SUMMARY|PASSED|FAILED' "$W/memcheck.log" | tail -3 | tr '\n' ' ')"; }
pack
# 3. the decode step, default plan
[ "$(left)" -ge 60 ] && timeout 60 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 \
  --kv-cache bf16 --no-baseline --batches 1,8,32 --out runs/g > "$W/generate.txt" 2>&1; grep cached "$W/generate.txt" | cut -c1-120
echo "total $((SECONDS - t0)) s"
