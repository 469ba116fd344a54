#!/usr/bin/env bash
# Session 39, call A (prepared, not run: no device was lent in session 39). Any card: the decode fixed-cost sweep
# (B = 1, context 640 .. 32768, bf16 / int8 / fp8 MHA and bf16 GQA / MQA; per shape the kernel, a plain read of its
# bytes and the bulk-copy read, L2 flushed; fitted afterwards by fit_sweep.py here: us = a + b MB, issue 17's 8-bit
# B = 1 ratio and GQA / MQA rows). Then session 38's s38b.sh unchanged (tests on any card, issue 17's headline on an
# H200). m/ = main 03f1780's build, the same kernels as main after session 39 (device_code_diff: identical).
# Copy this file and s38b.sh to .gpucall/; carry ["build-carry/s38b", ".gpucall/s39a.sh", ".gpucall/s38b.sh"].
# Env LIM (s) for s38b's part.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w39a; mkdir -p "$W"; t0=$SECONDS
tar xzf build-carry/s38b/bins.tgz || { echo "untar failed"; exit 1; }
sw=(); for c in 640 2048 8192 32768; do for d in bf16 int8 fp8; do sw+=(--shape 1,12,12,64,$c,$d); done
  sw+=(--shape 1,12,4,64,$c,bf16 --shape 1,12,1,64,$c,bf16); done
timeout 60 m/bench_decode_attention "${sw[@]}" > "$W/sweep.jsonl" 2>&1; echo "sweep exit $? ($((SECONDS - t0)) s)"
tar czf "$O/s39a.tgz" -C "$W" .
LIM=$(( ${LIM:-500} - (SECONDS - t0) )) bash .gpucall/s38b.sh
