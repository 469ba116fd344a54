#!/usr/bin/env bash
# Session 17, call A (carry ["build-carry/s18a", ".gpucall"]): decode geometry variants beside main e18a72b (base).
#   L128 / L96: the CUDA-core bf16 MHA kernel reading 128 / 96 bytes of K (and of V) a lane per iteration (64 on main),
#               held to 3 / 4 blocks per SM (5 at D=64 on main);
#   S3 / S4: the direct-fragment 8-bit MHA kernel at D=64 with 3 / 4 slices of 16 tokens a warp per iteration (2 on main),
#            S4 at 2 blocks per SM; W2: 2 slices at D=128 (1 on main) and 2 blocks per SM (D=64 8-bit also 2 blocks).
# 1. decode tests of L128, L96, S3 and base (base = e18a72b, whose decode code never ran on a GPU);
# 2. bench_decode_attention, every variant, three reps alternated; 3. bench-generate of base, B = 1 / 8.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w18a; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s18a.tgz.part" -C "$W" . && mv "$O/s18a.tgz.part" "$O/s18a.tgz"; }
trap pack EXIT
mkdir -p v && tar xzf build-carry/s18a/bins.tgz -C v || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
timeout 120 v/base/attn_gpu_tests --gtest_filter='Decode*:KVCache*:PrefixLm*' > "$W/tests_base.log" 2>&1; summary "base decode tests" $? "$W/tests_base.log"
for n in L128 L96 S3; do
  timeout 60 v/$n/attn_gpu_tests --gtest_filter='Decode/DecodeAttention.*:DecodeAttentionGraph*' > "$W/tests_$n.log" 2>&1; summary "$n decode tests" $? "$W/tests_$n.log"
done; pack
SH=""; for s in 1,12,12,64,32768,bf16 1,12,12,64,32768,fp8 1,12,12,64,32768,int8 32,12,12,64,4096,bf16 32,12,12,64,4096,fp8 \
  32,12,12,64,4096,int8 1,16,16,128,32768,bf16 1,16,16,128,32768,fp8 1,16,16,128,32768,int8 1,12,12,64,640,bf16 \
  1,12,12,64,640,int8 8,12,12,64,640,bf16; do SH="$SH --shape $s"; done
run() { local tag="$1"; timeout 60 v/$tag/bench_decode_attention $SH 2>>"$W/err.txt" | python3 -c "
import json,sys
for l in sys.stdin:
  if not l.startswith('{'): continue
  d=json.loads(l)
  if d.get('what')=='decode': print('$tag', d['B'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d.get('read_us'),d.get('frac_copy'))
"; }
for rep in 1 2 3; do for n in base L128 L96 S3 S4 W2; do run $n; done; done | tee "$W/decode.txt"; pack
gen() { echo "$1 $(timeout 60 ./v/base/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache $1 --no-baseline --batches 1,8 --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1 2; do gen bf16; gen int8; done | tee "$W/generate.txt"
echo "total $((SECONDS - t0)) s"
