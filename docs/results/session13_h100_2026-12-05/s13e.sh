#!/usr/bin/env bash
# Session 13, call E (carry ["build-carry/s13e", "build-carry/main12", ".gpucall"]), CAP seconds: fc5d7de against main12 (a5ab50c)
#   1. GPU tests of the decode path; 2. bench-generate B=1,8,32 alternated twice; 3. the final profile (B=1);
#   4. decode attention standalone, old and new; 5. compute-sanitizer memcheck on the GEMV and decode tests
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w; mkdir -p "$W"; CAP=${CAP:-300}; t0=$SECONDS
left() { echo $((CAP - (SECONDS - t0))); }
fits() { [ "$(left)" -ge "$1" ] && return 0; echo "== skipped $2 (needs $1 s, $(left) left)" | tee -a "$W/skipped.txt"; return 1; }
pack() { tar czf "$O/s13e.tgz.part" -C "$W" . && mv "$O/s13e.tgz.part" "$O/s13e.tgz"; }
trap pack EXIT
N=new; OLD=old; mkdir -p $N $OLD && tar xzf build-carry/s13e/bins.tgz -C $N && tar xzf build-carry/main12/bins.tgz -C $OLD || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$W/gpu.txt"; cat build-carry/s13e/COMMIT
$N/attn_gpu_tests --gtest_filter='Gemv*:Decode*:KVCache*:Generate*:PrefixLm*:KernelTrace*' > "$W/tests.log" 2>&1; echo "tests exit $?"
grep -E "^\[  (PASSED|FAILED)|FAILED  \]|Failure" "$W/tests.log" | head -20; pack
GEN="bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline"
for rep in $(seq ${REPS:-2}); do for who in $OLD $N; do
  echo "-- $who rep $rep"; timeout 90 $who/attnlab $GEN --batches 1,8,32 --out runs/gen_$who 2>&1 | grep -E "cached|error"
done; done > "$W/generate.txt"; grep -E "^--|ms/step" "$W/generate.txt" | sed 's/ *prompt.*prefill *[0-9.]* ms */ /; s/kernels.step.*//'; pack
timeout 60 $N/attnlab $GEN --batches 1 --new-tokens 128 --profile --out runs/p_new > "$W/prof_new.log" 2>&1
cp runs/p_new/decode_profile.md "$W/" 2>/dev/null; grep -E "^\| [0-9]|step period" runs/p_new/decode_profile.md | head -11; pack
for who in $OLD $N; do echo "-- $who"; $who/bench_decode_attention --reps 40 --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 \
  --shape 1,12,12,64,32768,fp8 --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 --shape 1,12,12,64,640,bf16 2>&1 \
  | grep -o '"B": [0-9]*.*"ctx": [0-9]*\|"cache": "[a-z0-9]*"\|"us": [0-9.]*' | paste - - -; done | tee "$W/decode.txt"; pack
if fits 90 memcheck; then
  CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  timeout $(( $(left) - 10 )) $CS --tool memcheck $N/attn_gpu_tests --gtest_filter='Gemv*:DecodeAttention*' > "$W/memcheck.log" 2>&1; echo "memcheck exit $?"
  grep -E "ERROR SUMMARY|PASSED|FAILED" "$W/memcheck.log" | head -5
fi
echo "total $((SECONDS - t0)) s"
