#!/usr/bin/env bash
# Session 13, call C (carry ["build-carry/s13c", "build-carry/main12", ".gpucall"]): the decode step, B=1, old (a5ab50c)
# against the new GEMV ring with and without the max-shared carveout and with the ring capped at 1 or 2 stages.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s13c.tgz.part" -C "$W" . && mv "$O/s13c.tgz.part" "$O/s13c.tgz"; }
trap pack EXIT
N=new; OLD=old; mkdir -p $N $OLD && tar xzf build-carry/s13c/bins.tgz -C $N && tar xzf build-carry/main12/bins.tgz -C $OLD || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
GEN="bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1"
run() { local tag=$1; shift; echo "$tag $(env "$@" timeout 60 ./$BIN $GEN --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*')"; }
for rep in 1 2; do
  BIN=$OLD/attnlab run old X=1
  BIN=$N/attnlab run new X=1
  BIN=$N/attnlab run new_nocarve ATTN_NO_CARVEOUT=1
  BIN=$N/attnlab run new_stages1 ATTN_GEMV_STAGES=1
  BIN=$N/attnlab run new_stages2 ATTN_GEMV_STAGES=2
  BIN=$N/attnlab run new_nocarve_stages1 ATTN_NO_CARVEOUT=1 ATTN_GEMV_STAGES=1
done | tee "$W/ab.txt"; pack
for who in old new; do
  timeout 60 ./$who/attnlab $GEN --new-tokens 128 --profile --out runs/p_$who > "$W/prof_$who.log" 2>&1
  echo "== $who"; grep -E "^\| [0-9]|step period" runs/p_$who/decode_profile.md | head -12
done | tee "$W/profiles.txt"; pack
for who in $OLD $N; do echo "-- $who"; $who/bench_decode_attention --reps 40 --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 \
  --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,640,bf16 2>&1 | grep -o '"B": [0-9]*.*"ctx": [0-9]*\|"cache": "[a-z0-9]*"\|"us": [0-9.]*' | paste - - -; done | tee "$W/decode.txt"
echo "total $((SECONDS - t0)) s"
