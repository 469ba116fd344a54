#!/usr/bin/env bash
# Session 23, call G: the decode step, main 30ccbac (f/) against ea22e59 (f5/), B = 1, 32, alternated.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w23g; mkdir -p "$W"
for t in s23main s23f; do tar xzf build-carry/$t/bins.tgz || exit 1; done
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
for r in 1 2; do for b in f f5; do echo "== $r $b"; timeout 25 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 \
  --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,32 2>&1 | grep -E '^cached' | awk '{print $5, $10, $12, $14}'; done; done | tee "$W/step.txt"
