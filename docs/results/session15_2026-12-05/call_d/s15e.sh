#!/usr/bin/env bash
# Session 15, call E (carry ["build-carry/s15e","build-carry/s15m",".gpucall"]): branch s15-decode-vec16 against main
# ce3b67e (s15m): 1. decode/generator tests (prefetch off and 3); 2. bench_decode_attention old / new x prefetch 0,2,3,4
# alternated twice; 3. bench-generate B=1,8 main / new / new+prefetch.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/we; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s15e.tgz.part" -C "$W" . && mv "$O/s15e.tgz.part" "$O/s15e.tgz"; }
trap pack EXIT
mkdir -p n m && tar xzf build-carry/s15e/bins.tgz -C n && tar xzf build-carry/s15m/bins.tgz -C m || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
for pf in 0 3; do
  ATTN_DECODE_PREFETCH=$pf timeout 100 n/attn_gpu_tests --gtest_filter='Decode*:KVCache*:Generate*:PrefixLm*' > "$W/tests_pf$pf.log" 2>&1
  echo "tests prefetch $pf exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_pf$pf.log" | tr '\n' ' ')"
  grep -E "FAILED  \]|Failure" "$W/tests_pf$pf.log" | head -5
done; pack
SH=""; for s in 1,12,12,64,32768,bf16 1,12,12,64,32768,fp8 1,12,12,64,32768,int8 32,12,12,64,4096,bf16 32,12,12,64,4096,fp8 32,12,12,64,4096,int8 1,16,16,128,32768,bf16 1,16,16,128,32768,int8; do SH="$SH --shape $s"; done
run() { local tag="$1" bin="$2"; shift 2; timeout 60 $bin/bench_decode_attention $SH "$@" 2>>"$W/err.txt" | python3 -c "
import json,sys
for l in sys.stdin:
  if not l.startswith('{'): continue
  d=json.loads(l)
  if d.get('what')=='decode': print('$tag', d['B'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d.get('read_us'),d.get('frac_copy'))
"; }
for rep in 1 2; do
  run old m
  for pf in 0 2 3 4; do run new_pf$pf n --prefetch $pf; done
done | tee "$W/decode.txt"; pack
GEN="bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8"
gen() { local tag=$1 bin=$2; shift 2; echo "$tag $(env "$@" timeout 60 ./$bin/attnlab $GEN --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1 2; do
  gen main m X=1; gen new n ATTN_DECODE_PREFETCH=0; gen new_pf2 n ATTN_DECODE_PREFETCH=2
done | tee "$W/generate.txt"; pack
echo "total $((SECONDS - t0)) s"
