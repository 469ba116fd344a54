#!/usr/bin/env bash
# Session 18, call H (call G cut to the device time left: bench first, two reps; no decode table) (carry ["build-carry/s18g", "build-carry/s18m", ".gpucall"]): branch s18-interleave (n/) against main (m/ = e18a72b's
# attnlab and bench, whose decode device code is main's): the MHA decode kernels' splits interleaved (row blocks s, s + splits, ...)
# and the 8-bit direct kernel at 2 slices everywhere (2 blocks per SM at D = 128). The tensor-core kernel is main's.
# 1. bench_decode_attention main / new, two reps alternated; 2. decode/cache/generator tests (new); 3. bench-generate, one rep;
# 4. memcheck on the MHA reference cases (60 s at most).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w18h; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s18h.tgz.part" -C "$W" . && mv "$O/s18h.tgz.part" "$O/s18h.tgz"; }
trap pack EXIT
mkdir -p n m && tar xzf build-carry/s18g/bins.tgz -C n && tar xzf build-carry/s18m/bins.tgz -C m || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
SH=""; for s in 1,12,12,64,32768,bf16 1,12,12,64,32768,fp8 1,12,12,64,32768,int8 32,12,12,64,4096,bf16 32,12,12,64,4096,fp8 \
  32,12,12,64,4096,int8 1,16,16,128,32768,bf16 1,16,16,128,32768,fp8 1,16,16,128,32768,int8 8,16,16,128,4096,int8 32,8,8,128,2048,fp8 \
  1,12,4,64,32768,bf16 32,12,4,64,4096,bf16 1,32,8,128,32768,fp8 1,12,12,64,640,bf16 1,12,12,64,640,int8; do SH="$SH --shape $s"; done
run() { timeout 90 $1/bench_decode_attention $SH 2>>"$W/err.txt" | python3 -c "
import json,sys
for l in sys.stdin:
  if not l.startswith('{'): continue
  d=json.loads(l)
  if d.get('what')=='decode': print('$1', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d.get('us'),d.get('read_us'),d.get('frac_copy'))
"; }
for rep in 1 2; do run m; run n; done | tee "$W/decode.txt"; pack
timeout 150 n/attn_gpu_tests --gtest_filter='Decode*:KVCache*:PrefixLm*:Generate*' > "$W/tests.log" 2>&1; summary "decode+generate tests" $? "$W/tests.log"; pack
gen() { echo "$1 $2 $(timeout 60 ./$1/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache $2 --no-baseline --batches 1,8 --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1; do gen m bf16; gen n bf16; gen m int8; gen n int8; done | tee "$W/generate.txt"; pack
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 1 n/attn_gpu_tests --gtest_filter='Decode/DecodeAttention.MatchesFloat64Reference/*_H4_Hkv4_D*_cap4100*:Decode/DecodeAttention.MatchesFloat64Reference/*_H12_Hkv12_D64_cap300*' > "$W/memcheck.log" 2>&1
echo "memcheck exit $? ($(grep -E 'ERROR SUMMARY' "$W/memcheck.log" | tail -1)) $(grep -cE '^\[       OK' "$W/memcheck.log") ok"; pack
echo "total $((SECONDS - t0)) s"
