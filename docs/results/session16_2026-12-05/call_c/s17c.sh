#!/usr/bin/env bash
# Session 16, call C (carry ["build-carry/s17p", "build-carry/s17q", ".gpucall"]): after call A (every fused mode slower than
# main's step), the flag's NaN added rather than selected (q = s16-stagea with that change; p = call A's 72fd3f1):
# 1. the new tests on q; 2. bench-generate p and q in every mode, alternated twice; 3. the step's profile at the bench's own
# shape (prompt 128 + 512) for q all-fused, q qkv-GEMV and unfused, to see which kernel costs what.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w17c; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s17c.tgz.part" -C "$W" . && mv "$O/s17c.tgz.part" "$O/s17c.tgz"; }
trap pack EXIT
mkdir -p p q && tar xzf build-carry/s17p/bins.tgz -C p && tar xzf build-carry/s17q/bins.tgz -C q || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
timeout 120 q/attn_gpu_tests --gtest_filter='Gemv*:DecodeAttentionProj*:DecodeAttentionQkv*:Generate*' > "$W/tests_q.log" 2>&1; summary "q tests" $? "$W/tests_q.log"; pack
gen() { local tag=$1 bin=$2; shift 2; echo "$tag $(env "$@" timeout 60 ./$bin/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8 --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1 2; do for b in p q; do gen "$b all" $b X=1; gen "$b qkv_gemv" $b ATTN_DECODE_QKV_UNFUSED=1; gen "$b mlp_only" $b ATTN_DECODE_PROJ_UNFUSED=1; done; gen "unfused" q ATTN_DECODE_MLP_UNFUSED=1; done | tee "$W/generate.txt"; pack
prof() { local tag=$1; shift; env "$@" timeout 60 ./q/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1 --profile --out runs/pf_$tag > "$W/prof_$tag.log" 2>&1
  echo "== $tag"; grep -E "^\| [0-9]|step period" runs/pf_$tag/decode_profile.md | head -12; }
{ prof all X=1; prof qkv_gemv ATTN_DECODE_QKV_UNFUSED=1; prof mlp_only ATTN_DECODE_PROJ_UNFUSED=1; prof unfused ATTN_DECODE_MLP_UNFUSED=1; } | tee "$W/profile.txt"; pack
echo "total $((SECONDS - t0)) s"
