#!/usr/bin/env bash
# Session 39, call B (prepared, not run: no device was lent in session 39). Any card. Where the flash kernels' time
# goes on issue 14's open rows: bench_flash_attention --trace (f/ = main after session 39's --trace commit; the flash
# kernels are byte-identical to 1c00733's) on 1,12,12,16384,64 causal, window 1024 and soft-capping 30, and on
# 4,12,12,4096,64 causal. The trace splits one forward+backward call into its kernels and memsets (forward, the
# backward's pre-pass (Dsum and dQ zeroing), main pass, dQ convert) and the gaps between them: how much of the window's
# fixed 0.172 ms (RESULTS, twelfth session) is side passes and launches.
# Carry ["build-carry/s39b", ".gpucall/s39b.sh"].
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w39b; mkdir -p "$W"; t0=$SECONDS
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
tar xzf build-carry/s39b/bins.tgz || { echo "untar failed"; exit 1; }
B=f/bench_flash_attention; S=--shape; X="--reps 10 --warmup-ms 300 --trace 5"
{ timeout 60 $B $S 1,12,12,16384,64 $X; timeout 30 $B $S 1,12,12,16384,64 --window 1024 $X
  timeout 60 $B $S 1,12,12,16384,64 --softcap 30 $X; timeout 30 $B $S 4,12,12,4096,64 $X; } > "$W/trace.txt" 2>&1
echo "traces done ($((SECONDS - t0)) s)"; grep -E "^[0-9]|error" "$W/trace.txt" | head -20
tar czf "$O/s39b.tgz" -C "$W" .
