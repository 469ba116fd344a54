#!/usr/bin/env bash
# Session 16, call F (carry ["build-carry/s16m", "build-carry/s17q", ".gpucall"]): which kernel makes the branch's unfused
# step slower than main's: the decode-step profile (bench-generate --profile, prompt 128 + 512, bf16 cache) of main (m) and of
# branch s16-stagea a7af4a3 (q) with ATTN_DECODE_MLP_UNFUSED=1, at B = 1 and B = 8.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w17f; mkdir -p "$W"
mkdir -p m q && tar xzf build-carry/s16m/bins.tgz -C m && tar xzf build-carry/s17q/bins.tgz -C q || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
prof() { local tag=$1 bin=$2 b=$3; shift 3; env "$@" timeout 60 ./$bin/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches $b --profile --out runs/pf_${tag}_$b > "$W/prof_${tag}_$b.log" 2>&1
  echo "== $tag B=$b"; grep -E "^\| [0-9]|step period" runs/pf_${tag}_$b/decode_profile.md | head -12; }
{ for b in 1 8; do prof main m $b X=1; prof q_unfused q $b ATTN_DECODE_MLP_UNFUSED=1; done; } | tee "$W/profile.txt"
