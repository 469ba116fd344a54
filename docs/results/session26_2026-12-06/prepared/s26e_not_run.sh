#!/usr/bin/env bash
# Session 26 call E (carry ["build-carry/s26e", ".gpucall/s26e.sh"]): m/ = main cbaf68a's attn_gpu_tests. The two long
# 8-bit MHA cases against main's kernels (default, 4 and 8 warps forced), then the 8-bit MHA and graph cases.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w26e; mkdir -p "$W"
tar xzf build-carry/s26e/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
timeout 100 m/attn_gpu_tests --gtest_filter='*cap32768_L_32768_77*:*int8_actbf16_H12_Hkv12_D64_cap32768*:Decode/DecodeAttention.*8_actbf16_H4_Hkv4_*:DecodeAttentionGraph.*' 2>&1 | tee "$W/t_main.log" | grep -E '^\[       OK|^\[  FAILED|^\[  PASSED|^\[  SKIPPED' | cut -c1-120
