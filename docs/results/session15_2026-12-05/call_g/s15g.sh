#!/usr/bin/env bash
# Session 15, call G (carry ["build-carry/s15h","build-carry/s15f","build-carry/s15i",".gpucall"]; s15i: one slice an iteration, 4 blocks per SM): branch s15-mha-direct (500e893,
# s15h: decode_mha_direct_kernel for MHA, 8-bit D 64/128 and bf16 D 64) against main 87ab016 (s15f):
# 1. decode/generator tests with it on (mode 2), memcheck on its cases; 2. bench_decode_attention main / new
# --mha-direct 0 / 1 / 2, alternated twice; 3. bench-generate B=1,8 bf16 and int8 caches, main / new.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/wg; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s15g.tgz.part" -C "$W" . && mv "$O/s15g.tgz.part" "$O/s15g.tgz"; }
trap pack EXIT
mkdir -p n m i && tar xzf build-carry/s15h/bins.tgz -C n && tar xzf build-carry/s15f/bins.tgz -C m && tar xzf build-carry/s15i/bins.tgz -C i || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
timeout 100 n/attn_gpu_tests --gtest_filter='Decode*:KVCache*:Generate*:PrefixLm*' > "$W/tests.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests.log" | tr '\n' ' ')"; grep -E "FAILED  \]|Failure|\[rel\]" "$W/tests.log" | grep -B1 -A0 "Failure\|FAILED" | head -12
grep -E "\[rel\]" "$W/tests.log" | head -40 > "$W/rel.txt"
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout 90 $CS --tool memcheck --error-exitcode 1 n/attn_gpu_tests --gtest_filter='Decode/DecodeAttention.MatchesFloat64Reference/*_actbf16_H4_Hkv4_*' > "$W/memcheck.log" 2>&1
echo "memcheck exit $? $(grep -E 'ERROR SUMMARY' "$W/memcheck.log" | head -1) $(grep -cE '^\[       OK' "$W/memcheck.log") ok"; pack
SH=""; for s in 1,12,12,64,32768,bf16 1,12,12,64,32768,fp8 1,12,12,64,32768,int8 32,12,12,64,4096,bf16 32,12,12,64,4096,fp8 32,12,12,64,4096,int8 1,16,16,128,32768,fp8 1,16,16,128,32768,int8 1,12,12,64,640,bf16; do SH="$SH --shape $s"; done
run() { local tag="$1" bin="$2"; shift 2; timeout 60 $bin/bench_decode_attention $SH "$@" 2>>"$W/err.txt" | python3 -c "
import json,sys
for l in sys.stdin:
  if not l.startswith('{'): continue
  d=json.loads(l)
  if d.get('what')=='decode': print('$tag', d['B'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d.get('read_us'),d.get('frac_copy'))
"; }
for rep in 1 2; do run main m; run d0 n --mha-direct 0; run d2 n --mha-direct 2; run v1 i --mha-direct 2; done | tee "$W/decode.txt"; pack
gen() { local tag=$1 bin=$2 kv=$3; shift 3; echo "$tag $kv $(env "$@" timeout 60 ./$bin/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache $kv --no-baseline --batches 1,8 --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1 2; do for kv in bf16 int8; do gen main m $kv X=1; gen d2 n $kv ATTN_MHA_DIRECT=2; done; done | tee "$W/generate.txt"; pack
echo "total $((SECONDS - t0)) s"
