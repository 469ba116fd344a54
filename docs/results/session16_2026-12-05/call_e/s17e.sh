#!/usr/bin/env bash
# Session 16, call E (carry ["build-carry/s16m", "build-carry/s17q", ".gpucall"]): main ed78b4d (m) beside branch s16-stagea
# a7af4a3 (q) unfused / all fused, bf16 cache, B = 1, 8, alternated three times: does the branch's unfused mode equal main?
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w17e; mkdir -p "$W"
mkdir -p m q && tar xzf build-carry/s16m/bins.tgz -C m && tar xzf build-carry/s17q/bins.tgz -C q || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
gen() { local tag=$1 bin=$2; shift 2; echo "$tag $(env "$@" timeout 60 ./$bin/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8 --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1 2 3; do gen main m X=1; gen q_unfused q ATTN_DECODE_MLP_UNFUSED=1; gen q_all q X=1; done | tee "$W/generate.txt"
