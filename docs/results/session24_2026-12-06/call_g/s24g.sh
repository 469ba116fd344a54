#!/usr/bin/env bash
# Session 24, call G: f5/ main b09ca75's code (build-carry/s24f), f6/ + the heuristic's pick kept for forward matmuls
# of <= 64 rows (experiment: cuBLASLt autotune times on hot L2; build-carry/s24g). The B = 32 step three ways.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w24g; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s24g.tgz.part" -C "$W" . && mv "$O/s24g.tgz.part" "$O/s24g.tgz"; }
trap pack EXIT
for t in s24f s24g; do tar xzf build-carry/$t/bins.tgz || { echo "untar $t failed"; exit 1; }; done
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
gen() { timeout 40 "$@" 2>&1 | grep -E '^cached|error' | awk '{for (i = 1; i < NF; ++i) if ($i == "peak") pk = $(i + 1); print $4, "prefill", $8, "step", $10, $12, $14, "peak", pk}'; }
a() { gen f5/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 32; }
b() { gen f5/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 32 --device.matmul_autotune=false; }
c() { gen f6/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 32; }
for r in 1 2; do for v in a b c; do echo "== $r $v $($v)"; done; done > "$W/step.txt" 2>&1
cat "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
timeout 60 f6/attn_gpu_tests --gtest_filter='Matmul*:Generate*' > "$W/t.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t.log" | tr '\n' ' ')"
echo "total $((SECONDS - t0)) s"
