#!/usr/bin/env bash
# Session 14, call E (carry ["build-carry/s14e", "build-carry/s14c", ".gpucall"]): 1. the decode step at B = 1 with
# decode attention's splits set by ATTN_DECODE_MIN_SPLIT_ROWS (s14split) beside main (s14c), alternated twice;
# 2. issue 14's table (gpu_check.sh flash: ours beside PyTorch SDPA flash and cuDNN) on main; 3. plain / softcap / ALiBi.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w; mkdir -p "$W"; CAP=${CAP:-270}; t0=$SECONDS
left() { echo $((CAP - (SECONDS - t0))); }
pack() { tar czf "$O/s14e.tgz.part" -C "$W" . && mv "$O/s14e.tgz.part" "$O/s14e.tgz"; }
trap pack EXIT
mkdir -p b n && tar xzf build-carry/s14c/bins.tgz -C b && tar xzf build-carry/s14e/bins.tgz -C n || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
GEN="bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1"
run() { local tag=$1; shift; echo "$tag $(env "$@" timeout 40 ./$BIN $GEN --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1 2; do
  BIN=b/attnlab run main X=1
  for r in 0 128 192 320; do BIN=n/attnlab run rows$r ATTN_DECODE_MIN_SPLIT_ROWS=$r; done
done | tee "$W/splits.txt"; pack
n/attn_gpu_tests --gtest_filter='Generate*' > /dev/null 2>&1; echo "generate tests (default) exit $?"
ATTN_DECODE_MIN_SPLIT_ROWS=192 n/attn_gpu_tests --gtest_filter='Generate*:DecodeAttention*' > "$W/tests192.log" 2>&1; echo "tests at 192 rows exit $?"
[ "$(left)" -ge 120 ] || { echo "no time for the flash table ($(left) s left)"; exit 0; }
SDPA_ARGS="--backends flash,cudnn" OUT=$W/gc BUILD=b timeout $(( $(left) - 40 )) bash scripts/gpu_check.sh flash > "$W/flash.txt" 2>&1; echo "flash exit $?"
grep -E "^[0-9]+,|^(flash|cudnn) " "$W/flash.txt" | tr -s ' '; pack
[ "$(left)" -ge 30 ] || exit 0
SH="--shape 1,12,12,16384,64 --shape 2,16,16,8192,128"
for v in plain "softcap 30" alibi; do
  case $v in plain) a="";; alibi) a="--alibi";; *) a="--softcap 30";; esac
  b/bench_flash_attention --warmup-ms 500 --reps 10 $SH $a 2>&1 | awk -v v="$v" '$1 ~ /^[0-9]+,/ {print v, $0}' | tr -s ' '
done | tee "$W/variants.txt"; pack
echo "total $((SECONDS - t0)) s"
