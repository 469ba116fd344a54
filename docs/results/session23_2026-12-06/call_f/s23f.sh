#!/usr/bin/env bash
# Session 23, call F: main ea22e59's GPU suite without the Decode* suites (their kernels are 30ccbac's, byte for byte;
# call E ran the default plan's cases). f5/ from build-carry/s23f. Env LIM (default 330).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w23f; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-330}
tar xzf build-carry/s23f/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
timeout $((LIM - 5)) f5/attn_gpu_tests --gtest_filter='-Decode*' > "$W/tests.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \]|^\[  SKIPPED \] [0-9]' "$W/tests.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED  \]' "$W/tests.log" | head
gzip "$W/tests.log"
# then the decode suites, as far as the time goes
timeout $((LIM - (SECONDS - t0) - 5)) f5/attn_gpu_tests --gtest_filter='Decode*' > "$W/decode_tests.log" 2>&1
echo "decode tests exit $? ok $(grep -c '^\[       OK' "$W/decode_tests.log") failed $(grep -c '^\[  FAILED  \]' "$W/decode_tests.log") ($((SECONDS - t0)) s)"
gzip "$W/decode_tests.log"
