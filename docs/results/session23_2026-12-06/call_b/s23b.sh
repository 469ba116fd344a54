#!/usr/bin/env bash
# Session 23, call B: the decode step's kernels at B = 1, 8, 32 (bench-generate --profile), main 30ccbac's binaries.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w23b; mkdir -p "$W"; t0=$SECONDS
tar xzf build-carry/s23a/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
for b in 1 8 32; do
  timeout 90 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
    --batches $b --profile --out runs/p$b > "$W/generate_$b.txt" 2>&1
  cp runs/p$b/decode_profile.md "$W/decode_profile_$b.md" 2>/dev/null
  echo "B=$b ($((SECONDS - t0)) s)"
done
tail -3 "$W"/generate_*.txt
