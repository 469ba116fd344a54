#!/usr/bin/env bash
# Session 17, call D (carry ["build-carry/s18c", ".gpucall"]): call C cut to what fits the last device time: bench plain /
# --interleave, two reps alternated, then the interleaved decode tests.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w18d; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s18d.tgz.part" -C "$W" . && mv "$O/s18d.tgz.part" "$O/s18d.tgz"; }
trap pack EXIT
mkdir -p v && tar xzf build-carry/s18c/bins.tgz -C v || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
SH=""; for s in 1,12,12,64,32768,bf16 1,12,12,64,32768,int8 32,12,12,64,4096,bf16 32,12,12,64,4096,int8 1,16,16,128,32768,bf16 \
  1,12,4,64,32768,bf16 1,32,8,128,32768,bf16 1,12,1,64,32768,bf16; do SH="$SH --shape $s"; done
run() { local tag="$1"; shift; timeout 60 v/i/bench_decode_attention --reps 30 $SH "$@" 2>>"$W/err.txt" | python3 -c "
import json,sys
for l in sys.stdin:
  if not l.startswith('{'): continue
  d=json.loads(l)
  if d.get('what')=='decode': print('$tag', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d.get('us'),d.get('read_us'),d.get('read_chunked_us'),d.get('read_interleaved_us'),d.get('frac_copy'))
"; }
for rep in 1 2; do run plain; run inter --interleave; done | tee "$W/decode.txt"; pack
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
ATTN_DECODE_INTERLEAVE=1 timeout 60 v/i/attn_gpu_tests --gtest_filter='Decode/DecodeAttention.*:DecodeAttentionGraph*' > "$W/tests_interleave.log" 2>&1; summary "interleaved decode tests" $? "$W/tests_interleave.log"
echo "total $((SECONDS - t0)) s"
