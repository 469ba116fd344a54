#!/usr/bin/env bash
# Session 16, call D (carry ["build-carry/s16a", "build-carry/s16m", ".gpucall"]): branch s16-mha-ilp 3395116 (n: the
# direct-fragment 8-bit MHA kernel with a softmax state per slice, both slices' scores first, two S^T accumulators; with
# --mha-direct-bf16 also over a bf16 D=64 cache) against main ed78b4d (m): 1. n's decode/generator tests, plain and with the
# bf16 path; memcheck of the MHA cases; 2. bench_decode_attention m / n / n-bf16 alternated three times; 3. bench-generate int8.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w17d; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s17d.tgz.part" -C "$W" . && mv "$O/s17d.tgz.part" "$O/s17d.tgz"; }
trap pack EXIT
mkdir -p n m && tar xzf build-carry/s16a/bins.tgz -C n && tar xzf build-carry/s16m/bins.tgz -C m || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
timeout 120 n/attn_gpu_tests --gtest_filter='Decode*:KVCache*:Generate*:PrefixLm*' > "$W/tests_n.log" 2>&1; summary "n tests" $? "$W/tests_n.log"
ATTN_MHA_DIRECT_BF16=1 timeout 100 n/attn_gpu_tests --gtest_filter='Decode*:KVCache*:PrefixLm*' > "$W/tests_n_bf16.log" 2>&1; summary "n tests (bf16 direct)" $? "$W/tests_n_bf16.log"
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
ATTN_MHA_DIRECT_BF16=1 timeout 90 $CS --tool memcheck --error-exitcode 1 n/attn_gpu_tests --gtest_filter='Decode/DecodeAttention.MatchesFloat64Reference/*_actbf16_H4_Hkv4_*' > "$W/memcheck.log" 2>&1
echo "memcheck exit $? $(grep -E 'ERROR SUMMARY' "$W/memcheck.log" | head -1)"; pack
SH=""; for s in 1,12,12,64,32768,bf16 1,12,12,64,32768,fp8 1,12,12,64,32768,int8 32,12,12,64,4096,bf16 32,12,12,64,4096,fp8 32,12,12,64,4096,int8 1,16,16,128,32768,fp8 1,16,16,128,32768,int8 1,12,12,64,640,bf16 1,12,12,64,640,int8; do SH="$SH --shape $s"; done
run() { local tag="$1" bin="$2"; shift 2; timeout 60 $bin/bench_decode_attention $SH "$@" 2>>"$W/err.txt" | python3 -c "
import json,sys
for l in sys.stdin:
  if not l.startswith('{'): continue
  d=json.loads(l)
  if d.get('what')=='decode': print('$tag', d['B'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d.get('read_us'),d.get('frac_copy'))
"; }
for rep in 1 2 3; do run main m; run ilp n; run ilp_bf16 n --mha-direct-bf16; done | tee "$W/decode.txt"; pack
gen() { local tag=$1 bin=$2 kv=$3; echo "$tag $kv $(timeout 60 ./$bin/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache $kv --no-baseline --batches 1,8 --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1 2; do gen main m int8; gen ilp n int8; done | tee "$W/generate.txt"; pack
echo "total $((SECONDS - t0)) s"
