#!/usr/bin/env bash
# Session 18, call F (carry ["build-carry/s18c", ".gpucall"]): issue 14's seven rows, ours beside cuDNN (PyTorch 2.11 SDPA),
# causal bf16 f+b, alternated twice, 1500 ms warm-up per series. Ours = v/i (branch s17-geom 1d6e7dd, whose flash code is main's).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w18f; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s18f.tgz.part" -C "$W" . && mv "$O/s18f.tgz.part" "$O/s18f.tgz"; }
trap pack EXIT
mkdir -p v && { [ -x v/i/bench_flash_attention ] || tar xzf build-carry/s18c/bins.tgz -C v; } || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
WU="--warmup-ms 1500"; B=v/i
for rep in 1 2; do
  $B/bench_flash_attention $WU --full --shape 2,16,16,8192,128 2>&1 | awk '$1 == "2,16,16,8192,128" {print "ours", $0, "non-causal"}'
  python3 scripts/bench_sdpa.py $WU --backends cudnn --full --shapes 2,16,8192,128 2>&1 | grep "^cudnn" | sed 's/$/ non-causal/'
  $B/bench_flash_attention $WU --shape 4,32,8,4096,128 2>&1 | awk '$1 == "4,32,8,4096,128" {print "ours", $0, "gqa"}'
  python3 scripts/bench_sdpa.py $WU --backends cudnn --shapes 4,32,4096,128,8 2>&1 | grep "^cudnn" | sed 's/$/ gqa/'
  $B/bench_flash_attention $WU 2>&1 | awk '$1 ~ /^[0-9]+,/ {print "ours", $0, "causal"}'
  python3 scripts/bench_sdpa.py $WU --backends cudnn 2>&1 | grep "^cudnn" | sed 's/$/ causal/'
  echo "== rep $rep done ($((SECONDS - t0)) s)" >&2; pack
done | tee "$W/flash14.txt"
echo "total $((SECONDS - t0)) s"
