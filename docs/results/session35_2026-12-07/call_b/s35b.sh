#!/usr/bin/env bash
# Session 35, call B (carry ["build-carry/s35b", ".gpucall/s35b.sh"]): the LM head's L2 prefetch distance.
#   m/ attnlab: main f734ff9; x/ attnlab, attn_gpu_tests: branch s35-lm-ahead (ATTN_GEMV_L2_AHEAD=A: blocks of several
#   tiles, the LM head's, prefetch tiles 2..A grid strides ahead to L2 at their first tile, then tile + A each tile;
#   A = 2 is main's, A = 1 none).
# Why: in call A's profile the LM head reads wte's 77 MB in 32.6 us critical (2.4 TB/s); each block holds one 12 KB tile
# in registers and one more prefetched.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w35b; mkdir -p "$W"; t0=$SECONDS
tar xzf build-carry/s35b/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
ATTN_GEMV_L2_AHEAD=4 timeout 90 x/attn_gpu_tests --gtest_filter='Gemv*:GenerateGreedy*' > "$W/tests_x.log" 2>&1
echo "x tests (A=4) exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_x.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|Failure' "$W/tests_x.log" | head -10
gen() { local b=$1; shift; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1,8 "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c40-110; }
for r in 1 2 3; do
  echo "== round $r m"; gen m
  for A in 1 2 3 4 6; do echo "== round $r x A=$A"; ATTN_GEMV_L2_AHEAD=$A gen x; done
done | tee "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"
for A in 2 4; do mkdir -p "$W/p$A"; ATTN_GEMV_L2_AHEAD=$A timeout 60 x/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 \
  --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1 --profile --out "$W/p$A" > "$W/p$A/log.txt" 2>&1
  rm -f "$W/p$A/report.html" "$W/p$A/env.json" "$W/p$A/decode_profile.json"; echo "profile A=$A"; grep -E "^\| 7 |on the GPU|step period" "$W/p$A/decode_profile.md" | cut -c1-150; done
echo "total $((SECONDS - t0)) s"
