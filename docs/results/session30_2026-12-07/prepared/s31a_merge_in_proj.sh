#!/usr/bin/env bash
# Prepared in session 30 for the next (carry ["build-carry/s31a", ".gpucall/s31a.sh"]). sm_90a, stripped:
#   f/: branch s30-merge-in-proj (attnlab, attn_gpu_tests, bench_decode_attention): at B <= 8 the decode step's projection
#       GEMV merges decode attention's split partials in its prologue, and the combine kernel goes (74 -> 62 kernels at B = 1);
#   m/: main 9f04b8f's attnlab (run-ahead, long-cache plan, sampling).
# 1. f/'s GEMV, generation, trace and decode tests; 2. the step at B = 1/8/32, main against the branch, three rounds
# alternated; 3. f/'s B = 1 profile. Merge the branch only if every test passes and B = 1 and 8 gain (32 is unchanged).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w31a; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s31a.tgz.part" -C "$W" . && mv "$O/s31a.tgz.part" "$O/s31a.tgz"; }
trap pack EXIT
tar xzf build-carry/s31a/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
timeout 150 f/attn_gpu_tests --gtest_filter='Gemv*:Generate*:*KernelTrace*:PrefixLm*:Decode/DecodeAttention.*bf16_act*:DecodeAttentionMerge*:DecodeAttentionGraph*:DecodeAttentionDefaultStream*' > "$W/tests.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests.log") ok ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|\[rel\].*(merge|GEMV merge|W = I)' "$W/tests.log" | head -20; pack
gen() { local b=$1; shift; timeout 60 "$b" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2 3; do for b in m f; do echo "== round $r $b"; gen $b/attnlab --batches 1,8,32; done; done | tee "$W/step.txt"; pack
mkdir -p "$W/p1f"; timeout 60 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --profile --out "$W/p1f" > "$W/p1f/log.txt" 2>&1; rm -f "$W/p1f/report.html"
sed -n 3,20p "$W/p1f/decode_profile.md" | cut -c1-140
echo "total $((SECONDS - t0)) s"
