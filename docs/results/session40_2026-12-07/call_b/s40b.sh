#!/usr/bin/env bash
# Session 40, call B, any card: one tile-layer copy-out (tiles::store_warp_rows, kernels/tiles/copy_out.cuh) and
# staging (SwizzledTile::stage)
# replaces the three hand-written ones (the forward's O, the backward's dK / dV, the dQ pass's dQ); the machine code
# of those kernels changes. n/ = branch twin-store's build; f/ = main's bench (session 39, same kernels as main).
# 1. the flash tests (float64 references, determinism, variants) on n/; 2. memcheck on two window + softcap GQA
# tests; 3. bench_flash_attention f/ vs n/ interleaved on issue 14's shapes.
# Carry ["build-carry/s40b", "build-carry/s39b", ".gpucall/s40b.sh"].
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w40b; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s40b.tgz.part" -C "$W" . && mv "$O/s40b.tgz.part" "$O/s40b.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
tar xzf build-carry/s40b/bins.tgz && tar xzf build-carry/s39b/bins.tgz || { echo "untar failed"; exit 1; }
timeout 240 n/attn_gpu_tests --gtest_filter='*Flash*:*VsCpu*' > "$W/tests.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$W/tests.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|Failure' "$W/tests.log" | head -10; pack
for t in window_softcap_T77 window_softcap_D128; do
  timeout 100 compute-sanitizer --tool memcheck --error-exitcode 1 n/attn_gpu_tests \
    --gtest_filter="FlashVariants/FlashVariants.MatchesFloat64Reference/$t" > "$W/memcheck_$t.log" 2>&1
  echo "memcheck $t exit $? $(grep -E 'ERROR SUMMARY' "$W/memcheck_$t.log") ($((SECONDS - t0)) s)"
done; pack
X="--reps 20 --warmup-ms 300"
bench() { for v in f n f n; do echo "== $v $*"; timeout 60 $v/bench_flash_attention $X "$@"; done >> "$W/bench.txt" 2>&1; }
bench
bench --full --shape 2,16,16,8192,128
bench --shape 4,32,8,4096,128
bench --shape 1,12,12,16384,64 --window 1024
bench --shape 1,12,12,16384,64 --softcap 30 --shape 4,12,12,4096,64 --softcap 30
echo "bench done ($((SECONDS - t0)) s)"
