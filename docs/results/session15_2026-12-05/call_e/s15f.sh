#!/usr/bin/env bash
# Session 15, call F (carry ["build-carry/s15f","build-carry/s15g","build-carry/s15m",".gpucall"]): main + 87ab016
# (s15f: 8-bit MHA at 16-byte loads) against main ce3b67e (s15m), and s15g (the same with 4 blocks per SM for 8-bit MHA):
# 1. decode/generator tests and memcheck on the 8-bit MHA cases; 2. bench_decode_attention old/new/mb4 alternated twice;
# 3. bench-generate B=1,8 with an int8 and a bf16 cache, old / new.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/wf; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s15f.tgz.part" -C "$W" . && mv "$O/s15f.tgz.part" "$O/s15f.tgz"; }
trap pack EXIT
mkdir -p n m g && tar xzf build-carry/s15f/bins.tgz -C n && tar xzf build-carry/s15m/bins.tgz -C m && tar xzf build-carry/s15g/bins.tgz -C g || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
timeout 100 n/attn_gpu_tests --gtest_filter='Decode*:KVCache*:Generate*:PrefixLm*' > "$W/tests.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests.log" | tr '\n' ' ')"; grep -E "FAILED  \]|Failure" "$W/tests.log" | head -5
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout 120 $CS --tool memcheck --error-exitcode 1 n/attn_gpu_tests --gtest_filter='Decode/DecodeAttention.MatchesFloat64Reference/*8_act*_H4_Hkv4_*' > "$W/memcheck.log" 2>&1
echo "memcheck exit $? $(grep -E 'ERROR SUMMARY' "$W/memcheck.log" | head -1) $(grep -cE '^\[       OK' "$W/memcheck.log") ok"; pack
SH=""; for s in 1,12,12,64,32768,bf16 1,12,12,64,32768,fp8 1,12,12,64,32768,int8 32,12,12,64,4096,bf16 32,12,12,64,4096,fp8 32,12,12,64,4096,int8 1,16,16,128,32768,bf16 1,16,16,128,32768,fp8 1,16,16,128,32768,int8; do SH="$SH --shape $s"; done
run() { local tag="$1" bin="$2"; shift 2; timeout 60 $bin/bench_decode_attention $SH "$@" 2>>"$W/err.txt" | python3 -c "
import json,sys
for l in sys.stdin:
  if not l.startswith('{'): continue
  d=json.loads(l)
  if d.get('what')=='decode': print('$tag', d['B'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d.get('read_us'),d.get('frac_copy'))
"; }
for rep in 1 2; do run old m; run new n; run mb4 g; done | tee "$W/decode.txt"; pack
gen() { local tag=$1 bin=$2 kv=$3; echo "$tag $kv $(timeout 60 ./$bin/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache $kv --no-baseline --batches 1,8 --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1 2; do for kv in int8 bf16; do gen main m $kv; gen new n $kv; done; done | tee "$W/generate.txt"; pack
echo "total $((SECONDS - t0)) s"
