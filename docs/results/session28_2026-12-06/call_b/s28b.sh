#!/usr/bin/env bash
# Session 28, call B (carry ["build-carry/s28b", ".gpucall/s28b.sh"]): m/ main's attnlab (7d86da8); f/ the branch's
# attnlab at its "ATTN_EXP_EARLY=3" commit. The B = 1 and 8 decode step, main against the branch with
#   e3: only decode attention's kernels let the next start before their wait (the projection GEMV then loads its
#       weights during attention; call A's profile showed it gaining there);
#   m0: every kernel after its wait, and decode attention merging in its split kernel (no combine kernel);
#   m3: both;
# three rounds; then one profile of each, packed into one file.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w28b; mkdir -p "$W"; t0=$SECONDS
tar xzf build-carry/s28b/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
gen() { local b=$1; shift; timeout 60 "$b" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error'; }
v() { case $1 in e3) echo "ATTN_EXP_EARLY=3";; m0) echo "ATTN_EXP_EARLY=0 ATTN_EXP_MERGE_BYTES=1000000";;
  m3) echo "ATTN_EXP_EARLY=3 ATTN_EXP_MERGE_BYTES=1000000";; esac; }
for r in 1 2 3; do
  { echo "== round $r main"; gen m/attnlab --batches 1,8
    for x in e3 m0 m3; do echo "== round $r branch $x"; ( export $(v $x); gen f/attnlab --batches 1,8 ); done; } >> "$W/step.txt"
done
sed -E 's/ +/ /g' "$W/step.txt" | cut -c1-120; echo "step ($((SECONDS - t0)) s)"
mkdir -p p/main && timeout 60 m/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --profile --out p/main > p/main/log.txt 2>&1
for x in e3 m3; do mkdir -p p/$x; env $(v $x) timeout 60 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 \
  --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1 --profile --out p/$x > p/$x/log.txt 2>&1; done
tar czf "$W/profiles.tgz" p/*/decode_profile.md p/*/log.txt
for d in main e3 m3; do echo "== $d"; sed -n 5,14p p/$d/decode_profile.md | cut -c1-140; done
echo "total $((SECONDS - t0)) s"
