#!/usr/bin/env bash
# Session 5, call 6 (final): c5d8988 (final) against 5ec6b16 (head, the session start): all GPU
# tests; the flash table beside cuDNN SDPA (causal five, non-causal, GQA); variants; the GPT-2 124M
# step; end to end at long context beside torch.compile + cuDNN SDPA (issue 14, acceptance 3).
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p final head && tar xzf build-carry/final/bins.tgz -C final && tar xzf build-carry/head/bins.tgz -C head
t() { echo "[$SECONDS s] $*"; }
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv,noheader
t tests
final/attn_gpu_tests > $W/tests.log 2>&1; echo "rc=$?"
grep -E "^\[  PASSED|^\[  FAILED|Failure|^\[  SKIPPED" $W/tests.log | head -20
t flash
for who in head final head final; do
  echo "== $who"
  $who/bench_flash_attention 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D"'
  $who/bench_flash_attention --full --shape 2,16,16,8192,128 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $0, "full"}'
  $who/bench_flash_attention --shape 4,32,8,4096,128 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $0, "gqa"}'
done | tee $W/flash.txt
for i in 1 2; do
  python3 scripts/bench_sdpa.py --backends cudnn --shapes 16,12,1024,64 4,12,4096,64 1,12,16384,64 8,16,2048,128 2,16,8192,128 4,32,4096,128,8 2>&1 | grep "^cudnn"
  python3 scripts/bench_sdpa.py --backends cudnn --full --shapes 2,16,8192,128 2>&1 | grep "^cudnn" | sed 's/$/ full/'
done | tee $W/sdpa.txt
t variants
for f in "" "--alibi" "--softcap 30" "--alibi --softcap 30" "--window 1024"; do
  echo "final $f: $(final/bench_flash_attention --reps 10 --shape 1,12,12,16384,64 $f 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D"')"
done | tee $W/variants.txt
t step
for who in head final; do
  $who/attnlab bench -c configs/gpt2_124m.toml --attention.impl='"flash"' --json $W/step_$who.json > $W/step_$who.log 2>&1
  echo "$who: $(tail -1 $W/step_$who.log)"
done
t e2e
for BT in "4 4096" "1 16384"; do
  set -- $BT
  final/attnlab bench -c configs/gpt2_124m.toml --attention.impl='"flash"' --training.batch_size=$1 --training.seq_len=$2 \
    --model.block_size=$2 --json $W/e2e_ours_$2.json > $W/e2e_ours_$2.log 2>&1
  echo "ours B=$1 T=$2: $(tail -1 $W/e2e_ours_$2.log)"
  timeout 240 python3 scripts/torch_gpt.py bench --sdpa cudnn --compile 1 --batch $1 --seq $2 2>$W/e2e_torch_$2.err | tail -1 | tee $W/e2e_torch_$2.json
done
t done
tar czf "$O/w.tgz" -C "$W" .
