#!/usr/bin/env bash
# Session call 5: the LM head and classifier in two row blocks (logits buffer halved): tests,
# device memory and speed beside llm.c, profile, loss curves vs base, fp8 peak.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
mkdir -p build base && tar xzf build-carry/bins.tgz -C build && tar xzf build-carry/base.tgz -C base
A=build/attnlab
t() { echo "[$SECONDS s] $*"; }
finish() { tar czf "$O/w.tgz" -C "$W" . ; }
trap finish EXIT
sample() {  # sample NAME CMD: max memory.used (MiB) while CMD runs
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > "$W/mem_$name.txt" 2>/dev/null & local pid=$!
  bash -c "$1"; kill $pid 2>/dev/null; wait $pid 2>/dev/null
  echo "$name: max memory.used $(sort -n "$W/mem_$name.txt" | tail -1) MiB"
}
t "GPU tests"
build/attn_gpu_tests > "$W/gpu_tests.log" 2>&1; echo "tests rc=$?"
grep -E "^\[  PASSED|^\[  FAILED|SKIPPED \]" "$W/gpu_tests.log" | head -20
grep -B2 -A12 "Failure" "$W/gpu_tests.log" | head -60
t "steps and memory"
for i in 1 2 3; do
  sample ours_$i "$A bench -c configs/gpt2_124m.toml --attention.impl='\"flash\"' --json $W/ours_$i.json > $W/ours_$i.log 2>&1"
  tail -1 "$W/ours_$i.log"
  sample llmc_$i "LLMC_ONLY=cudnn LLMC_LOGDIR=$W/llmc_$i bash .llmc/run.sh > $W/llmc_$i.log 2>&1"
  grep -hE "SUMMARY steps 11" "$W/llmc_$i.log" | tail -1
done
sample base "base/attnlab bench -c configs/gpt2_124m.toml --attention.impl='\"flash\"' > $W/base.log 2>&1"; tail -1 "$W/base.log"
sample naive "$A bench -c configs/gpt2_124m.toml --attention.impl='\"naive\"' > $W/naive.log 2>&1"; tail -1 "$W/naive.log"
sample llmc_own "LLMC_ONLY=nocudnn LLMC_LOGDIR=$W/llmc_own bash .llmc/run.sh > $W/llmc_own.log 2>&1"; grep -hE "SUMMARY steps 11" "$W/llmc_own.log" | tail -1
for P in bf16 fp8; do $A bench -c configs/gpt2_124m.toml --attention.impl=\"flash\" --device.precision=\"$P\" > "$W/prec_$P.log" 2>&1; tail -1 "$W/prec_$P.log"; done
$A bench -c configs/gpt2_124m.toml --attention.impl=\"flash\" --profile > "$W/profile.log" 2>&1
grep -A16 "op (top" "$W/profile.log"
t "200-step loss curves, new vs base"
for impl in flash naive; do for who in build base; do
  $who/attnlab train -c configs/gpt2_124m.toml --attention.impl=\"$impl\" --training.max_iters=200 \
    --training.eval_interval=50 --training.log_interval=1 --data.inputs='[".qdata/shakespeare.txt"]' \
    --data.dir=runs/data/loss_$who --training.out_dir=runs/loss_${impl}_$who --checkpoint.interval=0 > "$W/loss_${impl}_$who.log" 2>&1 \
    || tail -3 "$W/loss_${impl}_$who.log"
  cp runs/loss_${impl}_$who/metrics.jsonl "$W/loss_${impl}_$who.jsonl"; grep "val loss" "$W/loss_${impl}_$who.log" | tail -1
done; done
t "done"
