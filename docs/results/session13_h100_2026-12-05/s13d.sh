#!/usr/bin/env bash
# Session 13, call D (carry ["build-carry/s13d", "build-carry/main12", ".gpucall"]): the decode-step GEMV's knobs, B=1 and 8,
# against main12 (a5ab50c); tests of the decode path; the new default's profile.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s13d.tgz.part" -C "$W" . && mv "$O/s13d.tgz.part" "$O/s13d.tgz"; }
trap pack EXIT
N=new; OLD=old; mkdir -p $N $OLD && tar xzf build-carry/s13d/bins.tgz -C $N && tar xzf build-carry/main12/bins.tgz -C $OLD || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
$N/attn_gpu_tests --gtest_filter='Gemv*:Decode*:KVCache*:Generate*:PrefixLm*:KernelTrace*' > "$W/tests.log" 2>&1; echo "tests exit $?"
grep -E "^\[  (PASSED|FAILED)|FAILED  \]|Failure" "$W/tests.log" | head -20; pack
GEN="bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8"
run() { local tag=$1; shift; echo "$tag $(env "$@" timeout 60 ./$BIN $GEN --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1 2; do
  BIN=$OLD/attnlab run old X=1
  BIN=$N/attnlab run new X=1
  BIN=$N/attnlab run new_flags0 ATTN_GEMV_FLAGS=0
  BIN=$N/attnlab run new_flags1 ATTN_GEMV_FLAGS=1
  BIN=$N/attnlab run new_shallow ATTN_GEMV_SHALLOW=1
  BIN=$N/attnlab run new_single_acc ATTN_GEMV_SINGLE_ACC=1
done | tee "$W/ab.txt"; pack
timeout 60 ./$N/attnlab $GEN --batches 1 --new-tokens 128 --profile --out runs/p_new > "$W/prof_new.log" 2>&1
grep -E "^\| [0-9]|step period" runs/p_new/decode_profile.md | head -12 | tee "$W/profile.txt"
echo "total $((SECONDS - t0)) s"
