#!/usr/bin/env bash
# Session 24, call C: f/ main 53be2c3 (build-carry/s24b), f2/ s24-pdl (the layernorm rows kernel and the K/V append
# launched with programmatic dependent launch; build-carry/s24c). Env LIM (default 540).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w24c; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s24c.tgz.part" -C "$W" . && mv "$O/s24c.tgz.part" "$O/s24c.tgz"; }
trap pack EXIT
for t in s24b s24c; do tar xzf build-carry/$t/bins.tgz || { echo "untar $t failed"; exit 1; }; done
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
# 1. f2's tests: generation, decode and cache, layernorm kernels, the training step and the backends
timeout 240 f2/attn_gpu_tests --gtest_filter='Generate*:Gemv*:PrefixLm*:Kernels*:Fp8Layernorm*:Fp8Model*:TrainStepGraph*:Backend*:VsCpu*:Gpt2Smoke*:Decode*:KVCache*' > "$W/tests.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
# 2. the decode step: main against s24-pdl, alternated twice
gen() { timeout 60 "$@" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
  --batches 1,8,32 2>&1 | grep -E '^cached' | awk '{print $5, $10, $12, $14}'; }
for r in 1 2; do for b in f f2; do echo "== $r $b"; gen $b/attnlab; done; done > "$W/step.txt" 2>&1
cat "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
# 3. the training step (the layernorm is shared): GPT-2 124M bf16, main against f2, alternated twice
for r in 1 2; do for b in f f2; do
  echo "== $r $b $(timeout 90 $b/attnlab bench -c configs/gpt2_124m.toml --steps 15 --warmup 3 2>&1 | grep -iE 'tokens/s' | tail -1)"
done; done > "$W/train.txt" 2>&1
cat "$W/train.txt"; echo "train ($((SECONDS - t0)) s)"; pack
# 4. f2's B = 32 step profile
timeout 60 f2/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
  --batches 32 --profile --out runs/p32 > "$W/profile_32.txt" 2>&1; cp runs/p32/decode_profile.md "$W/decode_profile_32.md"
echo "total $((SECONDS - t0)) s"
