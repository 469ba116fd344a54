#!/usr/bin/env bash
# Prepared in session 13 for the next one (carry ["build-carry/s13next", "build-carry/s13e", ".gpucall"]):
# branch s13next (d827dda: the LM head through the persisting L2; ATTN_SOFTCAP_SPLIT) against main's fc5d7de
# kernels (s13e): the decode-path and flash-variant tests on the branch, bench-generate B=1,8 alternated twice
# (and with ATTN_LM_HEAD_L2=0), then soft-capping's forward with and without the exp2 split, beside plain.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s14a.tgz.part" -C "$W" . && mv "$O/s14a.tgz.part" "$O/s14a.tgz"; }
trap pack EXIT
N=new; OLD=old; mkdir -p $N $OLD && tar xzf build-carry/s13next/bins.tgz -C $N && tar xzf build-carry/s13e/bins.tgz -C $OLD || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
$N/attn_gpu_tests --gtest_filter='Gemv*:Decode*:KVCache*:Generate*:PrefixLm*:KernelTrace*:*Variant*:*Softcap*' > "$W/tests.log" 2>&1; echo "tests exit $?"
grep -E "^\[  (PASSED|FAILED)|FAILED  \]|Failure" "$W/tests.log" | head -20; pack
ATTN_SOFTCAP_SPLIT=0 $N/attn_gpu_tests --gtest_filter='FlashVariants*softcap*' > "$W/tests_nosplit.log" 2>&1; echo "no-split softcap tests exit $?"
grep -E "^\[  (PASSED|FAILED)|FAILED  \]" "$W/tests_nosplit.log" | head -5
GEN="bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8"
run() { local tag=$1; shift; echo "$tag $(env "$@" timeout 60 ./$BIN $GEN --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1 2; do
  BIN=$OLD/attnlab run main X=1
  BIN=$N/attnlab run l2 X=1
  BIN=$N/attnlab run l2_off ATTN_LM_HEAD_L2=0
done | tee "$W/ab.txt"; pack
timeout 60 ./$N/attnlab $GEN --batches 1 --new-tokens 128 --profile --out runs/p > "$W/prof.log" 2>&1
grep -E "^\| [0-9]|step period" runs/p/decode_profile.md | head -11 | tee "$W/profile.txt"
WU="--warmup-ms 1500"
for S in 1,16,16,16384,128 1,12,12,16384,64; do for rep in 1 2; do
  echo "$S plain   $($N/bench_flash_attention $WU --reps 20 --shape $S 2>&1 | awk -v s=$S '$1 == s' | tr -s ' ')"
  echo "$S split   $($N/bench_flash_attention $WU --reps 20 --shape $S --softcap 30 2>&1 | awk -v s=$S '$1 == s' | tr -s ' ')"
  echo "$S nosplit $(ATTN_SOFTCAP_SPLIT=0 $N/bench_flash_attention $WU --reps 20 --shape $S --softcap 30 2>&1 | awk -v s=$S '$1 == s' | tr -s ' ')"
done; done | tee "$W/softcap.txt"; pack
echo "total $((SECONDS - t0)) s"
