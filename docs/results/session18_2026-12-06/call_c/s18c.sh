#!/usr/bin/env bash
# Session 17, call C (carry ["build-carry/s18c", "build-carry/s18w", ".gpucall"]): the split kernels' rows dealt round-robin to the splits
# (ATTN_DECODE_INTERLEAVE=1 / --interleave: block s reads row blocks s, s + splits, ...) against contiguous chunks (main's),
# one binary (i = s17-geom 1d6e7dd; 1d05bb3 after it changes comments only); the bench also times two plain reads of the same bytes shaped like a split kernel's
# (read_chunked_us, read_interleaved_us: 5 blocks of 128 threads an SM, 8 KiB pieces of K and V).
# 1. bench_decode_attention main / plain / --interleave, three reps alternated; 2. decode tests interleaved;
# 3. bench-generate plain / interleaved, B = 1 / 8, bf16 and int8 caches.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w18c; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s18c.tgz.part" -C "$W" . && mv "$O/s18c.tgz.part" "$O/s18c.tgz"; }
trap pack EXIT
mkdir -p v && tar xzf build-carry/s18c/bins.tgz -C v || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
SH=""; for s in 1,12,12,64,32768,bf16 1,12,12,64,32768,fp8 1,12,12,64,32768,int8 32,12,12,64,4096,bf16 32,12,12,64,4096,fp8 \
  32,12,12,64,4096,int8 1,16,16,128,32768,bf16 1,16,16,128,32768,int8 1,12,4,64,32768,bf16 32,12,4,64,4096,bf16 \
  1,12,4,64,32768,int8 1,32,8,128,32768,bf16 1,32,8,128,32768,fp8 1,12,1,64,32768,bf16 1,12,1,64,32768,fp8 \
  1,12,12,64,640,bf16 1,12,12,64,640,int8; do SH="$SH --shape $s"; done
run() { local tag="$1" bin="$2"; shift 2; timeout 90 $bin/bench_decode_attention $SH "$@" 2>>"$W/err.txt" | python3 -c "
import json,sys
for l in sys.stdin:
  if not l.startswith('{'): continue
  d=json.loads(l)
  if d.get('what')=='decode': print('$tag', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d.get('us'),d.get('read_us'),d.get('read_chunked_us'),d.get('read_interleaved_us'),d.get('frac_copy'))
"; }
mkdir -p w && tar xzf build-carry/s18w/bins.tgz -C w  # w/base: main e18a72b's bench (the branch's default path against it)
for rep in 1 2 3; do run main w/base; run plain v/i; run inter v/i --interleave; done | tee "$W/decode.txt"; pack
ATTN_DECODE_INTERLEAVE=1 timeout 150 v/i/attn_gpu_tests --gtest_filter='Decode*:KVCache*:PrefixLm*:Generate*' > "$W/tests_interleave.log" 2>&1; summary "interleaved decode+generate tests" $? "$W/tests_interleave.log"; pack
gen() { echo "$1 $2 $(env $3 timeout 60 ./v/i/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache $2 --no-baseline --batches 1,8 --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1 2; do gen plain bf16 X=0; gen inter bf16 ATTN_DECODE_INTERLEAVE=1; gen plain int8 X=0; gen inter int8 ATTN_DECODE_INTERLEAVE=1; done | tee "$W/generate.txt"; pack
# W2 (call A's variant: 2 slices of 16 tokens a warp at D = 128 over an 8-bit cache, 2 blocks per SM) against main, again
mkdir -p w && tar xzf build-carry/s18w/bins.tgz -C w
SW=""; for s in 1,16,16,128,32768,fp8 1,16,16,128,32768,int8 8,16,16,128,4096,int8 32,8,8,128,2048,fp8 1,12,12,64,32768,int8; do SW="$SW --shape $s"; done
for rep in 1 2 3; do for n in base W2; do timeout 60 w/$n/bench_decode_attention $SW 2>>"$W/err.txt" | python3 -c "
import json,sys
for l in sys.stdin:
  if not l.startswith('{'): continue
  d=json.loads(l)
  if d.get('what')=='decode': print('$n', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d.get('us'))
"; done; done | tee "$W/w2.txt"; pack
timeout 100 v/i/attn_gpu_tests --gtest_filter='Decode*:KVCache*' > "$W/tests_plain.log" 2>&1; summary "plain decode tests" $? "$W/tests_plain.log"
# On an H200 (the issue's card): issue 17's decode table beside PyTorch SDPA, interleaved if that won at B = 1 bf16 here
if grep -q H200 "$W/gpu.txt"; then
  X=$(python3 -c "
import collections; m=collections.defaultdict(list)
for l in open('$W/decode.txt'):
  f=l.split()
  if f[1:7]==['1','12','12','64','32768','bf16']: m[f[0]].append(float(f[7]))
print(1 if m['inter'] and sum(m['inter'])/len(m['inter']) < 0.99*sum(m['plain'])/len(m['plain']) else 0)")
  echo "decode table with ATTN_DECODE_INTERLEAVE=$X"
  ATTN_DECODE_INTERLEAVE=$X OUT=$W/gd BUILD=v/i timeout $((590 - (SECONDS - t0))) bash scripts/gpu_check.sh decode > "$W/decode_table.txt" 2>&1; echo "decode table exit $?"
  sed -n '/^decode B,H/,$p' "$W/decode_table.txt" | head -30; pack
fi
echo "total $((SECONDS - t0)) s"
