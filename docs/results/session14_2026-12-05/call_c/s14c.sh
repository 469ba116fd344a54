#!/usr/bin/env bash
# Session 14, call C (carry ["build-carry/s14c", ".gpucall"]): branch s14 (soft-capping's exp2 all on the MUFU,
# forward and backward; exp2_fma gone): 1. the flash GPU tests; 2. issue 14's five causal shapes plain / softcap 30 /
# ALiBi, alternated twice; 3. memcheck and racecheck on window + softcap (T=77, D=64 and 128).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w; mkdir -p "$W"; CAP=${CAP:-400}; t0=$SECONDS
left() { echo $((CAP - (SECONDS - t0))); }
pack() { tar czf "$O/s14c.tgz.part" -C "$W" . && mv "$O/s14c.tgz.part" "$O/s14c.tgz"; }
trap pack EXIT
N=new; mkdir -p $N && tar xzf build-carry/s14c/bins.tgz -C $N || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
timeout 150 $N/attn_gpu_tests --gtest_filter='FlashVariants*:*FlashAttention*:*softcap*:*Softcap*' > "$W/tests.log" 2>&1; echo "tests exit $?"
grep -E "^\[  (PASSED|FAILED)|FAILED  \]|Failure" "$W/tests.log" | head -20; pack
WU="--warmup-ms 1000"
SH="--shape 16,12,12,1024,64 --shape 4,12,12,4096,64 --shape 1,12,12,16384,64 --shape 8,16,16,2048,128 --shape 2,16,16,8192,128"
for rep in 1 2; do for v in plain "softcap 30" alibi; do
  case $v in plain) a="";; alibi) a="--alibi";; *) a="--softcap 30";; esac
  $N/bench_flash_attention $WU --reps 20 $SH $a 2>&1 | awk -v v="$v" '$1 ~ /^[0-9]+,/ {print v, $0}' | tr -s ' '
done; done | tee "$W/variants.txt"; pack
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for t in window_softcap_T77 window_softcap_D128; do for tool in memcheck racecheck; do
  [ "$(left)" -ge 40 ] || { echo "skipped $tool $t"; continue; }
  timeout $(( $(left) - 20 )) $CS --tool $tool $N/attn_gpu_tests --gtest_filter="FlashVariants/FlashVariants.MatchesFloat64Reference/$t" > "$W/san_${t}_$tool.log" 2>&1
  echo "$tool $t exit $? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$W/san_${t}_$tool.log" | head -1) $(grep -cE '^\[       OK' "$W/san_${t}_$tool.log") ok"
done; done | tee "$W/sanitize.txt"; pack
echo "total $((SECONDS - t0)) s"
