#!/usr/bin/env bash
# Session 27, call D (carry ["build-carry/s27d", ".gpucall/s27d.sh"]): f/ main's binaries (7a6d87e: attnlab,
# input.txt), h/ branch s27-fcproj-fold d08888e's (attnlab, attn_gpu_tests), sm_90a.
# 1. the branch's tests; 2. the decode step, main against the branch (the layernorm's loads all issued first, one warp a
# block below 1024 rows; c_proj's split-K partials summed by it: default 6 slices, 1 = off, 4) at B = 1, 16, 32, two
# rounds; 3. the branch's step profile at B = 32; 4. the training step (GPT-2 124M), main against the branch. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w27d; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-420}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s27d.tgz.part" -C "$W" . && mv "$O/s27d.tgz.part" "$O/s27d.tgz"; }
trap pack EXIT
tar xzf build-carry/s27d/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
# 1. the branch's tests
timeout 150 h/attn_gpu_tests --gtest_filter='Matmul*:Kernels*:Generate*:PrefixLm*:Gemv*:DecodeAttentionAppend*:*LayerNorm*:*Layernorm*' > "$W/t_branch.log" 2>&1
echo "branch tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_branch.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -E "^\[  FAILED" "$W/t_branch.log" | head -5; pack
# 2. the decode step (GPT-2 124M, bf16 cache, prompt 128 + 512)
gen() { local bin=$1; shift; timeout 90 $bin/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 \
  --kv-cache bf16 --no-baseline "$@" 2>&1 | grep -E '^cached|error'; }
for r in 1 2; do
  { echo "== round $r main"; gen f --batches 1,16,32
    echo "== round $r branch"; gen h --batches 1,16,32
    for s in 1 4; do echo "== round $r branch --fc-proj-splits $s"; gen h --batches 16,32 --fc-proj-splits $s; done; } >> "$W/step.txt"
  echo "step round $r ($((SECONDS - t0)) s)"; pack
done
grep -E "==|B=" "$W/step.txt" | sed -E 's/ +/ /g' | cut -c1-110
# 3. the branch's step, kernel by kernel
timeout 60 h/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
  --batches 32 --profile --out runs/h32 > "$W/profile_h32.txt" 2>&1; cp runs/h32/decode_profile.md "$W/decode_profile_h32.md"
echo "profile ($((SECONDS - t0)) s)"; pack
# 4. the training step (the layernorm rows kernel is shared), two rounds
for r in 1 2; do for b in f h; do
  echo "== $r $b $(timeout 90 $b/attnlab bench -c configs/gpt2_124m.toml --steps 15 --warmup 3 2>&1 | grep -iE 'tokens/s' | tail -1)" | tee -a "$W/train.txt"
done; done
echo "total $((SECONDS - t0)) s"
