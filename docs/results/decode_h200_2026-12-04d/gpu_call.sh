#!/usr/bin/env bash
# Issue 17, session of 2026-12-04 (fourth): one call on the lent H200 with the final tree's binaries
# (build-carry/final/bins.tgz) and the session-start ones (build-carry/bins.tgz, 5d2a9bf):
#   all GPU tests; bench_decode_attention on the shapes, new and session-start kernels;
#   PyTorch SDPA's decode peers (scripts/bench_decode_sdpa.py); bench-generate at B=1 and 32.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
mkdir -p new base && tar xzf build-carry/final/bins.tgz -C new && tar xzf build-carry/bins.tgz -C base
t() { echo "[$SECONDS s] $*"; }
t "GPU tests"
new/attn_gpu_tests > $W/gpu_tests.log 2>&1; echo "rc=$?"
grep -E "^\[  PASSED|^\[  FAILED|^\[  SKIPPED|Failure" $W/gpu_tests.log | head -20
S=""
for s in 1,12,12,64,32768,bf16 32,12,12,64,4096,bf16 1,12,12,64,32768,fp8 32,12,12,64,4096,fp8 \
         1,12,12,64,32768,int8 32,12,12,64,4096,int8 1,12,4,64,32768,bf16 32,12,4,64,4096,bf16 \
         1,12,4,64,32768,int8 1,32,8,128,32768,bf16 1,32,8,128,32768,fp8 1,32,8,128,32768,int8 \
         1,12,1,64,32768,bf16 1,12,1,64,32768,fp8; do S="$S --shape $s"; done
t "decode kernel"
base/bench_decode_attention $S --reps 40 > $W/decode_base.jsonl 2>&1
new/bench_decode_attention $S --reps 40 > $W/decode_new.jsonl 2>&1
python3 scripts/bench_decode_sdpa.py > $W/decode_sdpa.jsonl 2> $W/decode_sdpa.err
t "bench-generate"
for who in base new; do
  timeout 100 $who/attnlab bench-generate -c configs/gpt2_124m.toml --batches 1,32 --kv-cache bf16 --no-baseline --out /tmp/gen_$who > $W/generate_$who.log 2>&1
  echo "== $who"; grep -E "^cached" $W/generate_$who.log | cut -c1-140
done
t "done"
cp "$0" $W/ 2>/dev/null
tar czf "$O/w.tgz" -C "$W" .
