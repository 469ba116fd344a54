#!/usr/bin/env bash
# Session 14, call B (carry ["build-carry/s14b", "build-carry/s13e", ".gpucall"]): branch s14 (uncommitted build) against main
# fc5d7de (s13e): 1. GPU tests (decode path, flash variants: the forward's soft-capping exp2 now all on the MUFU);
# 2. bench-generate B=1,8: old / L2-ahead bulk / lines / off, alternated twice; 3. profile; 4. soft-capping backward
# with and without its exp2 split (ATTN_SOFTCAP_BWD_SPLIT=0) beside plain and old; 5. memcheck of the generator tests.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w; mkdir -p "$W"; CAP=${CAP:-420}; t0=$SECONDS
left() { echo $((CAP - (SECONDS - t0))); }
pack() { tar czf "$O/s14b.tgz.part" -C "$W" . && mv "$O/s14b.tgz.part" "$O/s14b.tgz"; }
trap pack EXIT
N=new; OLD=old; mkdir -p $N $OLD && tar xzf build-carry/s14b/bins.tgz -C $N && tar xzf build-carry/s13e/bins.tgz -C $OLD || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
GEN="bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8"
run() { local tag=$1; shift; echo "$tag $(env "$@" timeout 60 ./$BIN $GEN --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1 2; do
  BIN=$OLD/attnlab run main X=1
  BIN=$N/attnlab run bulk X=1
  BIN=$N/attnlab run lines ATTN_L2_AHEAD=lines
  BIN=$N/attnlab run off ATTN_L2_AHEAD=0
done | tee "$W/ab.txt"; pack
timeout 60 ./$N/attnlab $GEN --batches 1 --new-tokens 128 --profile --out runs/p > "$W/prof.log" 2>&1
grep -E "^\| [0-9]|step period" runs/p/decode_profile.md | head -11 | tee "$W/profile.txt"; pack
$N/attn_gpu_tests --gtest_filter='Gemv*:Decode*:KVCache*:Generate*:PrefixLm*:KernelTrace*:*Variant*:*Softcap*:*softcap*' > "$W/tests.log" 2>&1; echo "tests exit $?"
grep -E "^\[  (PASSED|FAILED)|FAILED  \]|Failure" "$W/tests.log" | head -20; pack
ATTN_SOFTCAP_BWD_SPLIT=0 $N/attn_gpu_tests --gtest_filter='*softcap*:*Softcap*' > "$W/tests_nosplit.log" 2>&1; echo "bwd no-split softcap tests exit $?"
grep -E "^\[  (PASSED|FAILED)|FAILED  \]" "$W/tests_nosplit.log" | head -5; pack
WU="--warmup-ms 1500"
b() { echo "$1 $2 $(env $3 $4/bench_flash_attention $WU --reps 20 --shape $1 $5 2>&1 | awk -v s=$1 '$1 == s' | tr -s ' ' | cut -d' ' -f2-)"; }
for S in 1,16,16,16384,128 1,12,12,16384,64; do for rep in 1 2; do
  b $S plain X=1 $N ""
  b $S old_split X=1 $OLD "--softcap 30"
  b $S new_split X=1 $N "--softcap 30"
  b $S new_nosplit ATTN_SOFTCAP_BWD_SPLIT=0 $N "--softcap 30"
done; done | tee "$W/softcap.txt"; pack
if [ "$(left)" -ge 90 ]; then
  CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  timeout $(( $(left) - 10 )) $CS --tool memcheck $N/attn_gpu_tests --gtest_filter='Generate*' > "$W/memcheck.log" 2>&1; echo "memcheck exit $?"
  grep -E "ERROR SUMMARY|PASSED|FAILED" "$W/memcheck.log" | head -5
fi
echo "total $((SECONDS - t0)) s"
