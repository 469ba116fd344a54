#!/usr/bin/env bash
# Session 24, call H: f5/ main b09ca75's code (build-carry/s24f2), f7/ + fc_proj as split-K partials summed (with its bias)
# by the residual + layernorm kernel at decode, B <= 64 on the cuBLASLt path (branch s24-partials; build-carry/s24h).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w24h; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s24h.tgz.part" -C "$W" . && mv "$O/s24h.tgz.part" "$O/s24h.tgz"; }
trap pack EXIT
for t in s24f2 s24h; do tar xzf build-carry/$t/bins.tgz || { echo "untar $t failed"; exit 1; }; done
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
timeout 70 f7/attn_gpu_tests --gtest_filter='*SplitK*:Generate*:PrefixLm*' > "$W/t.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
gen() { timeout 40 $1/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 16,32 2>&1 | grep -E '^cached' | awk '{for (i = 1; i < NF; ++i) if ($i == "peak") pk = $(i + 1); print $4, "prefill", $8, "step", $10, $12, $14, "peak", pk}'; }
for r in 1 2; do for b in f5 f7; do echo "== $r $b"; gen $b; done; done > "$W/step.txt" 2>&1
cat "$W/step.txt"; echo "total $((SECONDS - t0)) s"
