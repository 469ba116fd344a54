#!/usr/bin/env bash
# Prepared in session 18 for the next (carry ["build-carry/s18g", "build-carry/s18m", "build-carry/s18v", ".gpucall"]), best on an H200:
# m = main (e18a72b's attnlab and bench; decode device code = main's), n = s18-interleave c42f39d (the MHA kernels' splits
# interleaved + W2: the 8-bit direct kernel at two slices, 2 blocks per SM at D = 128), v = s18-inter-only a4f2d5f (interleaved,
# no W2). Session 18's H100 call H: n won 10 MHA shapes by 0.8-2.2% and lost B=8 D=128 int8 by 1.3%.
# 1. bench_decode_attention m / n / v in rotated order, 4 rounds; 2. the decode+generator tests of n and v;
# 3. bench-generate, two rounds; 4. on an H200, issue 17's decode table with n.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w19a; mkdir -p "$W" n m v; t0=$SECONDS
pack() { tar czf "$O/s19a.tgz.part" -C "$W" . && mv "$O/s19a.tgz.part" "$O/s19a.tgz"; }
trap pack EXIT
tar xzf build-carry/s18g/bins.tgz -C n && tar xzf build-carry/s18m/bins.tgz -C m && tar xzf build-carry/s18v/bins.tgz -C v || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
SH=""; for s in 1,12,12,64,32768,bf16 1,12,12,64,32768,fp8 1,12,12,64,32768,int8 32,12,12,64,4096,bf16 32,12,12,64,4096,fp8 \
  32,12,12,64,4096,int8 1,16,16,128,32768,bf16 1,16,16,128,32768,fp8 1,16,16,128,32768,int8 8,16,16,128,4096,int8 8,16,16,128,4096,fp8 \
  32,8,8,128,2048,fp8 32,16,16,128,2048,int8 1,12,4,64,32768,bf16 1,32,8,128,32768,fp8 1,12,12,64,640,bf16 1,12,12,64,640,int8; do SH="$SH --shape $s"; done
for b in m n v n v m v m n m n v; do timeout 60 $b/bench_decode_attention $SH 2>>"$W/err.txt" | python3 -c "
import json,sys
for l in sys.stdin:
  if not l.startswith('{'): continue
  d=json.loads(l)
  if d.get('what')=='decode': print('$b', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d.get('us'),d.get('read_us'),d.get('frac_copy'))
"; done | tee "$W/decode.txt" | wc -l; pack
for b in n v; do timeout 150 $b/attn_gpu_tests --gtest_filter='Decode*:KVCache*:PrefixLm*:Generate*' > "$W/tests_$b.log" 2>&1; summary "$b decode+generate tests" $? "$W/tests_$b.log"; pack; done
for r in 1 2; do for b in m n v; do for c in bf16 int8; do echo "$b $c $(timeout 60 ./$b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache $c --no-baseline --batches 1,8 --out runs/g 2>&1 | grep -o '[0-9.]* ms/step' | tr '\n' ' ')"; done; done; done | tee "$W/generate.txt"; pack
if grep -q H200 "$W/gpu.txt"; then
  OUT=$W/gd BUILD=n timeout $((590 - (SECONDS - t0))) bash scripts/gpu_check.sh decode > "$W/decode_table.txt" 2>&1; echo "decode table exit $?"
  sed -n '/^decode B,H/,$p' "$W/decode_table.txt" | head -30; pack
fi
echo "total $((SECONDS - t0)) s"
